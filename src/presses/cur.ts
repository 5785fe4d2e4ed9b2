/**
 * CurDKV (Sengupta et al. 2025, "Value-Guided KV Compression for LLMs via Approximated CUR Decomposition",
 * arXiv 2509.15038), as kvpress's CURPress (cur_press.py).
 * Rule, per KV head: each entry's leverage proxies are its squared key norm ‖kᵢ‖² and squared value norm ‖vᵢ‖²
 * (with `use-random-leverage`, of kᵢ·G and vᵢ·G for one Gaussian G [d × 20] / √20 per layer, shared by keys,
 * values and heads); with `use-local-approximation` each is divided by its sum over consecutive windows of
 * `local-window-size` entries (the last window may be shorter). `leverage-type` combines them: key, value,
 * kv_avg ((k + v)/2) or kv_product (k·v); the result is divided by its sum over the head, and the first
 * `num-sinks` entries score 1 (kept: every other score is a fraction of 1).
 * Defaults are kvpress's: num_sinks 4, leverage_type kv_product, use_random_leverage False,
 * use_local_approximation True, local_window_size 16; the projection width 20 is fixed in kvpress too.
 * The random projection draws from Attend's own seeded generator (`seed`, default 0; Box-Muller over
 * generate/random.ts), not torch's: with it the kept entries are reproducible but not kvpress's. To reproduce a
 * kvpress run exactly, `projection=PATH` reads the N(0, 1) draws kvpress made instead: little-endian f32, one
 * [d × 20] matrix (row-major, torch.randn(d, 20)) per compressed layer, in the order the layers are compressed
 * (layer 0 first); each score call takes the next one, and a file that runs out is an error.
 * Entries are indices in the head (kvpress's cache positions), not original positions.
 */
import { AttendError } from '../errors.js';
import { readRecordedDraws } from './recorded-draws.js';
import { Random } from '../generate/random.js';
import type { LayerView, Press } from './press.js';
import { checkInt, rowsOf } from './query-statistics.js';

export const LEVERAGE_TYPES = ['key', 'value', 'kv_avg', 'kv_product'] as const;
export type LeverageType = (typeof LEVERAGE_TYPES)[number];

export interface CUROptions {
  numSinks: number;
  leverageType: LeverageType;
  useRandomLeverage: boolean;
  useLocalApproximation: boolean;
  localWindowSize: number;
  seed: number;
  /** A file of recorded N(0, 1) projection draws (see above), or '' to draw from `seed`. */
  projection?: string;
}

export const CUR_DEFAULTS: CUROptions = {
  numSinks: 4,
  leverageType: 'kv_product',
  useRandomLeverage: false,
  useLocalApproximation: true,
  localWindowSize: 16,
  seed: 0,
};

/** Columns of kvpress's random projection (r = 20 in cur_press.py). */
export const CUR_PROJECTION = 20;

export class CURPress implements Press {
  readonly name = 'cur';
  readonly needs = {};
  private readonly random: Random;
  private readonly recorded?: Float32Array;
  private drawn = 0;

  constructor(readonly options: CUROptions = CUR_DEFAULTS) {
    checkInt('cur', 'num-sinks', options.numSinks, 0, 'initial entries always kept');
    checkInt('cur', 'local-window-size', options.localWindowSize, 1, 'entries per normalisation window');
    checkInt('cur', 'seed', options.seed, 0, 'seed of the random projection');
    if (!LEVERAGE_TYPES.includes(options.leverageType)) {
      throw new AttendError(`cur: option leverage-type must be one of ${LEVERAGE_TYPES.join(', ')}, got "${options.leverageType}"`);
    }
    this.random = new Random(options.seed);
    if (options.projection) {
      this.recorded = readRecordedDraws(options.projection, 'cur', 'projection');
    }
  }

  /** The next projection G [d × 20] (already divided by √20, as kvpress does). */
  private projectionMatrix(d: number): Float64Array {
    const count = d * CUR_PROJECTION;
    const scale = 1 / Math.sqrt(CUR_PROJECTION);
    if (!this.recorded) return gaussian(this.random, count, scale);
    if (this.drawn + count > this.recorded.length) {
      throw new AttendError(`cur: projection file ${this.options.projection} holds ${this.recorded.length} draws, fewer than the ${this.drawn + count} this compression needs`);
    }
    const G = Float64Array.from(this.recorded.subarray(this.drawn, this.drawn + count), (x) => x * scale);
    this.drawn += count;
    return G;
  }

  score(view: LayerView): Float32Array[] {
    const { numSinks, leverageType, useRandomLeverage, useLocalApproximation, localWindowSize: w } = this.options;
    const d = view.config.headDim;
    const G = useRandomLeverage ? this.projectionMatrix(d) : undefined;
    return view.cache.heads.map((head) => {
      const n = head.length;
      let k2 = squaredNorms(rowsOf(head, 'keys'), n, d, G);
      let v2 = squaredNorms(rowsOf(head, 'values'), n, d, G);
      if (useLocalApproximation) {
        k2 = windowNormalised(k2, w);
        v2 = windowNormalised(v2, w);
      }
      const s = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        s[i] = leverageType === 'key' ? k2[i] : leverageType === 'value' ? v2[i] : leverageType === 'kv_avg' ? (k2[i] + v2[i]) / 2 : k2[i] * v2[i];
      }
      let total = 0;
      for (const x of s) total += x;
      const scores = new Float32Array(n);
      for (let i = 0; i < n; i++) scores[i] = i < numSinks ? 1 : s[i] / total;
      return scores;
    });
  }
}

/** ‖xᵢ‖² of each row, or ‖xᵢ·G‖² for G [d × CUR_PROJECTION] row-major. */
function squaredNorms(rows: Float32Array, n: number, d: number, G?: Float64Array): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * d;
    let s = 0;
    if (!G) {
      for (let c = 0; c < d; c++) s += rows[o + c] * rows[o + c];
    } else {
      for (let r = 0; r < CUR_PROJECTION; r++) {
        let y = 0;
        for (let c = 0; c < d; c++) y += rows[o + c] * G[c * CUR_PROJECTION + r];
        s += y * y;
      }
    }
    out[i] = s;
  }
  return out;
}

/** Each value divided by the sum of its window of `w` consecutive entries (the last window may be shorter). */
function windowNormalised(x: Float64Array, w: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let start = 0; start < x.length; start += w) {
    const stop = Math.min(x.length, start + w);
    let s = 0;
    for (let i = start; i < stop; i++) s += x[i];
    for (let i = start; i < stop; i++) out[i] = x[i] / s;
  }
  return out;
}

/** `count` standard normal draws × `scale` (Box-Muller, both values of each pair used). */
export function gaussian(random: Random, count: number, scale = 1): Float64Array {
  const out = new Float64Array(count);
  for (let i = 0; i < count; i += 2) {
    const u = 1 - random.next();
    const r = Math.sqrt(-2 * Math.log(u));
    const t = 2 * Math.PI * random.next();
    out[i] = r * Math.cos(t) * scale;
    if (i + 1 < count) out[i + 1] = r * Math.sin(t) * scale;
  }
  return out;
}
