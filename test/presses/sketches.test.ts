/**
 * The sketch presses (non-causal attention, leverage score, Compactor) on small hand-made layers: hand-worked
 * cases, and direct f64 re-computations of kvpress's rules written the way kvpress writes them (explicitly padded
 * chunks with its masks, an explicit matrix inverse instead of the Cholesky solve, the middle span sliced out).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LayerCache } from '../../src/cache/kv-cache.js';
import { AttendError } from '../../src/errors.js';
import { prefill } from '../../src/generate/prefill.js';
import { Random } from '../../src/generate/random.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import { COMPACTOR_DEFAULTS, CompactorPress } from '../../src/presses/compactor.js';
import { GaussianSketch, LEVERAGE_SCORE_DEFAULTS, LeverageScorePress, drawSketch, leverageRaw } from '../../src/presses/leverage-score.js';
import { cholesky, choleskySolve, choleskyWithJitter, zScoreAll } from '../../src/presses/linalg.js';
import { NonCausalAttentionPress, nonCausalAttentionRaw } from '../../src/presses/non-causal-attention.js';
import { createPress, pressEntry, resolveOptions } from '../../src/presses/registry.js';
import { rotate, unrotated } from '../../src/presses/rotary.js';
import { CompressionSession } from '../../src/presses/runner.js';
import { PARITY_DIR } from '../helpers/fixtures.js';
import { layerOf, queriesOf, randomRows, tinyConfig, viewOf } from '../helpers/press-view.js';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) => {
  assert.equal(a.length, b.length, `${what}: lengths`);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol * Math.max(1, Math.abs(b[i])), `${what} [${i}]: ${a[i]} vs ${b[i]}`);
};
const scaled = (rows: number[][], s: number) => rows.map((r) => r.map((x) => s * x));

/** A layer whose head h holds keys[h] and values[h] at the given positions (or 0…n−1). */
function buildLayer(keys: number[][][], values: number[][][], positions?: number[][]) {
  const d = values[0][0].length;
  const layer = LayerCache.empty(keys.length, d, 'f32');
  layer.heads.forEach((head, h) => {
    const pos = Int32Array.from(positions?.[h] ?? keys[h].map((_, i) => i));
    head.append(Float32Array.from(keys[h].flat()), Float32Array.from(values[h].flat()), pos, 0, d);
  });
  return layer;
}

// ---------------------------------------------------------------------------------------------------------------
// linalg

test('cholesky: a worked 2×2 factor, the solve, and kvpress’s jitter schedule', () => {
  // [[4, 2], [2, 3]] = L·Lᵀ with L = [[2, 0], [1, √2]].
  const L = cholesky(Float64Array.from([4, 2, 2, 3]), 2)!;
  close(L, [2, 0, 1, Math.SQRT2], 1e-15, 'L');
  // (L·Lᵀ)·y = [8, 7] → y = [1.25, 1.5].
  close(choleskySolve(L, 2, Float64Array.from([8, 7])), [1.25, 1.5], 1e-14, 'solve');
  assert.equal(cholesky(Float64Array.from([1, 1, 1, 1]), 2), null, 'singular: not positive definite');
  // Singular + 1e-2 (the first jitter) works.
  const J = choleskyWithJitter(Float64Array.from([1, 1, 1, 1]), 2, 1e-2, 5, 't');
  close(J, [Math.sqrt(1.01), 0, 1 / Math.sqrt(1.01), Math.sqrt(1.01 - 1 / 1.01)], 1e-12, 'jittered');
  // −50·I needs the fifth jitter (1e-2, 1e-1, 1, 10, 100); −150·I fails after five tries.
  close(choleskyWithJitter(Float64Array.from([-50, 0, 0, -50]), 2, 1e-2, 5, 't'), [Math.sqrt(50), 0, 0, Math.sqrt(50)], 1e-12, 'fifth try');
  assert.throws(() => choleskyWithJitter(Float64Array.from([-150, 0, 0, -150]), 2, 1e-2, 5, 'lev'), (e) => e instanceof AttendError && /^lev: .*5 tries/.test(e.message));
  // A jitter of 0 goes to 1e-2 first: −0.005·I works on the second try.
  close(choleskyWithJitter(Float64Array.from([-0.005]), 1, 0, 2, 't'), [Math.sqrt(0.005)], 1e-12, 'from 0');
});

test('zScoreAll uses one mean and one unbiased std over every head (kvpress’s scores.mean()/std())', () => {
  const z = zScoreAll([Float64Array.from([1, 2]), Float64Array.from([3, 4])]);
  const s = Math.sqrt(5 / 3);
  close(z[0], [-1.5 / s, -0.5 / s], 1e-12, 'head 0');
  close(z[1], [0.5 / s, 1.5 / s], 1e-12, 'head 1');
  // Constant scores: std 0 is clamped to 1e-6 → every z is 0; one value only (torch: NaN) → 0.
  assert.deepEqual(Array.from(zScoreAll([Float64Array.from([7, 7, 7])])[0]), [0, 0, 0]);
  assert.deepEqual(Array.from(zScoreAll([Float64Array.from([7]), new Float64Array(0)])[0]), [0]);
});

// ---------------------------------------------------------------------------------------------------------------
// non-causal attention

/**
 * kvpress's non_causal_chunked_attn + score, literally: zero-padded to a multiple of the chunk, per chunk the
 * dots of every (padded) query with every (padded) key, last chunk's padded query rows set to 0 and padded key
 * columns to −1e-9, softmax per row, column sums, trimmed; mean over the group; × value norms; avg-pool 3.
 * `held[g]`: the positions head g still holds (absent keys are not in any softmax); default all.
 */
function nonCausalReference(q: number[][], keys: number[][][], values: number[][][], group: number, d: number, cs: number, held?: number[][]): number[][] {
  const S = q.length;
  const Spad = Math.ceil(S / cs) * cs;
  const last = (Math.ceil(S / cs) - 1) * cs;
  return keys.map((_, g) => {
    const pos = held?.[g] ?? Array.from({ length: S }, (_, i) => i);
    const keyAt = (t: number) => (pos.includes(t) ? keys[g][pos.indexOf(t)] : null);
    const A = new Array(Spad).fill(0);
    for (let j = 0; j < group; j++) {
      const hq = g * group + j;
      for (let c = 0; c < Spad; c += cs) {
        for (let i = c; i < c + cs; i++) {
          const qi = i < S ? q[i].slice(hq * d, (hq + 1) * d) : new Array(d).fill(0);
          const row: number[] = [];
          for (let t = c; t < c + cs; t++) {
            const k = t < S ? keyAt(t) : new Array(d).fill(0);
            let dot = k === null ? -Infinity : k.reduce((a, x, e) => a + x * qi[e], 0);
            if (c === last && i >= S && k !== null) dot = 0;
            if (c === last && t >= S) dot = -1e-9;
            row.push(dot);
          }
          const m = Math.max(...row);
          const e = row.map((x) => Math.exp(x - m));
          const z = e.reduce((a, b) => a + b);
          e.forEach((x, t) => (A[c + t] += x / z / group));
        }
      }
    }
    const scores = pos.map((t, i) => A[t] * Math.hypot(...values[g][i]));
    return scores.map((_, i) => ((scores[i - 1] ?? 0) + scores[i] + (scores[i + 1] ?? 0)) / 3);
  });
}

function zRef(raw: number[][]): number[][] {
  const all = raw.flat();
  const mean = all.reduce((a, b) => a + b, 0) / all.length;
  const std = Math.sqrt(all.reduce((a, b) => a + (b - mean) ** 2, 0) / (all.length - 1));
  return raw.map((r) => r.map((x) => (x - mean) / Math.max(std, 1e-6)));
}

test('non-causal attention, worked by hand: zero queries and keys, padding as kvpress pads', () => {
  // S = 3, chunk 2: chunk 0 = entries 0, 1 (two uniform rows → 1 each); chunk 1 = entry 2 + one padded key
  // (logit −1e-9, so ≈ ½ of query 2's row) + one padded query (row [0, −1e-9]: ≈ ½ to entry 2) → ≈ 1.
  // Values of norm 1, 2, 1 → [1, 2, 1] → pooled [1, 4/3, 1].
  const config = tinyConfig(1, 1, 2);
  const cache = buildLayer([[[0, 0], [0, 0], [0, 0]]], [[[1, 0], [0, 2], [0, -1]]]);
  const view = viewOf(config, cache, 2, { queries: queriesOf([[0, 0], [0, 0], [0, 0]], [0, 1, 2]) });
  const raw = nonCausalAttentionRaw(view, view.queries!, 2, { qFrom: 0, qTo: 3, keys: [[0, 3]] });
  close(raw[0], [1, 4 / 3, 1], 1e-9, 'raw');
  // No 1/√d scale: q·k = 10 vs 0 puts (almost) all of query 0's attention on entry 1.
  const peaked = buildLayer([[[0, 0], [1, 0]]], [[[1, 0], [1, 0]]]);
  const v2 = viewOf(config, peaked, 1, { queries: queriesOf([[10, 0], [0, 0]], [0, 1]) });
  const r2 = nonCausalAttentionRaw(v2, v2.queries!, 2, { qFrom: 0, qTo: 2, keys: [[0, 2]] });
  // A = [e⁰/(1+e¹⁰) + ½, e¹⁰/(1+e¹⁰) + ½]; pooled.
  const a0 = 1 / (1 + Math.exp(10)) + 0.5;
  const a1 = Math.exp(10) / (1 + Math.exp(10)) + 0.5;
  close(r2[0], [(a0 + a1) / 3, (a0 + a1) / 3], 1e-12, 'unscaled');
});

test('non-causal attention equals kvpress’s padded, masked re-computation (GQA, several chunks, padding)', () => {
  const d = 4;
  for (const [S, cs] of [[10, 4], [8, 4], [5, 256], [9, 3]]) {
    const config = tinyConfig(4, 2, d);
    const keys = [scaled(randomRows(S, d, 1), 2), scaled(randomRows(S, d, 2), 2)];
    const values = [randomRows(S, d, 3), randomRows(S, d, 4)];
    const q = scaled(randomRows(S, 4 * d, 5), 2);
    const cache = buildLayer(keys, values);
    const view = viewOf(config, cache, S >> 1, { queries: queriesOf(q, Array.from({ length: S }, (_, i) => i)) });
    const got = new NonCausalAttentionPress({ chunkSize: cs }).score(view);
    const want = zRef(nonCausalReference(q, keys, values, 2, d, cs));
    got.forEach((s, g) => close(s, want[g], 2e-6, `S ${S} chunk ${cs} head ${g}`));
  }
});

test('non-causal attention on a compressed cache: each held entry in the chunk of its position', () => {
  const d = 4;
  const S = 11;
  const config = tinyConfig(2, 2, d);
  const held = [[0, 1, 3, 4, 5, 8, 10], [0, 2, 3, 6, 7, 9, 10]];
  const keys = held.map((p, g) => scaled(randomRows(p.length, d, 10 + g), 2));
  const values = held.map((p, g) => randomRows(p.length, d, 20 + g));
  const q = scaled(randomRows(S, 2 * d, 30), 2);
  const cache = buildLayer(keys, values, held);
  const view = viewOf(config, cache, 4, { seen: S, queries: queriesOf(q, Array.from({ length: S }, (_, i) => i)) });
  const got = new NonCausalAttentionPress({ chunkSize: 4 }).score(view);
  const want = zRef(nonCausalReference(q, keys, values, 1, d, 4, held));
  got.forEach((s, g) => close(s, want[g], 2e-6, `head ${g}`));
});

test('non-causal attention refuses a missing query record and a chunk of 0', () => {
  const config = tinyConfig(1, 1, 2);
  const cache = layerOf([randomRows(4, 2, 1)]);
  assert.throws(() => new NonCausalAttentionPress().score(viewOf(config, cache, 2)), /non-causal-attention: the prompt's queries were not recorded/);
  assert.throws(() => new NonCausalAttentionPress({ chunkSize: 0 }), (e) => e instanceof AttendError && /chunk-size must be a whole number ≥ 1/.test(e.message));
  assert.deepEqual(new NonCausalAttentionPress().needs, { queryWindow: Infinity });
});

// ---------------------------------------------------------------------------------------------------------------
// leverage score

/** Inverse of a small SPD matrix by Gauss–Jordan (not the Cholesky route the press takes). */
function inverse(a: number[][]): number[][] {
  const n = a.length;
  const m = a.map((r, i) => [...r, ...Array.from({ length: n }, (_, j) => (i === j ? 1 : 0))]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r][c]) > Math.abs(m[p][c])) p = r;
    [m[c], m[p]] = [m[p], m[c]];
    const v = m[c][c];
    for (let j = 0; j < 2 * n; j++) m[c][j] /= v;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r][c];
      for (let j = 0; j < 2 * n; j++) m[r][j] -= f * m[c][j];
    }
  }
  return m.map((r) => r.slice(n));
}

/**
 * kvpress's compute_leverage_scores for one head: pre-RoPE keys, centred, × Φ (draws · 1/√k, f32), G + 1e-2·I
 * (its first jitter), diag(X (G + 1e-2·I)⁻¹ Xᵀ) clamped at 0. `draws`: this head's d×k block.
 */
function leverageReference(config: ReturnType<typeof tinyConfig>, keys: number[][], positions: number[], draws: ArrayLike<number>, k: number): number[] {
  const d = keys[0].length;
  const pre = unrotated(config, Float32Array.from(keys.flat()), 1, Int32Array.from(positions));
  const rows = keys.map((_, i) => Array.from(pre.subarray(i * d, (i + 1) * d)));
  const mean = Array.from({ length: d }, (_, c) => rows.reduce((a, r) => a + r[c], 0) / rows.length);
  const scale = Math.fround(1 / Math.sqrt(k));
  const phi = Array.from({ length: d }, (_, c) => Array.from({ length: k }, (_, j) => Math.fround(draws[c * k + j] * scale)));
  const X = rows.map((r) => Array.from({ length: k }, (_, j) => r.reduce((a, x, c) => a + (x - mean[c]) * phi[c][j], 0)));
  const G = Array.from({ length: k }, (_, a) => Array.from({ length: k }, (_, b) => X.reduce((s, x) => s + x[a] * x[b], 0) + (a === b ? 1e-2 : 0)));
  const inv = inverse(G);
  return X.map((x) => Math.max(0, x.reduce((s, xa, a) => s + xa * x.reduce((t, xb, b) => t + inv[a][b] * xb, 0), 0)));
}

function withSketchFile(values: number[], run: (path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'attend-sketch-'));
  const path = join(dir, 'phi.randn.f32');
  const buf = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => buf.writeFloatLE(v, 4 * i));
  writeFileSync(path, buf);
  try {
    run(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('leverage scores from a sketch file equal kvpress’s rule, one block of draws per call, in call order', () => {
  const d = 4;
  const n = 9;
  for (const k of [3, 6]) {
    const config = tinyConfig(4, 2, d);
    const heads = [scaled(randomRows(n, d, 1), 3), scaled(randomRows(n, d, 2), 3)];
    const draws = Array.from(randomRows(2 * 2 * d * k, 1, 7).flat(), (x) => Math.fround(2 * x));
    withSketchFile(draws, (path) => {
      const press = new LeverageScorePress({ sketchDimension: k, seed: 0, sketch: path });
      const cache = layerOf(heads);
      for (let call = 0; call < 2; call++) {
        const got = press.score(viewOf(config, cache, 4, { layer: call }));
        const block = draws.slice(call * 2 * d * k, (call + 1) * 2 * d * k);
        const raw = heads.map((rows, g) => leverageReference(config, rows, rows.map((_, i) => i), block.slice(g * d * k, (g + 1) * d * k), k));
        const want = zRef(raw);
        got.forEach((s, g) => close(s, want[g], 2e-5, `k ${k} call ${call} head ${g}`));
      }
      assert.throws(() => press.score(viewOf(config, cache, 4)), (e) => e instanceof AttendError && /^leverage-score: the sketch file .* holds \d+ values; call 3 needs \d+ more than the 0 left$/.test(e.message));
    });
  }
});

test('leverage scores, worked: the hat diagonal sums to the rank; an outlier key scores highest', () => {
  // d = 2, k = 3 (rank 2 after centring, ≤ k): with large keys the ridge 1e-2 is negligible and the leverages of
  // n centred rows sum to 2. The far key 5 is the outlier.
  const config = tinyConfig(1, 1, 2);
  const keys = [[[100, 0], [0, 100], [-100, 0], [0, -100], [40, 40], [900, 700]]];
  const draws = [1, 0.5, -1, 0.2, 1, 0.7];
  withSketchFile(draws, (path) => {
    const cache = layerOf(keys);
    const view = viewOf(config, cache, 3);
    const press = new LeverageScorePress({ sketchDimension: 3, seed: 0, sketch: path });
    const z = press.score(view)[0];
    const raw = leverageRaw(view, drawSketch(new GaussianSketch(0, path, 't'), 1, 2, 3), 3, [[0, 6]], 't')[0];
    close([raw.reduce((a, b) => a + b)], [2], 1e-6, 'sum of leverages');
    close(raw, leverageReference(config, keys[0], [0, 1, 2, 3, 4, 5], draws, 3), 1e-9, 'against the reference');
    assert.equal(Array.from(z).indexOf(Math.max(...z)), 5);
  });
});

test('leverage scores use the pre-RoPE keys (rotated back from their positions)', () => {
  // The same pre-RoPE keys at other positions must score the same, since every key is rotated back first.
  const d = 4;
  const config = tinyConfig(1, 1, d);
  const pre = scaled(randomRows(7, d, 3), 5);
  const at = (positions: number[]) => {
    const rows = Float32Array.from(pre.flat());
    rotate(config, rows, 1, Int32Array.from(positions));
    return layerOf([Array.from({ length: 7 }, (_, i) => Array.from(rows.subarray(i * d, (i + 1) * d)))], positions);
  };
  const draws = Array.from(randomRows(d * 3, 1, 9).flat());
  withSketchFile([...draws, ...draws], (path) => {
    const press = new LeverageScorePress({ sketchDimension: 3, seed: 0, sketch: path });
    const a = press.score(viewOf(config, at([0, 1, 2, 3, 4, 5, 6]), 3))[0];
    const b = press.score(viewOf(config, at([3, 9, 10, 20, 21, 30, 40]), 3))[0];
    close(a, b, 1e-4, 'position-independent');
  });
});

test('leverage scores from the seed: reproducible, standard normal draws, another seed differs', () => {
  const config = tinyConfig(2, 2, 4);
  const cache = layerOf([scaled(randomRows(12, 4, 1), 3), scaled(randomRows(12, 4, 2), 3)]);
  const run = (seed: number) => new LeverageScorePress({ ...LEVERAGE_SCORE_DEFAULTS, seed }).score(viewOf(config, cache, 6)).map((s) => Array.from(s));
  assert.deepEqual(run(3), run(3));
  assert.notDeepEqual(run(3), run(4));
  // Successive calls draw fresh sketches (as torch.randn at every call).
  const press = new LeverageScorePress({ ...LEVERAGE_SCORE_DEFAULTS, seed: 3 });
  const first = press.score(viewOf(config, cache, 6)).map((s) => Array.from(s));
  assert.notDeepEqual(first, press.score(viewOf(config, cache, 6)).map((s) => Array.from(s)));
});

test('the seeded Gaussian: Box–Muller on Attend’s generator, both values of each pair used, in order', () => {
  const random = new Random(5);
  const want: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = Math.sqrt(-2 * Math.log(1 - random.next()));
    const a = 2 * Math.PI * random.next();
    want.push(Math.fround(r * Math.cos(a)), Math.fround(r * Math.sin(a)));
  }
  const sketch = new GaussianSketch(5, '', 't');
  // A call's draws continue where the last call's stopped (an odd count leaves the spare for the next call).
  assert.deepEqual([...sketch.next(3), ...sketch.next(3)], want);
});

test('the seeded Gaussian has mean 0 and variance 1', () => {
  const x = new GaussianSketch(1, '', 't').next(200000);
  const mean = x.reduce((a, b) => a + b, 0) / x.length;
  const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length;
  const fourth = x.reduce((a, b) => a + (b - mean) ** 4, 0) / x.length;
  assert.ok(Math.abs(mean) < 0.01 && Math.abs(variance - 1) < 0.01 && Math.abs(fourth - 3) < 0.05, `${mean} ${variance} ${fourth}`);
});

test('leverage-score refuses a missing or malformed sketch file and a sketch dimension of 0', () => {
  assert.throws(() => new LeverageScorePress({ ...LEVERAGE_SCORE_DEFAULTS, sketch: '/nonexistent/phi.f32' }), (e) => e instanceof AttendError && /cannot read the sketch file/.test(e.message) && !e.message.includes('\n'));
  withSketchFile([1], (path) => {
    writeFileSync(path, Buffer.alloc(6));
    assert.throws(() => new LeverageScorePress({ ...LEVERAGE_SCORE_DEFAULTS, sketch: path }), /is not f32 values \(6 bytes\)/);
  });
  assert.throws(() => new LeverageScorePress({ ...LEVERAGE_SCORE_DEFAULTS, sketchDimension: 0 }), /sketch-dimension must be a whole number ≥ 1/);
});

// ---------------------------------------------------------------------------------------------------------------
// Compactor

test('compactor equals kvpress’s rule: sinks sliced off, both halves z-scored on the middle, blended, padded with the max', () => {
  const d = 4;
  const S = 23;
  const k = 3;
  const config = tinyConfig(4, 2, d);
  const keys = [scaled(randomRows(S, d, 1), 2), scaled(randomRows(S, d, 2), 2)];
  const values = [randomRows(S, d, 3), randomRows(S, d, 4)];
  const q = scaled(randomRows(S, 4 * d, 5), 2);
  const draws = Array.from(randomRows(2 * d * k, 1, 6).flat());
  for (const [ratio, blending] of [[0.5, 'ratio'], [0.25, 'ratio'], [0.5, 2]] as const) {
    withSketchFile(draws, (path) => {
      const press = new CompactorPress({ ...COMPACTOR_DEFAULTS, sinkSizeStart: 3, sinkSizeEnd: 2, chunkSize: 5, sketchDimension: k, blending, sketch: path });
      const view = viewOf(config, buildLayer(keys, values), 11, { ratio, queries: queriesOf(q, Array.from({ length: S }, (_, i) => i)) });
      const got = press.score(view);
      // The middle [3, 21), chunked from its own start (position 3), as kvpress slices hidden states, keys, values.
      const mid = <T>(rows: T[]) => rows.slice(3, S - 2);
      const lev = zRef(keys.map((rows, g) => leverageReference(config, mid(rows), mid(rows.map((_, i) => i)), draws.slice(g * d * k, (g + 1) * d * k), k)));
      const att = zRef(nonCausalReference(mid(q), keys.map(mid), values.map(mid), 2, d, 5));
      const w = blending === 'ratio' ? ratio : blending;
      const blended = lev.map((l, g) => l.map((x, i) => w * x + att[g][i]));
      const max = Math.max(...blended.flat());
      got.forEach((s, g) => close(s, [max, max, max, ...blended[g], max, max], 2e-5, `ratio ${ratio} blending ${blending} head ${g}`));
    });
  }
});

test('compactor on short inputs: sinks take what there is, no middle scores 0', () => {
  const config = tinyConfig(2, 1, 2);
  const press = new CompactorPress();
  for (const n of [5, 8, 10, 12]) {
    const cache = layerOf([scaled(randomRows(n, 2, n), 2)]);
    const view = viewOf(config, cache, 3, { queries: queriesOf(randomRows(n, 4, 1), Array.from({ length: n }, (_, i) => i)) });
    assert.deepEqual(Array.from(press.score(view)[0]), new Array(n).fill(0), `n ${n}`);
  }
  // 13 entries: one middle entry (z-scores of one value: 0), the 12 sinks pad with its score.
  const cache = layerOf([scaled(randomRows(13, 2, 2), 2)]);
  const view = viewOf(config, cache, 3, { queries: queriesOf(randomRows(13, 4, 1), Array.from({ length: 13 }, (_, i) => i)) });
  assert.deepEqual(Array.from(press.score(view)[0]), new Array(13).fill(0));
});

test('compactor on the parity model: the prefill keeps the 8 first and 4 last positions of every head', () => {
  const lm = loadModel(join(PARITY_DIR, 'llama-gqa-tied'));
  const ids = Array.from({ length: 40 }, (_, i) => (i * 53 + 7) % lm.config.vocabSize);
  const cache = newCache(lm.config);
  const session = new CompressionSession({ press: createPress('compactor', { 'chunk-size': 16 }), budget: { ratio: 0.5 } }, lm.model, cache);
  prefill(lm.model, cache, ids, { chunkSize: 16, observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, ids.length) });
  for (const layer of cache.layers) {
    for (const head of layer.heads) {
      const p = Array.from(head.positions);
      assert.equal(p.length, 20);
      assert.deepEqual(p.slice(0, 8), [0, 1, 2, 3, 4, 5, 6, 7]);
      assert.deepEqual(p.slice(-4), [36, 37, 38, 39]);
    }
  }
});

// ---------------------------------------------------------------------------------------------------------------
// registry

test('registry: kvpress’s defaults, and bad options as one-line errors', () => {
  assert.deepEqual(resolveOptions(pressEntry('non-causal-attention'), {}), { 'chunk-size': 256 });
  assert.deepEqual(resolveOptions(pressEntry('leverage-score'), {}), { 'sketch-dimension': 48, seed: 0, sketch: '' });
  assert.deepEqual(resolveOptions(pressEntry('compactor'), {}), {
    'sink-size-start': 8,
    'sink-size-end': 4,
    'chunk-size': 256,
    'sketch-dimension': 48,
    blending: 'ratio',
    seed: 0,
    sketch: '',
  });
  const one = (f: () => unknown, re: RegExp) => assert.throws(f, (e) => e instanceof AttendError && re.test(e.message) && !e.message.includes('\n'));
  one(() => createPress('non-causal-attention', { 'chunk-size': '0' }), /chunk-size must be a whole number ≥ 1/);
  one(() => createPress('non-causal-attention', { 'chunk-size': 'x' }), /chunk-size must be a whole number ≥ 0/);
  one(() => createPress('leverage-score', { 'sketch-dimension': '0' }), /sketch-dimension must be a whole number ≥ 1/);
  one(() => createPress('leverage-score', { sketch: '/no/such/file.f32' }), /cannot read the sketch file/);
  one(() => createPress('compactor', { blending: 'half' }), /blending must be a number or "ratio"/);
  one(() => createPress('compactor', { blending: '' }), /blending must be a number or "ratio"/);
  one(() => createPress('compactor', { 'sink-size-end': '-1' }), /sink-size-end must be a whole number ≥ 0/);
  assert.equal((createPress('compactor', { blending: '0.35' }) as CompactorPress).options.blending, 0.35);
  assert.equal((createPress('compactor', {}) as CompactorPress).options.blending, 'ratio');
});

