import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HeadStore } from '../../src/cache/head-store.js';
import { KVCache } from '../../src/cache/kv-cache.js';

function rows(n: number, d: number, base: number): Float32Array {
  return Float32Array.from({ length: n * d }, (_, i) => base + i / 8);
}

test('append stores rows by stride and keeps positions in order', () => {
  const h = new HeadStore(2);
  // Two heads of width 2 per row: this store takes head 1 (offset 2, stride 4).
  const k = Float32Array.from([0, 0, 1, 2, 0, 0, 3, 4]);
  h.append(k, k, Int32Array.from([5, 6]), 2, 4);
  assert.deepEqual(Array.from(h.keys(0, 2)), [1, 2, 3, 4]);
  assert.deepEqual(Array.from(h.positions), [5, 6]);
  assert.throws(() => h.append(k, k, Int32Array.from([6]), 2, 4), /increasing position/);
});

test('keep compacts, releases memory and preserves original positions', () => {
  const h = new HeadStore(4);
  const data = rows(100, 4, 0);
  h.append(data, data, Int32Array.from({ length: 100 }, (_, i) => i), 0, 4);
  const before = h.bytes();
  assert.equal(before, h.capacity * (2 * 4 * 4 + 4));
  h.keep([0, 1, 50, 99]);
  assert.equal(h.length, 4);
  assert.equal(h.bytes(), 4 * (2 * 4 * 4 + 4));
  assert.ok(h.bytes() < before / 20);
  assert.deepEqual(Array.from(h.positions), [0, 1, 50, 99]);
  assert.deepEqual(Array.from(h.keys(2, 1)), Array.from(data.subarray(200, 204)));
  assert.equal(h.visibleUpTo(49), 2);
  assert.equal(h.visibleUpTo(50), 3);
  assert.throws(() => h.keep([1, 0]), /ascending/);
});

test('bf16 and f16 storage round to 16 bits and halve the bytes', () => {
  for (const dtype of ['bf16', 'f16'] as const) {
    const h = new HeadStore(2, dtype);
    h.append(Float32Array.from([1.5, -2.25]), Float32Array.from([0.1, 3]), Int32Array.from([0]), 0, 2);
    assert.deepEqual(Array.from(h.keys(0, 1)), [1.5, -2.25]);
    assert.ok(Math.abs(h.values(0, 1)[0] - 0.1) < 1e-3);
    assert.equal(h.bytes(), h.capacity * (2 * 2 * 2 + 4));
  }
});

test('a cache sums its heads exactly, and heads may differ in length', () => {
  const c = new KVCache<HeadStore>({ numLayers: 2, numKvHeads: 2, headDim: 2 });
  const d = rows(10, 4, 0);
  for (const layer of c.layers) layer.heads.forEach((h, i) => h.append(d, d, Int32Array.from({ length: 10 }, (_, j) => j), i * 2, 4));
  c.layers[1].heads[0].keep([9]);
  assert.equal(c.entries(), 31);
  const expected = c.layers.flatMap((l) => l.heads).reduce((s, h) => s + h.capacity * (2 * 2 * 4 + 4), 0);
  assert.equal(c.bytes(), expected);
});
