/**
 * Greedy decoding of a prompt under a selector (or none), for the selector tests: the logits of each step and the
 * tokens fed. The prompt is prefilled in chunks of 64 without the selector, or, with `throughPrefill`, in one forward
 * that the selector sees too.
 */
import { prefill } from '../../src/generate/prefill.js';
import type { LoadedModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import type { SelectionSession } from '../../src/selectors/registry.js';

export function decodeSelected(
  lm: LoadedModel,
  prompt: number[],
  select: SelectionSession | undefined,
  { steps = 6, throughPrefill = false }: { steps?: number; throughPrefill?: boolean } = {},
): { logits: Float32Array[]; tokens: number[] } {
  const cache = newCache(lm.config);
  let last = throughPrefill
    ? lm.model.backend.read(lm.model.forward(prompt, cache, { select: select?.select, lastOnly: true }))
    : prefill(lm.model, cache, prompt, { chunkSize: 64 });
  const logits: Float32Array[] = [];
  const tokens: number[] = [];
  for (let i = 0; i < steps; i++) {
    const next = last.indexOf(Math.max(...last));
    tokens.push(next);
    last = lm.model.forward([next], cache, { select: select?.select }).f32.slice();
    logits.push(last);
  }
  return { logits, tokens };
}
