/**
 * Chunked prefill: the prompt goes through the model `chunkSize` tokens at a time, so activations (and later,
 * with a press applied per chunk, the cache) stay bounded by one chunk. Only the last chunk's final row of
 * logits is computed.
 */
import { check } from '../errors.js';
import type { KVCache } from '../cache/kv-cache.js';
import type { CausalLM, ForwardOptions } from '../models/model.js';
import { forwardChunks } from './chunks.js';

export const DEFAULT_PREFILL_CHUNK = 512;

export interface PrefillOptions extends Pick<ForwardOptions, 'observer' | 'select'> {
  chunkSize?: number;
  /** Called after each chunk has been written to the cache (where per-chunk compression plugs in). */
  afterChunk?: (cache: KVCache, chunkEnd: number) => void;
}

/** Runs `ids` into `cache`; returns the logits of the last token. */
export function prefill(model: CausalLM, cache: KVCache, ids: ArrayLike<number>, opts: PrefillOptions = {}): Float32Array {
  const chunk = opts.chunkSize ?? DEFAULT_PREFILL_CHUNK;
  check(Number.isInteger(chunk) && chunk > 0, `prefill chunk size must be a whole number > 0, got ${chunk}`);
  check(ids.length > 0, 'the prompt is empty: nothing to prefill');
  let last: Float32Array | undefined;
  // Only the last position's logits are used: earlier chunks skip the lm head's other rows too.
  forwardChunks(model, cache, ids, chunk, { lastOnly: true, observer: opts.observer, select: opts.select }, (logits, _, end) => {
    opts.afterChunk?.(cache, end);
    if (end === ids.length) last = model.backend.read(logits);
  });
  return last!;
}
