/**
 * One needle-in-a-haystack sample decoded as the retrieval-head code decodes it (Wu et al. 2024,
 * nightdessert/Retrieval_Head, retrieval_head_detection.py and needle_in_haystack_with_mask.py, `decode`): the prompt
 * but its last token is prefilled; then the last prompt token and each generated token are run one at a time,
 * greedily (argmax of the logits), for at most 50 steps (`decode_len`), stopping after a token that is a line
 * break (`'<0x0A>'`). `onStep` sees each step's forward (with the observer given) and the token it generated;
 * `hooks` act on the decoding steps only, as the official `block_list` reaches decoding and not the prefill.
 *
 * The needle span is where the answer's tokens sit in the prompt (`find_needle_idx` of `real_needle`, the answer
 * part of the needle sentence). Attend looks for the answer's own token sequence; only where the prompt never
 * holds it exactly (a tokenizer that merges it with its neighbours) does it fall back to the official rule, the
 * first window of as many tokens holding over 90% of the answer's distinct tokens. (The official rule alone can pick a
 * window shifted early: with attend-mini's single-digit tokens " 8985138" holds every digit of 8985138 from the
 * space on, and ": 8315738" from the colon on, two tokens early; `overlapNeedleSpan` is that rule alone.)
 *
 * Choices, written down: generation also stops at EOS (Attend's generation does; the official loop has no EOS
 * check), and before the model's context is full. The official stop tests name Llama-2's newline byte token
 * (`step_token == '<0x0A>'`) and one id (`inp.item() == 144`); Attend stops after any token whose text holds a line
 * break, the same intent on any tokenizer (on attend-mini's byte-level vocabulary the newline is 'Ċ', so the
 * official test never fires and the official loop always runs its 50 steps). Success is Attend's string match of
 * the task (eval/scoring.ts) above 0.5, where the official code asks ROUGE-1 recall of the answer above 50%: for a
 * single-number answer both ask that the number be in the output.
 *
 * `decodeIds` is the loop on given ids and span; with `force` it feeds the given tokens instead of its own argmax
 * (teacher forcing, exactly that many steps, no stop test), which is how test/heads/retrieval-oracle.test.ts puts
 * Attend on the official code's own decoded tokens.
 */
import { readOnce } from '../backend/backend.js';
import type { AttentionObserver } from '../backend/backend.js';
import type { KVCache } from '../cache/kv-cache.js';
import { AttendError } from '../errors.js';
import { score } from '../eval/scoring.js';
import type { TaskInstance } from '../eval/types.js';
import { prefill } from '../generate/prefill.js';
import type { LoadedModel } from '../models/load.js';
import { contextLength, type ForwardHooks } from '../models/model.js';

/** retrieval_head_detection.py `decode(..., 50)`. */
export const DECODE_STEPS = 50;

/** The answer's tokens in the prompt: positions [start, end). */
export interface NeedleSpan {
  start: number;
  end: number;
}

export interface NeedleRun {
  promptIds: number[];
  span: NeedleSpan;
  tokens: number[];
  prediction: string;
  /** The task's string match (0…1). */
  accuracy: number;
}

export interface NeedleDecodeOptions {
  observer?: AttentionObserver;
  /** Once the prompt is prefilled, before the first decoding step. */
  onStart?: (start: { promptIds: readonly number[]; span: NeedleSpan; cache: KVCache }) => void;
  /** Before each decoding forward: the position its query sits at. */
  beforeStep?: (position: number) => void;
  /** After each decoding forward: the token it generated (greedy). */
  onStep?: (token: number) => void;
  /** For the decoding forwards only. */
  hooks?: (cache: KVCache) => ForwardHooks;
  maxSteps?: number;
  /**
   * The prompt but its last token already prefilled (a cache of the same prompt): decoding runs on a clone of it
   * instead of prefilling again, so several hooked decodings of one prompt share its prefill (the hooks reach
   * decoding steps only, so every one of them would prefill the same cache).
   */
  prefilled?: KVCache;
}

/**
 * The official `find_needle_idx` alone: the first window of the needle's length, from the start of `ids`, holding
 * over 90% of the needle's distinct tokens (a window may run past the end, as the official slice does); null when
 * none does (the official (-1, -1)).
 */
export function overlapNeedleSpan(ids: readonly number[], needle: readonly number[]): NeedleSpan | null {
  const n = needle.length;
  if (n === 0) return null;
  const want = new Set(needle);
  for (let i = 0; i < ids.length; i++) {
    const have = new Set(ids.slice(i, i + n));
    let common = 0;
    for (const t of want) if (have.has(t)) common++;
    if (common / want.size > 0.9) return { start: i, end: i + n };
  }
  return null;
}

/** First occurrence of `needle` in `ids`, or the official overlap rule's window; null when neither finds it. */
export function findNeedleSpan(ids: readonly number[], needle: readonly number[]): NeedleSpan | null {
  const n = needle.length;
  if (n === 0) return null;
  outer: for (let i = 0; i + n <= ids.length; i++) {
    for (let j = 0; j < n; j++) if (ids[i + j] !== needle[j]) continue outer;
    return { start: i, end: i + n };
  }
  return overlapNeedleSpan(ids, needle);
}

/** The prompt as the sweep runner feeds it: the context with BOS, then the question without special tokens. */
export function needlePrompt(lm: LoadedModel, instance: TaskInstance): number[] {
  return [...lm.tokenizer.encode(instance.context), ...lm.tokenizer.encode(instance.question, { addSpecialTokens: false })];
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** What `decodeIds` ran: the tokens it fed after each step, and its own argmax at each step. */
export interface IdsRun {
  /** The generated tokens (greedy), or the forced ones. */
  tokens: number[];
  /** The argmax of each step's logits (equal to `tokens` unless forced). */
  greedy: number[];
}

/**
 * The decoding loop on given prompt ids (BOS included) and needle span: the prompt but its last token prefilled,
 * then one token per step. Greedy with the stop rules above, or, with `force`, exactly `force.length` steps feeding
 * those tokens (each step's `onStep` then sees the forced token).
 */
export function decodeIds(lm: LoadedModel, promptIds: readonly number[], span: NeedleSpan, opts: NeedleDecodeOptions & { force?: readonly number[] } = {}): IdsRun {
  const { model, tokenizer } = lm;
  if (promptIds.length === 0) throw new AttendError('an empty prompt has no token to decode from');
  const limit = contextLength(lm.config);
  const steps = opts.force ? opts.force.length : (opts.maxSteps ?? DECODE_STEPS);
  if (opts.force && promptIds.length + steps > limit) {
    throw new AttendError(`a ${promptIds.length}-token prompt and ${steps} forced tokens do not fit the model's ${limit} positions`);
  }
  if (promptIds.length >= limit) {
    throw new AttendError(`a ${promptIds.length}-token prompt leaves no room to decode in the model's ${limit} positions`);
  }
  if (opts.prefilled && opts.prefilled.nextPosition !== promptIds.length - 1) {
    throw new AttendError(`a prefilled cache of ${opts.prefilled.nextPosition} positions does not hold the ${promptIds.length - 1} tokens before the prompt's last`);
  }
  const cache = opts.prefilled?.clone() ?? model.makeCache();
  if (!opts.prefilled && promptIds.length > 1) prefill(model, cache, promptIds.slice(0, -1));
  // The model's EOS ids as `attend generate` finds them (generate.ts defaultEos).
  const eos = new Set(lm.generation.eosTokenIds ?? (lm.config.eosTokenIds.length ? lm.config.eosTokenIds : tokenizer.eosTokenIds));
  const hooks = opts.hooks?.(cache);
  opts.onStart?.({ promptIds, span, cache });
  const tokens: number[] = [];
  const greedy: number[] = [];
  let input = promptIds[promptIds.length - 1];
  for (let step = 0; step < steps && cache.nextPosition < limit; step++) {
    opts.beforeStep?.(cache.nextPosition);
    const logits = model.forward([input], cache, { observer: opts.observer, hooks });
    greedy.push(argmax(readOnce(model.backend, logits)));
    input = opts.force ? opts.force[step] : greedy[step];
    tokens.push(input);
    opts.onStep?.(input);
    if (!opts.force && (eos.has(input) || tokenizer.decode([input]).includes('\n'))) break;
  }
  return { tokens, greedy };
}

export function decodeNeedle(lm: LoadedModel, instance: TaskInstance, opts: NeedleDecodeOptions = {}): NeedleRun {
  const { tokenizer } = lm;
  const promptIds = needlePrompt(lm, instance);
  const answer = tokenizer.encode(instance.answers[0], { addSpecialTokens: false });
  const span = findNeedleSpan(promptIds, answer);
  if (!span) throw new AttendError(`${instance.task} (seed ${instance.seed}, ${instance.contextLength} tokens): the answer's tokens are not in the prompt`);
  const limit = contextLength(lm.config);
  if (promptIds.length >= limit) {
    throw new AttendError(`${instance.task}: a ${promptIds.length}-token prompt leaves no room to decode in the model's ${limit} positions`);
  }
  const { tokens } = decodeIds(lm, promptIds, span, opts);
  const prediction = tokenizer.decode(tokens, { skipSpecialTokens: true }).trim();
  return { promptIds, span, tokens, prediction, accuracy: score(instance, prediction) };
}
