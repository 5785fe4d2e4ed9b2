import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attention } from '../../src/backend/cpu/attention.js';
import { LayerCache } from '../../src/cache/kv-cache.js';
import { Random, uniformArray } from '../../src/generate/random.js';
import type { AttentionBlock } from '../../src/backend/backend.js';

/** Plain f64 attention of one query head over explicit (position, key, value) entries. */
function reference(q: Float32Array, keys: Float32Array[], values: Float32Array[], scale: number): number[] {
  const s = keys.map((k) => k.reduce((a, x, i) => a + x * q[i], 0) * scale);
  const m = Math.max(...s);
  const e = s.map((x) => Math.exp(x - m));
  const z = e.reduce((a, b) => a + b, 0);
  return Array.from(q, (_, i) => values.reduce((a, v, j) => a + (e[j] / z) * v[i], 0));
}

function check(heads: number, kvHeads: number, d: number, tokens: number, window: number | null, dropEvery = 0) {
  const layer = LayerCache.empty(kvHeads, d, 'f32');
  const k = uniformArray(tokens * kvHeads * d, 1);
  const v = uniformArray(tokens * kvHeads * d, 2);
  const positions = Int32Array.from({ length: tokens }, (_, i) => i);
  layer.heads.forEach((h, i) => h.append(k, v, positions, i * d, kvHeads * d));
  // Ragged heads: head i drops every (dropEvery + i)-th entry.
  if (dropEvery) {
    layer.heads.forEach((h, i) => {
      const keep = Array.from({ length: tokens }, (_, j) => j).filter((j) => (j + 1) % (dropEvery + i) !== 0);
      h.keep(keep);
    });
  }
  // Queries: the last `rows` tokens (as in a prefill chunk) at their positions.
  const rows = Math.min(5, tokens);
  const qPos = positions.subarray(tokens - rows);
  const q = uniformArray(rows * heads * d, 3);
  const out = new Float32Array(q.length);
  const blocks: AttentionBlock[] = [];
  attention(q, rows, heads, layer, qPos, { layer: 0, scale: 0.3, window, observer: { observe: (b) => blocks.push(b) } }, out);
  const group = heads / kvHeads;
  for (let t = 0; t < rows; t++) {
    for (let h = 0; h < heads; h++) {
      const store = layer.heads[Math.floor(h / group)];
      const ks: Float32Array[] = [];
      const vs: Float32Array[] = [];
      store.positions.forEach((p, j) => {
        if (p <= qPos[t] && (window === null || p > qPos[t] - window)) {
          ks.push(store.keys(j, 1).slice());
          vs.push(store.values(j, 1).slice());
        }
      });
      const o = (t * heads + h) * d;
      const want = reference(q.subarray(o, o + d), ks, vs, 0.3);
      want.forEach((x, i) => assert.ok(Math.abs(out[o + i] - x) < 1e-5, `t${t} h${h} i${i}: ${out[o + i]} vs ${x}`));
    }
  }
  // Each observed row is a probability distribution over the entries it may see.
  for (const b of blocks) {
    for (let r = 0; r < b.probs.length / b.cols; r++) {
      const sum = b.probs.subarray(r * b.cols, (r + 1) * b.cols).reduce((a, x) => a + x, 0);
      assert.ok(Math.abs(sum - 1) < 1e-5);
    }
  }
}

test('multi-head attention matches the reference', () => check(4, 4, 8, 12, null));
test('grouped-query attention matches the reference', () => check(8, 2, 16, 40, null));
test('multi-query attention matches the reference', () => check(4, 1, 8, 9, null));
test('a sliding window hides keys at or beyond its width', () => check(4, 2, 8, 30, 7));
test('heads holding different entries (after compression) attend over what they keep', () => check(6, 3, 8, 50, null, 3));

// ---- Prefill-sized chunks: many blocks, the causal triangle, windows that skip leading columns, 16-bit storage,
// ---- both softmax paths (the wasm SIMD kernel and the Math.exp reference), and the probabilities observers get.

import { selectSoftmax, softmaxRows, wasmExp, type SoftmaxPath } from '../../src/backend/cpu/attention/softmax.js';
import { softmaxInPlace } from '../../src/backend/cpu/elementwise.js';
import type { DType } from '../../src/tensor/dtype.js';

interface ChunkCase {
  heads: number;
  kvHeads: number;
  d: number;
  tokens: number;
  rows: number;
  window: number | null;
  dropEvery?: number;
  dtype?: DType;
  /** Query rows in a scrambled position order (the op does not require sorted positions). */
  shuffled?: boolean;
}

/** f64 probabilities of one query head over a head's entries (0 where hidden), and its output. */
function referenceRow(q: Float32Array, keys: Float32Array, values: Float32Array, visible: boolean[], d: number, scale: number) {
  const n = visible.length;
  const s = new Float64Array(n);
  let m = -Infinity;
  for (let j = 0; j < n; j++) {
    if (!visible[j]) continue;
    let a = 0;
    for (let i = 0; i < d; i++) a += q[i] * keys[j * d + i];
    s[j] = a * scale;
    m = Math.max(m, s[j]);
  }
  let z = 0;
  for (let j = 0; j < n; j++) z += visible[j] ? Math.exp(s[j] - m) : 0;
  const p = new Float64Array(n);
  for (let j = 0; j < n; j++) p[j] = visible[j] ? Math.exp(s[j] - m) / z : 0;
  const o = new Float64Array(d);
  for (let j = 0; j < n; j++) if (p[j]) for (let i = 0; i < d; i++) o[i] += p[j] * values[j * d + i];
  return { p, o };
}

function checkChunk(c: ChunkCase, path: SoftmaxPath, withObserver: boolean) {
  const { heads, kvHeads, d, tokens, rows, window } = c;
  const layer = LayerCache.empty(kvHeads, d, c.dtype ?? 'f32');
  const k = uniformArray(tokens * kvHeads * d, 11);
  const v = uniformArray(tokens * kvHeads * d, 12);
  // Larger query values give peaked rows (scores of several units), like real attention.
  const q = uniformArray(rows * heads * d, 13).map((x) => x * 4);
  const positions = Int32Array.from({ length: tokens }, (_, i) => i);
  layer.heads.forEach((h, i) => h.append(k, v, positions, i * d, kvHeads * d));
  if (c.dropEvery) {
    layer.heads.forEach((h, i) => h.keep(Array.from({ length: tokens }, (_, j) => j).filter((j) => (j + 1) % (c.dropEvery! + i) !== 0)));
  }
  const qPos = positions.slice(tokens - rows);
  if (c.shuffled) qPos.sort((a, b) => ((a * 7919) % 101) - ((b * 7919) % 101) || a - b);
  const out = new Float32Array(q.length);
  const blocks: AttentionBlock[] = [];
  const scale = 1 / Math.sqrt(d);
  selectSoftmax(path);
  try {
    attention(q, rows, heads, layer, qPos, { layer: 0, scale, window, observer: withObserver ? { observe: (b) => blocks.push(b) } : {} }, out);
  } finally {
    selectSoftmax('auto');
  }
  const group = heads / kvHeads;
  const probs = layer.heads.map((h) => new Float32Array(rows * group * h.length).fill(NaN));
  for (const b of blocks) {
    const length = layer.heads[b.kvHead].length;
    assert.equal(b.probs.length, b.queryPositions.length * group * b.cols);
    const first = Array.from(qPos).indexOf(b.queryPositions[0]);
    for (let r = 0; r < b.queryPositions.length * group; r++) {
      probs[b.kvHead].fill(0, (first * group + r) * length, (first * group + r + 1) * length);
      probs[b.kvHead].set(b.probs.subarray(r * b.cols, (r + 1) * b.cols), (first * group + r) * length);
    }
  }
  let worstOut = 0;
  let worstP = 0;
  for (let g = 0; g < kvHeads; g++) {
    const store = layer.heads[g];
    const keys = store.keys(0, store.length).slice();
    const values = store.values(0, store.length).slice();
    for (let t = 0; t < rows; t++) {
      const visible = Array.from(store.positions, (p) => p <= qPos[t] && (window === null || p > qPos[t] - window));
      for (let j = 0; j < group; j++) {
        const h = g * group + j;
        const o = (t * heads + h) * d;
        const want = referenceRow(q.subarray(o, o + d), keys, values, visible, d, scale);
        for (let i = 0; i < d; i++) worstOut = Math.max(worstOut, Math.abs(out[o + i] - want.o[i]));
        if (withObserver) {
          const row = probs[g].subarray((t * group + j) * store.length, (t * group + j + 1) * store.length);
          for (let e = 0; e < store.length; e++) {
            if (!visible[e]) assert.equal(row[e], 0, `hidden entry ${e} of row t${t} h${h} has probability ${row[e]}`);
            else worstP = Math.max(worstP, Math.abs(row[e] - want.p[e]));
          }
        }
      }
    }
  }
  assert.ok(worstOut < 2e-5, `${path}: output off by ${worstOut}`);
  assert.ok(worstP < 2e-6, `${path}: probabilities off by ${worstP}`);
}

const chunkCases: [string, ChunkCase][] = [
  ['a prompt from position 0 (blocks along the causal triangle)', { heads: 8, kvHeads: 2, d: 64, tokens: 300, rows: 300, window: null }],
  ['a later prefill chunk', { heads: 8, kvHeads: 2, d: 32, tokens: 700, rows: 130, window: null }],
  ['a sliding window narrower than the chunk (leading columns skipped)', { heads: 4, kvHeads: 2, d: 16, tokens: 400, rows: 250, window: 37 }],
  ['ragged heads after compression', { heads: 6, kvHeads: 3, d: 16, tokens: 350, rows: 200, window: null, dropEvery: 3 }],
  ['ragged heads with a window', { heads: 4, kvHeads: 2, d: 8, tokens: 260, rows: 201, window: 50, dropEvery: 4 }],
  ['query positions out of order, with a window', { heads: 4, kvHeads: 2, d: 8, tokens: 180, rows: 120, window: 30, shuffled: true }],
  ['f16 storage', { heads: 4, kvHeads: 1, d: 24, tokens: 230, rows: 90, window: null, dtype: 'f16' }],
  ['bf16 storage, head dim not a multiple of 4', { heads: 2, kvHeads: 2, d: 13, tokens: 97, rows: 97, window: 20, dtype: 'bf16' }],
];
for (const [name, c] of chunkCases) {
  for (const path of ['wasm', 'js'] as const) {
    test(`prefill chunk, ${path} softmax: ${name}`, () => {
      checkChunk(c, path, true);
      checkChunk(c, path, false);
    });
  }
}

test('the wasm exp is within 2e-7 (relative) of Math.exp for x ≤ 0, and 0 below ln(FLT_MIN)', () => {
  const rng = new Random(7);
  const next = () => rng.next();
  const n = 1 << 18;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    // Uniform over [−87.3, 0], over [−1, 0] (near the max) and log-spread tiny magnitudes.
    x[i] = i % 3 === 0 ? -87.3 * next() : i % 3 === 1 ? -next() : -(2 ** (-40 * next()));
  }
  x.set([0, -0, -1e-30, -Math.LN2 / 2, -Math.LN2, -87.33, -10.5, -1]);
  const e = wasmExp(x);
  let worst = 0;
  for (let i = 0; i < n; i++) {
    const want = Math.exp(x[i]);
    worst = Math.max(worst, Math.abs(e[i] - want) / want);
  }
  assert.ok(worst <= 2e-7, `max relative error ${worst}`);
  assert.equal(wasmExp(new Float32Array([0]))[0], 1);
  const special = wasmExp(new Float32Array([-87.4, -100, -1e30, -Infinity, NaN, -Number.MAX_VALUE]));
  assert.deepEqual(Array.from(special.subarray(0, 4)), [0, 0, 0, 0]);
  assert.ok(Number.isNaN(special[4]));
  assert.equal(special[5], 0);
});

test('the wasm softmax matches the Math.exp one on random rows and ranges', () => {
  const rng = new Random(99);
  const next = () => rng.next();
  for (const cols of [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 1000, 4099]) {
    const rows = 23;
    // Spreads of 2 and 60 (all terms well inside f32), and of 240 (terms far below the max, flushed to 0).
    const x = Float32Array.from({ length: rows * cols }, () => (next() - 0.5) * [2, 60, 240][Math.floor(next() * 3)]);
    const ranges = new Int32Array(rows * 2);
    for (let r = 0; r < rows; r++) {
      const lo = r % 4 === 0 ? 0 : Math.floor(next() * cols);
      const hi = r % 5 === 0 ? cols : lo + Math.floor(next() * (cols - lo + 1));
      ranges[2 * r] = lo;
      ranges[2 * r + 1] = hi;
    }
    const fast = softmaxRows('wasm', x, rows, cols, ranges);
    const ref = softmaxRows('js', x, rows, cols, ranges);
    for (let r = 0; r < rows; r++) {
      const [lo, hi] = [ranges[2 * r], ranges[2 * r + 1]];
      // The js path is softmaxInPlace itself.
      const direct = x.slice(r * cols + lo, r * cols + hi);
      softmaxInPlace(direct);
      for (let i = 0; i < cols; i++) {
        const a = fast[r * cols + i];
        const b = ref[r * cols + i];
        if (i < lo || i >= hi) {
          assert.equal(a, 0);
          assert.equal(b, 0);
          continue;
        }
        assert.equal(b, direct[i - lo]);
        // Terms below 2^-126 · 2^⌈log2 len⌉ of the sum before normalising are flushed to 0 (no subnormals).
        const flushed = a === 0 && b < 1.01 * 2 ** -126 * 2 ** Math.ceil(Math.log2(hi - lo));
        assert.ok(flushed || Math.abs(a - b) <= 1e-6 * b, `cols ${cols} row ${r} [${lo}, ${hi}) col ${i}: ${a} vs ${b}`);
        if (a !== 0) assert.ok(a >= 2 ** -126, `subnormal ${a}`);
      }
    }
  }
});

// ---- 16-bit storage is widened exactly (the SIMD kernel of src/backend/cpu/convert/): attention over an f16 or bf16
// ---- cache gives the same bits as over an f32 cache holding the widened values, for decode and prefill shapes. With
// ---- OpenBLAS, decode-sized calls over a 16-bit cache run on the calling thread (onCallingThread), and on some CPUs
// ---- OpenBLAS's one-thread and two-thread sums differ in the last bits (AMD EPYC, OpenBLAS 0.3.21: up to 2e-4
// ---- relative on near-zero outputs), so the f32 reference runs both ways and the 16-bit result must equal one of
// ---- them exactly: a widening error would differ from both.

import { narrow, widen } from '../../src/tensor/dtype.js';
import { onCallingThread } from '../../src/backend/cpu/matmul.js';

for (const dtype of ['f16', 'bf16'] as const) {
  for (const [rows, tokens] of [[1, 1], [1, 301], [1, 2053], [1, 4096], [2, 1500], [4, 2053], [64, 640]]) {
    test(`attention over a ${dtype} cache equals f32 over its widened values (${rows} queries, ${tokens} entries)`, () => {
      const [heads, kvHeads, d] = [8, 2, 64];
      // Values over several binades, so that rounding to 16 bits matters (and with f16, some subnormals).
      const k = uniformArray(tokens * kvHeads * d, 21).map((x, i) => x * 2 ** ((i % 23) - 16));
      const v = uniformArray(tokens * kvHeads * d, 22).map((x, i) => x * 2 ** ((i % 19) - 12));
      const k16 = widen(dtype, narrow(dtype, k));
      const v16 = widen(dtype, narrow(dtype, v));
      const positions = Int32Array.from({ length: tokens }, (_, i) => i);
      const half = LayerCache.empty(kvHeads, d, dtype);
      const full = LayerCache.empty(kvHeads, d, 'f32');
      half.heads.forEach((h, i) => h.append(k, v, positions, i * d, kvHeads * d));
      full.heads.forEach((h, i) => h.append(k16, v16, positions, i * d, kvHeads * d));
      assert.deepEqual(half.heads[1].storedKeys(0, tokens), narrow(dtype, Float32Array.from({ length: tokens * d }, (_, j) => k[Math.floor(j / d) * kvHeads * d + d + (j % d)])));
      const q = uniformArray(rows * heads * d, 23).map((x) => x * 4);
      const qPos = positions.slice(tokens - rows);
      const opts = { layer: 0, scale: 1 / Math.sqrt(d), window: null, observer: {} };
      const a = new Float32Array(q.length);
      const b = new Float32Array(q.length);
      const c = new Float32Array(q.length);
      attention(q, rows, heads, half, qPos, opts, a);
      attention(q, rows, heads, full, qPos, opts, b);
      onCallingThread(() => attention(q, rows, heads, full, qPos, opts, c));
      const same = (x: Float32Array, y: Float32Array) => x.every((e, i) => Object.is(e, y[i]));
      assert.ok(same(a, b) || same(a, c), `differs from the f32 reference in both threadings (first: ${a[0]} vs ${b[0]} / ${c[0]})`);
    });
  }
}
