/**
 * A draft model's greedy continuation of a sequence: the "lookahead" that both methods of Galim et al. 2025
 * ("Draft-based Approximate Inference for LLMs", arXiv 2506.08373) read the draft's (SpecPC, prompt/specpc.ts) or
 * the target's (SpecKV, presses/speckv.ts) attention from. The official code (furiosa-ai/draft-based-approx-llm)
 * calls Hugging Face `generate` on the draft with do_sample=False (eval.py run_sample): each step takes the argmax
 * of the last row's logits (the first of equal maxima, as torch.argmax), and generation ends after `tokens` new
 * tokens or right after an end-of-sequence id, which is kept in the output as generate keeps it. The prompt runs
 * in one prefill; each new token but the last is fed back, one forward each (n tokens: 1 prefill + n − 1 steps).
 * The draft's cache is its own and is dropped afterwards. checkDraftTokenizer is the check both methods (and the
 * CLI's --spec-pc) make that the draft shares the target's tokenizer.
 */
import { readOnce } from '../backend/backend.js';
import type { AttentionObserver } from '../backend/backend.js';
import type { KVCache } from '../cache/kv-cache.js';
import { AttendError, check } from '../errors.js';
import { checkFiniteLogits } from '../generate/finite.js';
import { prefill } from '../generate/prefill.js';
import { argmax } from '../generate/sampler.js';
import { PROBE_TEXT } from '../generate/speculative.js';
import type { LoadedModel } from '../models/load.js';
import type { CausalLM } from '../models/model.js';

export interface LookaheadOptions {
  /** New tokens at most (max_new_tokens), a whole number ≥ 1. */
  tokens: number;
  /** Ids that end the continuation (the draft's generation config's eos_token_id), kept as its last token. */
  eos?: readonly number[];
  /** Passed to every forward of the draft (SpecPC records its queries). */
  observer?: AttentionObserver;
  /** After each forward, the draft's cache holding every token run so far: step 0 is the prompt's prefill. */
  afterForward?(cache: KVCache, step: number): void;
  /** Prompt tokens per prefill forward (the rows attend causally: chunking changes nothing). */
  chunkSize?: number;
}

/** The draft's greedy continuation of `ids`: `tokens` ids, fewer when an eos id ended it. */
export function greedyLookahead(model: CausalLM, ids: ArrayLike<number>, opts: LookaheadOptions): number[] {
  check(Number.isInteger(opts.tokens) && opts.tokens >= 1, `lookahead tokens must be a whole number ≥ 1, got ${opts.tokens}`);
  const cache = model.makeCache();
  let logits = prefill(model, cache, ids, { observer: opts.observer, chunkSize: opts.chunkSize });
  opts.afterForward?.(cache, 0);
  const out: number[] = [];
  for (let step = 1; ; step++) {
    checkFiniteLogits(logits, `the draft model, position ${cache.nextPosition - 1}`);
    const next = argmax(logits);
    out.push(next);
    if (out.length >= opts.tokens || opts.eos?.includes(next)) return out;
    logits = readOnce(model.backend, model.forward([next], cache, { lastOnly: true, observer: opts.observer }));
    opts.afterForward?.(cache, step);
  }
}

/**
 * One-line errors (`who`: the method or flag) unless `draft` has the target's vocabulary and encodes text as the
 * target's tokenizer does: the checks of speculative decoding (generate/speculative.ts checkDraftCompatible), whose
 * probe text is used; a target without a tokenizer is checked by its vocabulary alone.
 */
export function checkDraftTokenizer(target: CausalLM, draft: LoadedModel, who: string): void {
  const tv = target.config.vocabSize;
  const dv = draft.config.vocabSize;
  if (tv !== dv) throw new AttendError(`${who}: the draft model (${draft.dir}) has a vocabulary of ${dv} tokens and the target ${tv}: the draft needs the target's tokenizer`);
  if (!target.tokenizer) return;
  const t = target.tokenizer.encode(PROBE_TEXT);
  const d = draft.tokenizer.encode(PROBE_TEXT);
  if (t.length !== d.length || t.some((id, i) => id !== d[i])) {
    throw new AttendError(`${who}: the draft model's tokenizer (${draft.dir}) encodes text differently from the target's: the draft needs the target's tokenizer`);
  }
}
