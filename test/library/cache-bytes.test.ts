import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HeadStore, KVCache } from '../../src/index.js';

function fill(h: HeadStore, n: number, from = 0): void {
  const d = h.headDim;
  const rows = Float32Array.from({ length: n * d }, (_, i) => i * 0.01);
  h.append(rows, rows, Int32Array.from({ length: n }, (_, i) => from + i), 0, d);
}

for (const dtype of ['f32', 'f16', 'bf16'] as const) {
  test(`live bytes count exactly the entries held, allocated bytes the spare room too (${dtype})`, () => {
    const h = new HeadStore(8, dtype);
    fill(h, 5);
    const perEntry = 2 * 8 * (dtype === 'f32' ? 4 : 2) + 4;
    assert.ok(h.capacity > 5, 'growth leaves spare room');
    assert.equal(h.liveBytes(), 5 * perEntry);
    assert.equal(h.bytes(), h.capacity * perEntry);
    h.stat('attention');
    assert.equal(h.liveBytes(), 5 * (perEntry + 4));
    assert.equal(h.bytes(), h.capacity * (perEntry + 4));
    h.keep([0, 2, 4]);
    assert.equal(h.liveBytes(), 3 * (perEntry + 4));
    assert.equal(h.bytes(), h.liveBytes(), 'keep reallocates to the kept size');
  });
}

test('a cache: live bytes sum over layers and heads and equal the bytes of a clone', () => {
  const cache = new KVCache<HeadStore>({ numLayers: 2, numKvHeads: 3, headDim: 4 });
  cache.layers.forEach((l, i) => l.heads.forEach((h, j) => fill(h, 1 + i + j)));
  const entries = cache.entries();
  assert.equal(cache.liveBytes(), entries * (2 * 4 * 4 + 4));
  assert.ok(cache.bytes() > cache.liveBytes());
  assert.equal(cache.clone().bytes(), cache.liveBytes());
});
