/** forwardChunks, the loop under prefill, allLogits and the perplexity stream: its chunks, options and checks. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KVCache } from '../../src/cache/kv-cache.js';
import { forwardChunks } from '../../src/generate/chunks.js';
import type { CausalLM, ForwardOptions } from '../../src/models/model.js';
import { Tensor } from '../../src/tensor/tensor.js';

/** A model that records each forward pass and returns one row per token holding the token's id. */
function recorder(): { model: CausalLM; calls: { ids: number[]; opts?: ForwardOptions; out: Tensor }[]; released: Tensor[] } {
  const calls: { ids: number[]; opts?: ForwardOptions; out: Tensor }[] = [];
  const released: Tensor[] = [];
  const model = {
    // A device backend gives each chunk's logits back once `each` has seen them (Backend.release).
    backend: { release: (t: Tensor) => released.push(t) },
    forward(ids: ArrayLike<number>, cache: KVCache, opts?: ForwardOptions) {
      const out = new Tensor([ids.length, 1], Float32Array.from(ids));
      calls.push({ ids: Array.from(ids), opts, out });
      cache.nextPosition += ids.length;
      return out;
    },
  } as unknown as CausalLM;
  return { model, calls, released };
}

test('chunks of chunkSize in order, the last one shorter, each seen right after its forward pass, then released', () => {
  const { model, calls, released } = recorder();
  const cache = new KVCache({ numLayers: 1, numKvHeads: 1, headDim: 1 });
  const opts: ForwardOptions = { lastOnly: true };
  const seen: [number, number, number[], number][] = [];
  forwardChunks(model, cache, Int32Array.from([5, 6, 7, 8, 9, 10, 11]), 3, opts, (logits, start, end) => {
    seen.push([start, end, Array.from(logits.f32), calls.length]);
    assert.equal(logits, calls.at(-1)!.out);
    assert.equal(released.length, calls.length - 1, 'released only after each has seen it');
  });
  assert.deepEqual(released, calls.map((c) => c.out));
  assert.deepEqual(seen, [
    [0, 3, [5, 6, 7], 1],
    [3, 6, [8, 9, 10], 2],
    [6, 7, [11], 3],
  ]);
  assert.deepEqual(calls.map((c) => c.ids), [[5, 6, 7], [8, 9, 10], [11]]);
  assert.ok(calls.every((c) => c.opts === opts), 'the same options on every pass');
  assert.equal(cache.nextPosition, 7);
});

test('one chunk when chunkSize covers the sequence; nothing for no ids', () => {
  const { model, calls } = recorder();
  const cache = new KVCache({ numLayers: 1, numKvHeads: 1, headDim: 1 });
  const ends: number[] = [];
  forwardChunks(model, cache, [1, 2, 3], 512, {}, (_, __, end) => ends.push(end));
  assert.deepEqual(ends, [3]);
  forwardChunks(model, cache, [], 4, {}, (_, __, end) => ends.push(end));
  assert.deepEqual(ends, [3]);
  assert.equal(calls.length, 1);
});

test('the chunk size must be a whole number > 0', () => {
  const { model } = recorder();
  const cache = new KVCache({ numLayers: 1, numKvHeads: 1, headDim: 1 });
  for (const bad of [0, -2, 2.5, NaN]) {
    assert.throws(() => forwardChunks(model, cache, [1, 2], bad, {}, () => {}), /prefill chunk size must be a whole number > 0/);
  }
});
