/**
 * The "scorers" group's kvpress presses (expected attention with and without stored statistics, CAP, KeyDiff,
 * LagKV, CUR) on small hand-made layers: each score vector against a direct f64 re-computation of kvpress's rule
 * written here independently (naive loops, explicit rotation matrices, Gaussian elimination), hand-worked
 * cases, edge cases and option errors.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LayerCache } from '../../src/cache/kv-cache.js';
import { prefill } from '../../src/generate/prefill.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import type { ModelConfig } from '../../src/models/config.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import { CapPress, CAP_DEFAULTS, type CapOptions } from '../../src/presses/cap.js';
import { CURPress, CUR_DEFAULTS, type CUROptions } from '../../src/presses/cur.js';
import {
  collectQueryStatistics,
  EXPECTED_ATTENTION_DEFAULTS,
  type ExpectedAttentionOptions,
  ExpectedAttentionPress,
  ExpectedAttentionStatsPress,
  readQueryStatistics,
  writeQueryStatistics,
} from '../../src/presses/expected-attention.js';
import { KeyDiffPress } from '../../src/presses/keydiff.js';
import { LagKVPress, LAGKV_DEFAULTS, type LagKVOptions } from '../../src/presses/lagkv.js';
import { PressRecorder } from '../../src/presses/observe.js';
import { type LayerView, topK } from '../../src/presses/press.js';
import { createPress, pressEntry, resolveOptions } from '../../src/presses/registry.js';
import { rotate } from '../../src/presses/rotary.js';
import { PARITY_DIR } from '../helpers/fixtures.js';
import { randomRows, tinyConfig, viewOf } from '../helpers/press-view.js';

type Rows = number[][];

/** A layer whose head h holds keys[h] and values[h] at positions 0…n−1. */
function layerKV(keys: Rows[], values: Rows[]): LayerCache {
  const d = keys[0][0].length;
  const layer = LayerCache.empty(keys.length, d, 'f32');
  keys.forEach((rows, h) => {
    const pos = Int32Array.from(rows.map((_, i) => i));
    layer.heads[h].append(Float32Array.from(rows.flat()), Float32Array.from(values[h].flat()), pos, 0, d);
  });
  return layer;
}

function assertClose(got: ArrayLike<number>, want: number[], what: string, rel = 1e-5): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const tol = rel * Math.max(1e-3, Math.abs(want[i]));
    assert.ok(Math.abs(got[i] - want[i]) <= tol, `${what}: entry ${i}: ${got[i]} vs ${want[i]}`);
  }
}

const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i], 0);
const norm = (a: number[]) => Math.sqrt(dot(a, a));
const matVec = (M: Rows, x: number[]) => M.map((row) => dot(row, x));
const transpose = (M: Rows) => M[0].map((_, j) => M.map((row) => row[j]));
const matMul = (A: Rows, B: Rows) => A.map((row) => B[0].map((_, j) => row.reduce((s, x, k) => s + x * B[k][j], 0)));
const softmax = (x: number[]) => {
  const m = Math.max(...x);
  const e = x.map((v) => Math.exp(v - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
};

/** R̄[i][j]: the RoPE rotation averaged over [from, from + count), column j the mean of e_j rotated to each position. */
function averagedRotation(config: ModelConfig, from: number, count: number): Rows {
  const d = config.headDim;
  const R: Rows = Array.from({ length: d }, () => new Array(d).fill(0));
  for (let j = 0; j < d; j++) {
    for (let t = 0; t < count; t++) {
      const e = new Float32Array(d);
      e[j] = 1;
      rotate(config, e, 1, Int32Array.of(from + t));
      for (let i = 0; i < d; i++) R[i][j] += e[i] / count;
    }
  }
  return R;
}

/** Pre-RoPE query rows [n × heads·d] rotated to positions 0…n−1, as the recorder holds them. */
function recorded(config: ModelConfig, pre: Rows) {
  const data = Float32Array.from(pre.flat());
  const positions = Int32Array.from(pre.map((_, i) => i));
  rotate(config, data, config.numHeads, positions);
  return { data, positions };
}

/** Per query head: mean and covariance (÷ rows) of its columns of `Q`. */
function statsOf(Q: Rows, heads: number, d: number): { mean: Rows; cov: Rows[] } {
  const mean: Rows = [];
  const cov: Rows[] = [];
  for (let h = 0; h < heads; h++) {
    const cols = Q.map((q) => q.slice(h * d, (h + 1) * d));
    const m = cols[0].map((_, i) => cols.reduce((s, q) => s + q[i], 0) / cols.length);
    mean.push(m);
    cov.push(m.map((_, i) => m.map((__, j) => cols.reduce((s, q) => s + (q[i] - m[i]) * (q[j] - m[j]), 0) / cols.length)));
  }
  return { mean, cov };
}

/** Sinks padded with the layer's max + 1. */
function pad(rest: Rows, sinks: number): Rows {
  const max = Math.max(...rest.flat());
  return rest.map((r) => [...new Array(sinks).fill(max + 1), ...r]);
}

/** kvpress's ExpectedAttentionPress.score, in f64, from the statistics (before rotation) of each query head. */
function expectedReference(config: ModelConfig, keys: Rows[], values: Rows[], stats: { mean: Rows; cov: Rows[] }, seen: number, o: ExpectedAttentionOptions): Rows {
  const { numHeads, numKvHeads, headDim: d } = config;
  const R = averagedRotation(config, seen, o.nFuturePositions);
  const group = numHeads / numKvHeads;
  const rest = keys.map((rows, g) => {
    const ks = rows.slice(o.nSink);
    const acc = new Array(ks.length).fill(0);
    for (let j = 0; j < group; j++) {
      const h = g * group + j;
      const m = matVec(R, stats.mean[h]);
      const C = matMul(matMul(R, stats.cov[h]), transpose(R));
      const logits = ks.map((k) => dot(m, k) / Math.sqrt(d) + (o.useCovariance ? dot(k, matVec(C, k)) / d / 2 : 0));
      softmax(logits).forEach((p, i) => (acc[i] += p / group));
    }
    return acc.map((s, i) => (o.useVnorm ? (s + o.epsilon) * norm(values[g][o.nSink + i]) : s));
  });
  return pad(rest, o.nSink);
}

function expectedCase(n: number, seed: number) {
  const d = 4;
  const config = tinyConfig(4, 2, d);
  const keys = [randomRows(n, d, seed), randomRows(n, d, seed + 1)].map((h) => h.map((r) => r.map((x) => 2 * x)));
  const values = [randomRows(n, d, seed + 2), randomRows(n, d, seed + 3)];
  const pre = randomRows(n, 4 * d, seed + 4).map((r, t) => r.map((x, c) => 2 * x + (c % 3) * 0.5 + 0.01 * t));
  const cache = layerKV(keys, values);
  const view = viewOf(config, cache, Math.floor(n / 2), { queries: recorded(config, pre) });
  return { config, keys, values, pre, cache, view, d };
}

test('expected-attention equals a direct re-computation of its rule (defaults, and without covariance or value norms)', () => {
  const { config, keys, values, pre, view, d } = expectedCase(20, 11);
  for (const o of [
    EXPECTED_ATTENTION_DEFAULTS,
    { ...EXPECTED_ATTENTION_DEFAULTS, useCovariance: false, nFuturePositions: 7 },
    { ...EXPECTED_ATTENTION_DEFAULTS, useVnorm: false, nSink: 2 },
    { ...EXPECTED_ATTENTION_DEFAULTS, epsilon: 0.05, nSink: 0, nFuturePositions: 1 },
  ]) {
    const want = expectedReference(config, keys, values, statsOf(pre.slice(o.nSink), 4, d), view.seen, o);
    new ExpectedAttentionPress(o).score(view).forEach((s, g) => assertClose(s, want[g], `${JSON.stringify(o)} head ${g}`));
  }
});

test('expected-attention keeps the sinks, pads them with the layer maximum + 1 across heads', () => {
  const { view } = expectedCase(12, 3);
  const scores = new ExpectedAttentionPress().score(view);
  const max = Math.max(...scores.flatMap((s) => Array.from(s.subarray(4))));
  for (const s of scores) {
    for (let i = 0; i < 4; i++) assert.equal(s[i], Math.fround(max + 1));
    assert.deepEqual(Array.from(topK(s, 6)).slice(0, 4), [0, 1, 2, 3]);
  }
});

test('expected-attention refuses a cache of at most n-sink entries and a prompt of at most n-sink queries', () => {
  const { view } = expectedCase(4, 5);
  assert.throws(() => new ExpectedAttentionPress().score(view), /expected-attention: a head holds 4 entries, not more than n-sink=4/);
  const long = expectedCase(8, 5).view;
  const few = { ...long, queries: { data: long.queries!.data.subarray(0, 3 * 16), positions: long.queries!.positions.subarray(0, 3) } };
  assert.throws(() => new ExpectedAttentionPress().score(few), /needs more than 4 recorded queries/);
  assert.throws(() => new ExpectedAttentionPress({ ...EXPECTED_ATTENTION_DEFAULTS, nSink: -1 }), /n-sink must be a whole number/);
});

test('expected-attention-stats reads kvpress-format statistics and scores with them (file and folder)', () => {
  const { config, keys, values, cache, d } = expectedCase(16, 21);
  const dir = mkdtempSync(join(tmpdir(), 'attend-ea-stats-'));
  const mean = randomRows(4, d, 31);
  const cov = Array.from({ length: 4 }, (_, h) => {
    const A = randomRows(d, d, 40 + h);
    return matMul(A, transpose(A)); // symmetric, as a covariance
  });
  const stored = { layers: 1, heads: 4, headDim: d, mean: Float32Array.from(mean.flat()), cov: Float32Array.from(cov.flatMap((c) => c.flat())) };
  const file = writeQueryStatistics(join(dir, 'stats.safetensors'), stored);
  writeQueryStatistics(join(dir, 'folder'), stored, { model_name: 'tiny' });
  assert.equal(JSON.parse(readFileSync(join(dir, 'folder', 'config.json'), 'utf8')).model_name, 'tiny');
  const f32 = (rows: Rows) => rows.map((r) => r.map(Math.fround));
  const want = expectedReference(config, keys, values, { mean: f32(mean), cov: cov.map(f32) }, 16, EXPECTED_ATTENTION_DEFAULTS);
  for (const path of [file, join(dir, 'folder')]) {
    const press = new ExpectedAttentionStatsPress(readQueryStatistics(path));
    assert.deepEqual(press.needs, {}, 'no queries recorded');
    // No queries in the view: the statistics come from the file.
    press.score(viewOf(config, cache, 8)).forEach((s, g) => assertClose(s, want[g], `${path} head ${g}`));
  }
  const other = new ExpectedAttentionStatsPress(readQueryStatistics(file));
  assert.throws(() => other.score(viewOf(tinyConfig(4, 2, d, 2), cache, 8)), /statistics are for 1 layers × 4 heads × head_dim 4, the model has 2 × 4 × 4/);
  writeSafetensors(join(dir, 'other.safetensors'), { query_mean: { dtype: 'f32', shape: [1, 4, d], data: stored.mean } });
  assert.throws(() => readQueryStatistics(join(dir, 'other.safetensors')), /no tensor "query_cov" \(not a kvpress ExpectedAttentionStats file\)/);
  assert.throws(() => readQueryStatistics(join(dir, 'nothing')), /does not exist/);
  assert.throws(() => createPress('expected-attention-stats', {}), /needs --press-opt stats=/);
});

test('statistics collected from a prompt give expected-attention-stats the scores expected-attention gives it', () => {
  const lm = loadModel(join(PARITY_DIR, 'llama-gqa-tied'));
  const ids = Array.from({ length: 30 }, (_, i) => (i * 37 + 5) % lm.config.vocabSize);
  const width = lm.config.numHeads * lm.config.headDim;
  const recorder = new PressRecorder({ queryWindow: Infinity }, width);
  const cache = newCache(lm.config);
  prefill(lm.model, cache, ids, { observer: recorder, chunkSize: 7 });
  const stats = collectQueryStatistics(lm.model, [ids], 4);
  // kvpress's collected covariance divides by N − 1, the press's own by N.
  const N = ids.length - 4;
  const same = { ...stats, cov: stats.cov.map((x) => (x * (N - 1)) / N) };
  for (let layer = 0; layer < lm.config.numLayers; layer++) {
    const view: LayerView = {
      layer, config: lm.config, backend: lm.model.backend, cache: cache.layers[layer], seen: ids.length, keep: 15, ratio: 0.5, uniform: 15,
      queries: recorder.window(layer),
    };
    const want = new ExpectedAttentionPress().score(view);
    new ExpectedAttentionStatsPress(same).score(view).forEach((s, g) => assertClose(s, Array.from(want[g]), `layer ${layer} head ${g}`, 1e-4));
  }
});

/** Solves A·x = b by Gaussian elimination with partial pivoting. */
function solve(A: Rows, b: number[]): number[] {
  const n = b.length;
  const M = A.map((row, i) => [...row, b[i]]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r][c]) > Math.abs(M[p][c])) p = r;
    [M[c], M[p]] = [M[p], M[c]];
    for (let r = c + 1; r < n; r++) {
      const f = M[r][c] / M[c][c];
      for (let k = c; k <= n; k++) M[r][k] -= f * M[c][k];
    }
  }
  const x = new Array(n).fill(0);
  for (let r = n - 1; r >= 0; r--) x[r] = (M[r][n] - M.slice(r + 1).reduce((s, _, k) => s + M[r][r + 1 + k] * x[r + 1 + k], 0)) / M[r][r];
  return x;
}

/** kvpress's CapPress.score in f64: the anchor as the mean of the rotated queries (not the rotated mean). */
function capReference(config: ModelConfig, keys: Rows[], values: Rows[], pre: Rows, seen: number, o: CapOptions): Rows {
  const { numHeads, numKvHeads, headDim: d } = config;
  const R = averagedRotation(config, seen, o.nFuturePositions);
  const Q = pre.slice(o.nSink);
  const group = numHeads / numKvHeads;
  const rest = keys.map((rows, g) => {
    const ks = rows.slice(o.nSink);
    const vs = values[g].slice(o.nSink);
    const acc = new Array(ks.length).fill(0);
    for (let j = 0; j < group; j++) {
      const h = g * group + j;
      const rotated = Q.map((q) => matVec(R, q.slice(h * d, (h + 1) * d)));
      const anchor = rotated[0].map((_, i) => rotated.reduce((s, q) => s + q[i], 0) / rotated.length);
      const stat = ks.map((k) => Math.min(1, Math.max(-1, dot(anchor, k) / norm(anchor) / norm(k))));
      const top = Math.max(...stat.map((s) => o.tau * s));
      const w = stat.map((s) => Math.exp(o.tau * s - top));
      const A: Rows = Array.from({ length: d }, (_, r) => Array.from({ length: d }, (__, c) => (r === c ? 1 : 0)));
      vs.forEach((v, i) => {
        for (let r = 0; r < d; r++) for (let c = 0; c < d; c++) A[r][c] += (w[i] + o.epsilon) * v[r] * v[c];
      });
      vs.forEach((v, i) => (acc[i] += (w[i] * dot(v, solve(A, v))) / group));
    }
    return acc;
  });
  return pad(rest, o.nSink);
}

test('cap equals a direct re-computation of its rule', () => {
  const { config, keys, values, pre, view } = expectedCase(18, 51);
  for (const o of [CAP_DEFAULTS, { ...CAP_DEFAULTS, tau: 1.5, nSink: 2, nFuturePositions: 9 }, { ...CAP_DEFAULTS, epsilon: 0.3, nSink: 0 }]) {
    const want = capReference(config, keys, values, pre, view.seen, o);
    new CapPress(o).score(view).forEach((s, g) => assertClose(s, want[g], `${JSON.stringify(o)} head ${g}`));
  }
  assert.throws(() => new CapPress().score(expectedCase(3, 1).view), /cap: a head holds 3 entries, not more than n-sink=4/);
  assert.throws(() => new CapPress({ ...CAP_DEFAULTS, epsilon: -1 }), /cap: option epsilon must be a number ≥ 0/);
});

test('keydiff keeps the keys least similar to the mean normalised key (by hand)', () => {
  const config = tinyConfig(1, 1, 2);
  const keys = [[[1, 0], [0, 1], [1, 1], [2, 0]]];
  const cache = layerKV(keys, keys);
  // normalised: (1,0), (0,1), (.7071,.7071), (1,0); anchor (.67678, .42678), |anchor| .80010
  const s = new KeyDiffPress().score(viewOf(config, cache, 2))[0];
  assertClose(s, [-0.84586, -0.5334, -0.97529, -0.84586], 'scores', 1e-4);
  assert.deepEqual(Array.from(topK(s, 2)), [0, 1]);
  // Against the formula on random keys, per head.
  const many = [randomRows(15, 4, 61), randomRows(15, 4, 62)];
  const scores = new KeyDiffPress().score(viewOf(tinyConfig(2, 2, 4), layerKV(many, many), 5));
  many.forEach((rows, h) => {
    const anchor = [0, 1, 2, 3].map((c) => rows.reduce((a, k) => a + k[c] / norm(k), 0) / rows.length);
    assertClose(scores[h], rows.map((k) => -dot(k, anchor) / norm(k) / norm(anchor)), `head ${h}`);
  });
});

/** kvpress's LagKVPress.score in f64. */
function lagReference(keys: Rows, values: Rows, o: LagKVOptions): number[] {
  const n = keys.length;
  const { nSink: s, lagSize: lag } = o;
  if (n < s + 2 * lag) return keys.map((_, i) => (i < s ? 1 : (i - s) / (n - s)));
  const parts = Math.floor((n - s) / lag);
  const states = (x: Rows) => {
    const out: number[][] = [];
    for (let p = 0; p + 1 < parts; p++) {
      const ref = x.slice(s + (p + 1) * lag, s + (p + 2) * lag);
      const lo = ref[0].map((_, c) => Math.min(...ref.map((r) => r[c])));
      const hi = ref[0].map((_, c) => Math.max(...ref.map((r) => r[c])));
      const std = x.slice(s + p * lag, s + (p + 1) * lag).map((row) => {
        const z = row.map((v, c) => (v - lo[c]) / (hi[c] - lo[c]));
        const m = z.reduce((a, b) => a + b, 0) / z.length;
        return Math.sqrt(z.reduce((a, b) => a + (b - m) ** 2, 0) / (z.length - 1));
      });
      out.push(softmax(std));
    }
    return out;
  };
  const k = states(keys);
  const v = states(values);
  const score = new Array(n).fill(1);
  k.forEach((kp, p) => {
    const sp = kp.map((x, t) => (x + v[p][t]) / 2);
    sp.forEach((x, t) => {
      score[s + p * lag + t] = o.crossScoring ? x : sp.filter((y, u) => y < x || (y === x && u < t)).length / lag;
    });
  });
  return score;
}

test('lagkv equals a direct re-computation of its rule, ranked and cross-scored', () => {
  const d = 4;
  const config = tinyConfig(2, 2, d);
  const keys = [randomRows(27, d, 71), randomRows(27, d, 72)];
  const values = [randomRows(27, d, 73), randomRows(27, d, 74)];
  const view = viewOf(config, layerKV(keys, values), 14);
  for (const o of [{ nSink: 2, lagSize: 5, crossScoring: false }, { nSink: 2, lagSize: 5, crossScoring: true }, { nSink: 0, lagSize: 9, crossScoring: false }, { nSink: 3, lagSize: 4, crossScoring: true }]) {
    const scores = new LagKVPress(o).score(view);
    keys.forEach((_, h) => assertClose(scores[h], lagReference(keys[h], values[h], o), `${JSON.stringify(o)} head ${h}`));
  }
  // nSink 2, lag 5, 27 entries: partitions [2,7) … [22,27); [2,22) scored, the last full one [22,27) kept.
  const ranked = new LagKVPress({ nSink: 2, lagSize: 5, crossScoring: false }).score(view)[0];
  assert.deepEqual(Array.from(ranked.subarray(22)), [1, 1, 1, 1, 1]);
  // Ranks: each scored partition holds 0, 1/5, …, 4/5 once.
  for (let p = 0; p < 4; p++) assert.deepEqual(Array.from(ranked.subarray(2 + 5 * p, 7 + 5 * p)).sort(), [0, 0.2, 0.4, 0.6, 0.8].map(Math.fround));
});

test('lagkv on a cache shorter than n-sink + 2·lag-size keeps the sinks and the most recent entries', () => {
  const config = tinyConfig(1, 1, 2);
  const keys = [randomRows(10, 2, 81)];
  const s = new LagKVPress({ nSink: 4, lagSize: 4, crossScoring: false }).score(viewOf(config, layerKV(keys, keys), 6))[0];
  assertClose(s, [1, 1, 1, 1, 0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6], 'scores');
  assert.deepEqual(Array.from(topK(s, 6)), [0, 1, 2, 3, 8, 9]);
  assert.deepEqual(Array.from(new LagKVPress().score(viewOf(config, layerKV([keys[0].slice(0, 3)], [keys[0].slice(0, 3)]), 2))[0]), [1, 1, 1]);
  assert.throws(() => new LagKVPress({ ...LAGKV_DEFAULTS, lagSize: 0 }), /lagkv: option lag-size must be a whole number ≥ 1/);
});

/** kvpress's CURPress.score in f64; G [d × r] already scaled. */
function curReference(keys: Rows, values: Rows, o: CUROptions, G?: Rows): number[] {
  const project = (x: number[]) => (G ? G[0].map((_, r) => x.reduce((s, v, c) => s + v * G[c][r], 0)) : x);
  let k2 = keys.map((k) => dot(project(k), project(k)));
  let v2 = values.map((v) => dot(project(v), project(v)));
  const local = (x: number[]) =>
    x.map((v, i) => {
      const start = i - (i % o.localWindowSize);
      return v / x.slice(start, start + o.localWindowSize).reduce((a, b) => a + b, 0);
    });
  if (o.useLocalApproximation) {
    k2 = local(k2);
    v2 = local(v2);
  }
  const s = k2.map((k, i) => ({ key: k, value: v2[i], kv_avg: (k + v2[i]) / 2, kv_product: k * v2[i] })[o.leverageType]);
  const total = s.reduce((a, b) => a + b, 0);
  return s.map((x, i) => (i < o.numSinks ? 1 : x / total));
}

test('cur equals a direct re-computation of its rule for every leverage type, with and without local windows', () => {
  const d = 4;
  const config = tinyConfig(2, 2, d);
  const keys = [randomRows(21, d, 91), randomRows(21, d, 92)];
  const values = [randomRows(21, d, 93), randomRows(21, d, 94)];
  const view = viewOf(config, layerKV(keys, values), 10);
  for (const leverageType of ['key', 'value', 'kv_avg', 'kv_product'] as const) {
    for (const local of [true, false]) {
      // 21 entries in windows of 8: the last window holds 5.
      const o = { ...CUR_DEFAULTS, leverageType, useLocalApproximation: local, localWindowSize: 8, numSinks: leverageType === 'key' ? 0 : 3 };
      new CURPress(o).score(view).forEach((s, h) => assertClose(s, curReference(keys[h], values[h], o), `${leverageType} local ${local} head ${h}`));
    }
  }
  assert.throws(() => new CURPress({ ...CUR_DEFAULTS, leverageType: 'both' as never }), /cur: option leverage-type must be one of key, value, kv_avg, kv_product, got "both"/);
});

test('cur with a random projection: reproducible from its seed, and kvpress draws read from a file', () => {
  const d = 4;
  const config = tinyConfig(2, 2, d);
  const keys = [randomRows(12, d, 101), randomRows(12, d, 102)];
  const values = [randomRows(12, d, 103), randomRows(12, d, 104)];
  const view = viewOf(config, layerKV(keys, values), 6);
  const o = { ...CUR_DEFAULTS, useRandomLeverage: true };
  const a = new CURPress(o).score(view).map((s) => Array.from(s));
  assert.deepEqual(a, new CURPress(o).score(view).map((s) => Array.from(s)));
  assert.notDeepEqual(a, new CURPress({ ...o, seed: 1 }).score(view).map((s) => Array.from(s)));
  assert.notDeepEqual(a, new CURPress(CUR_DEFAULTS).score(view).map((s) => Array.from(s)));
  // Two layers' draws, [d × 20] each: the second call uses the second matrix.
  const draws = Float32Array.from(randomRows(2 * d, 20, 105).flat(), (x) => 2 * x);
  const file = join(mkdtempSync(join(tmpdir(), 'attend-cur-')), 'draws.f32');
  writeFileSync(file, Buffer.from(draws.buffer));
  const press = new CURPress({ ...o, projection: file });
  for (const call of [0, 1]) {
    const G = Array.from({ length: d }, (_, c) => Array.from(draws.subarray((call * d + c) * 20, (call * d + c + 1) * 20), (x) => x / Math.sqrt(20)));
    press.score(view).forEach((s, h) => assertClose(s, curReference(keys[h], values[h], o, G), `call ${call} head ${h}`));
  }
  assert.throws(() => press.score(view), /holds 160 draws, fewer than the 240 this compression needs/);
});

test('registry: the scorers are registered with kvpress defaults, bool options parse, bad options fail in one line', () => {
  const defaults = (name: string) => resolveOptions(pressEntry(name), {});
  assert.deepEqual(defaults('expected-attention'), { 'n-future-positions': 512, 'n-sink': 4, 'use-covariance': 1, 'use-vnorm': 1, epsilon: 0 });
  assert.deepEqual(defaults('cap'), { tau: 5, 'n-future-positions': 512, 'n-sink': 4, epsilon: 1e-6 });
  assert.deepEqual(defaults('keydiff'), {});
  assert.deepEqual(defaults('lagkv'), { 'n-sink': 4, 'lag-size': 128, 'cross-scoring': 0 });
  assert.deepEqual(defaults('cur'), {
    'num-sinks': 4, 'leverage-type': 'kv_product', 'use-random-leverage': 0, 'use-local-approximation': 1, 'local-window-size': 16, seed: 0, projection: '',
  });
  assert.equal(resolveOptions(pressEntry('lagkv'), { 'cross-scoring': 'TRUE' })['cross-scoring'], 1);
  assert.equal(resolveOptions(pressEntry('lagkv'), { 'cross-scoring': '0' })['cross-scoring'], 0);
  assert.equal(resolveOptions(pressEntry('lagkv'), { 'cross-scoring': '1' })['cross-scoring'], 1);
  assert.equal(resolveOptions(pressEntry('lagkv'), { 'cross-scoring': 'False' })['cross-scoring'], 0);
  assert.throws(() => resolveOptions(pressEntry('lagkv'), { 'cross-scoring': 'yes please' }), /press lagkv: option cross-scoring must be true or false, got "yes please"/);
  const lag = createPress('lagkv', { 'lag-size': '7', 'cross-scoring': 'true' }) as LagKVPress;
  assert.deepEqual(lag.options, { nSink: 4, lagSize: 7, crossScoring: true });
  const cur = createPress('cur', { 'use-local-approximation': 'false', 'leverage-type': 'value' }) as CURPress;
  assert.equal(cur.options.useLocalApproximation, false);
  assert.equal(cur.options.leverageType, 'value');
  assert.throws(() => createPress('cur', { 'leverage-type': 'keys' }), /leverage-type must be one of/);
  const ea = createPress('expected-attention', { 'use-covariance': 'false', 'n-future-positions': '64' }) as ExpectedAttentionPress;
  assert.deepEqual(ea.options, { ...EXPECTED_ATTENTION_DEFAULTS, useCovariance: false, nFuturePositions: 64 });
  assert.deepEqual(ea.needs, { queryWindow: Infinity });
  assert.equal(createPress('keydiff', {}).name, 'keydiff');
  assert.throws(() => createPress('keydiff', { window: '3' }), /press keydiff has no option "window" \(it takes no options\)/);
});

test('the references above start from pre-RoPE queries: the recorded rows rotate back to them', () => {
  const { config, pre } = expectedCase(6, 7);
  const q = recorded(config, pre);
  const back = q.data.slice();
  rotate(config, back, config.numHeads, q.positions, true);
  assertClose(back, pre.flat(), 'pre-RoPE rows', 1e-5);
});
