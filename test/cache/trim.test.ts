/**
 * Rollback of the KV cache (`KVCache.trim`, `HeadStore.truncate`), which speculative decoding uses to take back
 * rejected draft tokens: what is left must equal a cache that never saw the dropped tokens (entries, positions,
 * keys, values, press statistics, live bytes), on a full f32 cache, on a compressed cache whose heads hold
 * different entries, and on 16-bit caches; bad positions are one-line AttendErrors.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HeadStore } from '../../src/cache/head-store.js';
import { KVCache } from '../../src/cache/kv-cache.js';
import { AttendError } from '../../src/errors.js';
import type { DType } from '../../src/tensor/dtype.js';

const SHAPE = { numLayers: 2, numKvHeads: 2, headDim: 4 };
/** A [tokens × heads·dim] projection row block whose values differ per token, head and column. */
function projection(from: number, to: number, salt: number): Float32Array {
  const width = SHAPE.numKvHeads * SHAPE.headDim;
  return Float32Array.from({ length: (to - from) * width }, (_, i) => Math.sin(salt + (from * width + i) * 0.37) * 3);
}

/** Appends tokens [from, to) to every layer and head, as a forward would, and moves nextPosition on. */
function run(cache: KVCache<HeadStore>, from: number, to: number): void {
  assert.equal(cache.nextPosition, from);
  const positions = Int32Array.from({ length: to - from }, (_, i) => from + i);
  cache.layers.forEach((layer, l) => {
    const k = projection(from, to, 10 * l);
    const v = projection(from, to, 10 * l + 5);
    layer.heads.forEach((h, i) => h.append(k, v, positions, i * SHAPE.headDim, SHAPE.numKvHeads * SHAPE.headDim));
  });
  cache.nextPosition = to;
}

/** Everything observable about a cache except its spare room. */
function snapshot(cache: KVCache, stats: string[] = []) {
  return {
    nextPosition: cache.nextPosition,
    entries: cache.entries(),
    liveBytes: cache.liveBytes(),
    heads: cache.layers.map((l) =>
      l.heads.map((h) => ({
        positions: Array.from(h.positions),
        keys: Array.from(h.keys(0, h.length)),
        values: Array.from(h.values(0, h.length)),
        stats: stats.map((s) => Array.from(h.stat(s))),
      })),
    ),
  };
}

function perEntry(dtype: DType, stats = 0): number {
  return 2 * SHAPE.headDim * (dtype === 'f32' ? 4 : 2) + 4 + 4 * stats;
}

for (const dtype of ['f32', 'bf16', 'f16'] as const) {
  test(`trim of a full ${dtype} cache equals the cache built without the dropped tokens`, () => {
    const cache = new KVCache<HeadStore>(SHAPE, dtype);
    run(cache, 0, 13);
    const allocated = cache.bytes();
    cache.trim(9);
    const reference = new KVCache<HeadStore>(SHAPE, dtype);
    run(reference, 0, 9);
    assert.deepEqual(snapshot(cache), snapshot(reference));
    assert.equal(cache.liveBytes(), SHAPE.numLayers * SHAPE.numKvHeads * 9 * perEntry(dtype));
    // The room stays allocated for the tokens that follow; only live bytes shrink.
    assert.equal(cache.bytes(), allocated);
    // Decoding on after the rollback gives what decoding straight through gives.
    run(cache, 9, 15);
    run(reference, 9, 15);
    assert.deepEqual(snapshot(cache), snapshot(reference));
  });
}

test('trim of a compressed cache: each head drops its own suffix, press statistics move along', () => {
  const make = () => {
    const c = new KVCache<HeadStore>(SHAPE);
    run(c, 0, 12);
    for (const layer of c.layers) for (const h of layer.heads) h.stat('score').set(Array.from({ length: h.length }, (_, i) => i + 0.5));
    // Per-head ragged, as a press leaves it: different entries, different lengths.
    c.layers[0].heads[0].keep([0, 2, 5, 7, 9, 11]);
    c.layers[0].heads[1].keep([1, 3, 4, 10]);
    c.layers[1].heads[0].keep([6, 7, 8]);
    c.layers[1].heads[1].keep([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    return c;
  };
  const cache = make();
  run(cache, 12, 16); // tokens decoded after the compression, with no statistics yet
  cache.trim(7);
  assert.equal(cache.nextPosition, 7);
  assert.deepEqual(
    cache.layers.map((l) => l.heads.map((h) => Array.from(h.positions))),
    [
      [[0, 2, 5], [1, 3, 4]],
      [[6], [0, 1, 2, 3, 4, 5, 6]],
    ],
  );
  // The statistics of the kept entries are those they had (each entry's own, after `keep` moved them).
  assert.deepEqual(Array.from(cache.layers[0].heads[0].stat('score')), [0.5, 2.5, 5.5]);
  assert.deepEqual(Array.from(cache.layers[0].heads[1].stat('score')), [1.5, 3.5, 4.5]);
  // Live bytes count keys, values, positions and the statistic of exactly the 14 entries left.
  assert.equal(cache.entries(), 14);
  assert.equal(cache.liveBytes(), 14 * perEntry('f32', 1));
  const reference = make();
  for (const layer of reference.layers) for (const h of layer.heads) h.keep(Array.from({ length: h.visibleUpTo(6) }, (_, i) => i));
  reference.nextPosition = 7;
  assert.deepEqual(snapshot(cache, ['score']), snapshot(reference, ['score']));
  // Entries appended after a rollback start with zero statistics, as for a cache that never held the dropped ones.
  run(cache, 7, 10);
  run(reference, 7, 10);
  assert.deepEqual(snapshot(cache, ['score']), snapshot(reference, ['score']));
  assert.deepEqual(Array.from(cache.layers[1].heads[0].stat('score')), [6.5, 0, 0, 0]);
});

test('trim to the next position changes nothing; trim to 0 empties the cache', () => {
  const cache = new KVCache<HeadStore>(SHAPE, 'bf16');
  run(cache, 0, 5);
  const before = snapshot(cache);
  cache.trim(5);
  assert.deepEqual(snapshot(cache), before);
  cache.trim(0);
  assert.equal(cache.entries(), 0);
  assert.equal(cache.liveBytes(), 0);
  assert.equal(cache.nextPosition, 0);
  run(cache, 0, 5);
  assert.deepEqual(snapshot(cache), before);
});

test('trim refuses positions past the next one, below 0 or fractional, with one line', () => {
  const cache = new KVCache<HeadStore>(SHAPE);
  run(cache, 0, 4);
  for (const bad of [5, -1, 2.5, Number.NaN]) {
    assert.throws(
      () => cache.trim(bad),
      (e: unknown) => e instanceof AttendError && !e.message.includes('\n') && /cannot trim the KV cache to position .* from 0 to 4/.test(e.message),
    );
  }
  assert.equal(cache.nextPosition, 4);
  assert.equal(cache.entries(), 16);
  const h = new HeadStore(2);
  assert.throws(() => h.truncate(-1), (e: unknown) => e instanceof AttendError && /whole number ≥ 0/.test(e.message));
  h.truncate(3); // past the last entry of a head: nothing to drop
  assert.equal(h.length, 0);
});
