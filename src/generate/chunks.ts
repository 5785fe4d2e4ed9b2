/**
 * The one loop that runs a sequence through a model `chunkSize` tokens at a time (prefill, every position's
 * logits, the perplexity stream), so that activations stay bounded by one chunk. `each` sees a chunk's logits
 * right after its forward pass, before the next chunk runs: where per-chunk compression and scoring plug in.
 */
import type { KVCache } from '../cache/kv-cache.js';
import { check } from '../errors.js';
import type { CausalLM, ForwardOptions } from '../models/model.js';
import type { Tensor } from '../tensor/tensor.js';

/** Runs `ids` into `cache` chunk by chunk with `opts` on every forward pass; `each(logits, start, end)` per chunk. */
export function forwardChunks(
  model: CausalLM,
  cache: KVCache,
  ids: ArrayLike<number>,
  chunkSize: number,
  opts: ForwardOptions,
  each: (logits: Tensor, start: number, end: number) => void,
): void {
  check(Number.isInteger(chunkSize) && chunkSize > 0, `prefill chunk size must be a whole number > 0, got ${chunkSize}`);
  for (let start = 0; start < ids.length; start += chunkSize) {
    const end = Math.min(ids.length, start + chunkSize);
    const chunk = Array.prototype.slice.call(ids, start, end) as number[];
    const logits = model.forward(chunk, cache, opts);
    each(logits, start, end);
    // Read (or not) inside `each`: a device backend gives its memory back now.
    model.backend.release?.(logits);
  }
}
