/**
 * Greedy decoding done the slow, obvious way, as a reference for code that drafts tokens with a cache: each step is a
 * fresh forward of the whole sequence (no cache reuse), and an end-of-sequence token ends it.
 */
import { prefill } from '../../src/generate/prefill.js';
import { argmax } from '../../src/generate/sampler.js';
import type { LoadedModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';

export function greedyByHand(lm: LoadedModel, prompt: number[], n: number): number[] {
  const out: number[] = [];
  while (out.length < n) {
    const next = argmax(prefill(lm.model, newCache(lm.config), [...prompt, ...out]));
    out.push(next);
    if (lm.generation.eosTokenIds?.includes(next)) break;
  }
  return out;
}
