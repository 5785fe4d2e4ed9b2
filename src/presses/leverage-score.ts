/**
 * Approximate leverage scores of the pre-RoPE keys, the geometric half of Compactor (Chari & Van Durme 2025,
 * "Compactor: Calibrated Query-Agnostic KV Cache Compression with Approximate Leverage Scores", arXiv 2507.08143);
 * kvpress's LeverageScorePress (leverage_press.py), which this follows.
 *
 * Rule (kvpress's): per KV head, the pre-RoPE keys K [S × d] (the cached keys rotated back from their positions:
 * kvpress's get_prerope_key_states, k_norm included) are centred over the sequence, sketched from the right by a
 * Gaussian Φ [d × k] with entries N(0, 1)/√k (k = sketch-dimension): X = (K − mean K)·Φ [S × k]. With the Gram
 * matrix G = XᵀX factorised by Cholesky with jitter (G + 1e-2·I first, then jitter ×10 up to 5 tries, as kvpress's
 * chol_with_jitter; so always a small ridge), each entry's score is its leverage x_iᵀ G⁻¹ x_i (clamped at 0),
 * z-scored with one mean and one unbiased standard deviation over every head of the layer (kvpress's
 * scores.mean()/std() over the whole (1, H_kv, S) tensor, std clamped to ≥ 1e-6). Higher = more of an outlier = kept.
 * kvpress's version (and so this one) uses the Cholesky solve instead of the paper's formulation; arithmetic in f64
 * here, f32 in kvpress.
 *
 * Default as kvpress's: sketch-dimension 48.
 * The sketch is random (kvpress draws torch.randn(1, H_kv, d, k) at every call). Attend's options:
 * - `seed` (default 0): Φ from Attend's own generator (xoshiro128** + Box–Muller), one fresh draw per call;
 * - `sketch=PATH`: Φ read from a file instead, to reproduce a kvpress run exactly. Layout: little-endian f32, no
 *   header, the raw N(0, 1) draws (before the 1/√k scale, which is applied here in f32 as torch does) of each call
 *   one after the other, in call order (one call per layer compression: layer 0, 1, … of the prefill); each call's
 *   block is H_kv·d·k values in the order of a contiguous (1, H_kv, d, k) tensor (kv head, then key dimension, then
 *   sketch column fastest). A call past the end of the file is an error.
 * Choices beyond kvpress (which asserts the prefill, once): when the cache is compressed again, the entries still
 * held are scored among themselves (centred over them). With fewer than two scores torch's std is NaN; here every
 * score is then 0.
 */
import { AttendError } from '../errors.js';
import { readRecordedDraws } from './recorded-draws.js';
import { Random } from '../generate/random.js';
import { choleskySolve, choleskyWithJitter, zScoreAll } from './linalg.js';
import type { LayerView, Press } from './press.js';
import { unrotated } from './rotary.js';

export interface LeverageScoreOptions {
  sketchDimension: number;
  /** Seed of Attend's Gaussian generator for Φ (when no sketch file is given). */
  seed: number;
  /** A file of Φ draws (see the header); '' for none. */
  sketch: string;
}

export const LEVERAGE_SCORE_DEFAULTS: LeverageScoreOptions = { sketchDimension: 48, seed: 0, sketch: '' };

/** kvpress's first jitter and number of tries. */
const JITTER = 1e-2;
const MAX_TRIES = 5;

/** The N(0, 1) draws behind Φ: from a seeded generator, or from a file of recorded draws (see the header). */
export class GaussianSketch {
  private readonly random: Random;
  private readonly file?: Float32Array;
  private offset = 0;
  private calls = 0;
  private spare: number | undefined;

  constructor(
    seed: number,
    private readonly path: string,
    private readonly who: string,
  ) {
    this.random = new Random(seed);
    if (path === '') return;
    this.file = readRecordedDraws(path, who, 'sketch');
  }

  /** The next call's `count` draws (f32 values). */
  next(count: number): Float32Array {
    this.calls++;
    if (this.file) {
      if (this.offset + count > this.file.length) {
        throw new AttendError(
          `${this.who}: the sketch file ${this.path} holds ${this.file.length} values; call ${this.calls} needs ${count} more than the ${this.file.length - this.offset} left`,
        );
      }
      const out = this.file.slice(this.offset, this.offset + count);
      this.offset += count;
      return out;
    }
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.gaussian();
    return out;
  }

  private gaussian(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    const u1 = 1 - this.random.next();
    const u2 = this.random.next();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }
}

export function checkSketchDimension(k: number, who: string): void {
  if (!(Number.isInteger(k) && k >= 1)) throw new AttendError(`${who}: option sketch-dimension must be a whole number ≥ 1 (columns of the Gaussian sketch), got ${k}`);
}

/** Φ of one call, [H_kv × d × k]: the draws times 1/√k, in f32 (torch's randn(…) * (1 / math.sqrt(k))). */
export function drawSketch(sketch: GaussianSketch, numKvHeads: number, d: number, k: number): Float32Array {
  const draws = sketch.next(numKvHeads * d * k);
  const scale = Math.fround(1 / Math.sqrt(k));
  return draws.map((x) => Math.fround(x * scale));
}

/**
 * Leverage scores (before the z-score) of each head's entries [keys[h][0], keys[h][1]) under the sketch `phi`
 * ([H_kv × d × k]).
 */
export function leverageRaw(view: LayerView, phi: Float32Array, k: number, ranges: [number, number][], who: string): Float64Array[] {
  const { config } = view;
  const d = config.headDim;
  return view.cache.heads.map((head, g) => {
    const [from, to] = ranges[g];
    const n = Math.max(0, to - from);
    if (n === 0) return new Float64Array(0);
    const keys = unrotated(config, head.keys(from, n), 1, head.positions.slice(from, from + n));
    const mean = new Float64Array(d);
    for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) mean[c] += keys[i * d + c];
    for (let c = 0; c < d; c++) mean[c] /= n;
    // X = (K − mean)·Φ_g, [n × k].
    const X = new Float64Array(n * k);
    const base = g * d * k;
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < d; c++) {
        const x = keys[i * d + c] - mean[c];
        if (x === 0) continue;
        const row = base + c * k;
        for (let j = 0; j < k; j++) X[i * k + j] += x * phi[row + j];
      }
    }
    const G = new Float64Array(k * k);
    for (let i = 0; i < n; i++) {
      for (let a = 0; a < k; a++) {
        const xa = X[i * k + a];
        for (let b = 0; b <= a; b++) G[a * k + b] += xa * X[i * k + b];
      }
    }
    for (let a = 0; a < k; a++) for (let b = 0; b < a; b++) G[b * k + a] = G[a * k + b];
    const L = choleskyWithJitter(G, k, JITTER, MAX_TRIES, who);
    const scores = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const x = X.subarray(i * k, (i + 1) * k);
      const y = choleskySolve(L, k, x);
      let s = 0;
      for (let j = 0; j < k; j++) s += x[j] * y[j];
      scores[i] = Math.max(0, s);
    }
    return scores;
  });
}

export class LeverageScorePress implements Press {
  readonly name = 'leverage-score';
  readonly needs = {};
  private readonly sketch: GaussianSketch;

  constructor(readonly options: LeverageScoreOptions = LEVERAGE_SCORE_DEFAULTS) {
    checkSketchDimension(options.sketchDimension, this.name);
    this.sketch = new GaussianSketch(options.seed, options.sketch, this.name);
  }

  score(view: LayerView): Float32Array[] {
    const { numKvHeads, headDim } = view.config;
    const k = this.options.sketchDimension;
    const phi = drawSketch(this.sketch, numKvHeads, headDim, k);
    const raw = leverageRaw(view, phi, k, view.cache.heads.map((h) => [0, h.length]), this.name);
    return zScoreAll(raw).map((s) => Float32Array.from(s));
  }
}
