import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attention } from '../../src/backend/cpu/attention.js';
import { LayerCache } from '../../src/cache/kv-cache.js';
import type { AttentionBlock } from '../../src/backend/backend.js';

function random(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

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
  const k = random(tokens * kvHeads * d, 1);
  const v = random(tokens * kvHeads * d, 2);
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
  const q = random(rows * heads * d, 3);
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
