/** Logits of every position of a sequence, computed chunk by chunk into one [tokens × vocab] array. */
import type { KVCache } from '../cache/kv-cache.js';
import type { CausalLM } from '../models/model.js';
import { forwardChunks } from './chunks.js';
import { DEFAULT_PREFILL_CHUNK } from './prefill.js';

export function allLogits(model: CausalLM, cache: KVCache, ids: number[], chunkSize = DEFAULT_PREFILL_CHUNK): Float32Array {
  const vocab = model.config.vocabSize;
  const out = new Float32Array(ids.length * vocab);
  forwardChunks(model, cache, ids, chunkSize, {}, (logits, start) => out.set(model.backend.read(logits), start * vocab));
  return out;
}
