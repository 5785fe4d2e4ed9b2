/** Logits of every position of a sequence, computed chunk by chunk into one [tokens × vocab] array. */
import type { KVCache } from '../cache/kv-cache.js';
import type { CausalLM } from '../models/model.js';
import { DEFAULT_PREFILL_CHUNK } from './prefill.js';

export function allLogits(model: CausalLM, cache: KVCache, ids: number[], chunkSize = DEFAULT_PREFILL_CHUNK): Float32Array {
  const vocab = model.config.vocabSize;
  const out = new Float32Array(ids.length * vocab);
  for (let start = 0; start < ids.length; start += chunkSize) {
    const end = Math.min(ids.length, start + chunkSize);
    out.set(model.forward(ids.slice(start, end), cache).f32, start * vocab);
  }
  return out;
}
