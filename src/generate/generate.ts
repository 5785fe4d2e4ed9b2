/**
 * The generation loop: chunked prefill, then one token at a time until EOS, a stop string, the token limit or
 * the model's context. `generateStream` yields text as tokens arrive; `generate` collects it. With a draft model
 * (`draft`), decoding runs in speculative blocks (speculative.ts) that decide several tokens per target forward;
 * the tokens are still emitted and checked one at a time, so EOS, stop strings, the token limit and the context
 * end generation at the same token as without a draft, and the tokens a block decided past that are dropped.
 */
import { readOnce } from '../backend/backend.js';
import { check } from '../errors.js';
import type { KVCache } from '../cache/kv-cache.js';
import type { DType } from '../tensor/dtype.js';
import { type CompressionPlan, CompressionSession, type CompressionStats } from '../presses/runner.js';
import type { LoadedModel } from '../models/load.js';
import { contextLength } from '../models/model.js';
import { checkFiniteLogits } from './finite.js';
import { prefill, type PrefillOptions } from './prefill.js';
import { Sampler, type SamplingOptions } from './sampler.js';
import { checkDraftCompatible, checkDraftCompression, type DraftOptions, SpeculativeDecoder, type SpeculativeStats, validateDraftTokens } from './speculative.js';
import { StopStringFilter } from './stop.js';
import { SelectionSession, type SelectionStats, type Selector } from '../selectors/selector.js';

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens?: number;
  /** Text that ends generation (not included in the output). */
  stop?: string[];
  /** Token ids that end generation; defaults to the model's EOS ids. */
  eosTokenIds?: number[];
  prefillChunk?: number;
  /** Start from this cache (e.g. a compressed context) instead of a new one. */
  cache?: KVCache;
  /** Storage dtype of a new cache. */
  kvDtype?: DType;
  /** Compress the KV cache with a press (see presses/runner.ts for when it runs). */
  compression?: CompressionPlan;
  /**
   * Continue a compression session already under way on `cache` (e.g. a context compressed before its question
   * arrived); with `compressPrompt: false` the prompt given here is added without compressing it, as kvpress
   * handles questions, and only decoding-time compression applies.
   */
  session?: CompressionSession;
  compressPrompt?: boolean;
  /**
   * The prompt is already in `cache` (prefilled once for several continuations); these are its last logits.
   * Nothing is prefilled and `history` for the repetition penalty is still `promptIds`.
   */
  prefilledLogits?: Float32Array;
  /**
   * Decode-time sparse attention: each decoding step reads only the entries the selector picks per layer and head
   * (selectors/; e.g. Quest), nothing dropped. Combines with `compression` (it selects within the kept entries).
   */
  selector?: Selector;
  /** The selector's session when the caller ran part of the sequence through it already (instead of `selector`). */
  selection?: SelectionSession;
  /** Called after each prefill chunk is in the cache, before it is compressed (the cache at its fullest). */
  afterPrefillChunk?: PrefillOptions['afterChunk'];
  /**
   * Speculative decoding with this draft model (same tokenizer), `tokens` proposals per target forward (see
   * speculative.ts). Prefill compression applies to the target only; compression while decoding is refused.
   */
  draft?: DraftOptions;
}

export interface GenerationEvent {
  token: number;
  /** Text that became final with this token (may be empty while a character or stop string is incomplete). */
  text: string;
}

export interface GenerationStats {
  promptTokens: number;
  newTokens: number;
  prefillMs: number;
  decodeMs: number;
  finishReason: 'eos' | 'stop' | 'length' | 'context';
  /** Bytes the cache holds at the end. */
  cacheBytes: number;
  compression?: CompressionStats;
  /** What the selector read: entries read / held over the restricted layer calls. */
  selection?: SelectionStats;
  /** With a draft: proposals made and accepted, and forwards of both models. */
  speculative?: SpeculativeStats;
}

export interface GenerationResult extends GenerationStats {
  text: string;
  tokens: number[];
  cache: KVCache;
}

export const DEFAULT_MAX_NEW_TOKENS = 128;

/** Streams the continuation of `promptIds`; the return value of the iterator carries the statistics. */
export async function* generateStream(
  lm: LoadedModel,
  promptIds: number[],
  opts: GenerateOptions = {},
): AsyncGenerator<GenerationEvent, GenerationStats & { cache: KVCache }> {
  const { model, config, tokenizer } = lm;
  const context = contextLength(config);
  const vocab = config.vocabSize;
  for (const id of promptIds) {
    check(Number.isInteger(id) && id >= 0 && id < vocab, `token id ${id} is outside the vocabulary (0…${vocab - 1})`);
  }
  const cache = opts.cache ?? model.makeCache(opts.kvDtype);
  const inCache = opts.prefilledLogits ? 0 : promptIds.length;
  check(
    cache.nextPosition + inCache <= context,
    () => `the prompt has ${cache.nextPosition + inCache} tokens, more than the model's context of ${context}`,
  );
  const maxNew = opts.maxNewTokens ?? lm.generation.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
  check(Number.isInteger(maxNew) && maxNew >= 0, `max new tokens must be a whole number ≥ 0, got ${maxNew}`);
  const sampler = new Sampler(opts);
  const eos = new Set(opts.eosTokenIds ?? defaultEos(lm));
  const stops = new StopStringFilter(opts.stop ?? []);
  const decoder = tokenizer.streamDecoder({ skipSpecialTokens: true });
  const history = [...promptIds];
  const spec = opts.draft ? speculativeDecoder(lm, opts, cache, inCache, sampler, promptIds) : undefined;

  const session = opts.session ?? (opts.compression ? new CompressionSession(opts.compression, model, cache) : undefined);
  check(!(opts.selector && opts.draft), 'a selector and a draft model cannot be combined yet (speculative verification runs several rows per forward)');
  const selection = opts.selection ?? (opts.selector ? new SelectionSession(opts.selector, config) : undefined);
  const compressPrompt = opts.compressPrompt ?? true;
  const t0 = performance.now();
  if (spec) {
    // The draft reads the prompt first (its logits are not needed: the first new token comes from the target's).
    if (!opts.prefilledLogits) prefill(opts.draft!.model.model, spec.draftCache, promptIds, { chunkSize: opts.prefillChunk });
    spec.decoder.stats.draftPrefillMs = performance.now() - t0;
  }
  let logits =
    opts.prefilledLogits ??
    prefill(model, cache, promptIds, {
      chunkSize: opts.prefillChunk,
      observer: session?.observer,
      // Selectors that build on the prompt's queries (RetrievalAttention's index, LongHeads' chunks) see the prefill.
      select: selection?.prefillSelect,
      afterChunk: (c, end) => {
        opts.afterPrefillChunk?.(c, end);
        if (compressPrompt) session?.afterChunk(end, promptIds.length);
      },
    });
  const prefillMs = performance.now() - t0;
  const t1 = performance.now();
  /** The position the first new token takes: the n-th new token sits at start + n − 1. */
  const start = cache.nextPosition;
  let newTokens = 0;
  let finishReason: GenerationStats['finishReason'] = 'length';
  /** Tokens a speculative block decided that are not emitted yet. */
  let decided: number[] = [];
  while (newTokens < maxNew) {
    let token: number;
    if (decided.length > 0) token = decided.shift()!;
    else {
      checkFiniteLogits(
        logits,
        newTokens === 0
          ? `prefill (the prompt's last position, ${cache.nextPosition - 1})`
          : `decode step ${newTokens} (position ${cache.nextPosition - 1})`,
      );
      token = sampler.sample(logits, history);
    }
    newTokens++;
    history.push(token);
    if (eos.has(token)) {
      finishReason = 'eos';
      break;
    }
    const text = stops.push(decoder.push(token));
    yield { token, text };
    if (stops.stopped) {
      finishReason = 'stop';
      break;
    }
    if (newTokens === maxNew) break;
    // Without a draft this is cache.nextPosition: every token but the one just sampled is in the cache.
    if (start + newTokens - 1 >= context) {
      finishReason = 'context';
      break;
    }
    if (decided.length > 0) continue;
    const k = spec?.decoder.proposalsFor(maxNew - newTokens, history.length) ?? 0;
    if (k > 0) {
      decided = spec!.decoder.block(history, k);
      continue;
    }
    // The press's observer records decode steps only when the plan compresses while decoding: otherwise nothing reads
    // what it would record, and on a device each recorded step is a copy to the host per layer.
    const observer = session?.plan.decode ? session.observer : undefined;
    logits = readOnce(model.backend, model.forward([token], cache, { lastOnly: true, observer, select: selection?.select }));
    if (spec) spec.decoder.stats.targetForwards++;
    session?.afterDecodeStep();
  }
  // A block may have run past where generation ended: the cache keeps what plain decoding leaves in it.
  if (spec && newTokens > 0) cache.trim(start + newTokens - 1);
  const tail = stops.push(decoder.flush()) + stops.flush();
  if (tail) yield { token: -1, text: tail };
  return {
    promptTokens: promptIds.length,
    newTokens,
    prefillMs,
    decodeMs: performance.now() - t1,
    finishReason,
    cache,
    cacheBytes: cache.bytes(),
    compression: session?.stats,
    selection: selection?.stats,
    speculative: spec?.decoder.stats,
  };
}

/**
 * The draft's decoder for this generation, after the checks: the same tokenizer, no decoding-time compression, a
 * draft cache that holds what the target's holds, and a prompt that fits the draft's context too.
 */
function speculativeDecoder(
  lm: LoadedModel,
  opts: GenerateOptions,
  cache: KVCache,
  inCache: number,
  sampler: Sampler,
  promptIds: number[],
): { decoder: SpeculativeDecoder; draftCache: KVCache } {
  const draft = opts.draft!;
  checkDraftCompatible(lm, draft.model);
  checkDraftCompression(opts.compression);
  checkDraftCompression(opts.session?.plan);
  if (draft.tokens !== undefined) validateDraftTokens(draft.tokens);
  check(
    !opts.cache || draft.cache,
    'a draft model with a given cache needs the draft cache that holds the same tokens (draft.cache)',
  );
  const draftCache = draft.cache ?? draft.model.model.makeCache(opts.kvDtype);
  check(
    draftCache.nextPosition === cache.nextPosition,
    () => `the draft cache is at position ${draftCache.nextPosition} and the target's at ${cache.nextPosition}: they must hold the same tokens`,
  );
  const draftContext = contextLength(draft.model.config);
  check(
    draftCache.nextPosition + inCache <= draftContext,
    () => `the prompt has ${draftCache.nextPosition + inCache} tokens, more than the draft model's context of ${draftContext}`,
  );
  // history[0] (the prompt's first id) sits at this position in both caches.
  const offset = cache.nextPosition + inCache - promptIds.length;
  const limits = { targetContext: contextLength(lm.config), draftContext };
  return { decoder: new SpeculativeDecoder(lm, draft.model, cache, draftCache, sampler, offset, limits, draft.tokens), draftCache };
}

export async function generate(lm: LoadedModel, promptIds: number[], opts: GenerateOptions = {}): Promise<GenerationResult> {
  const stream = generateStream(lm, promptIds, opts);
  const tokens: number[] = [];
  let text = '';
  for (;;) {
    const step = await stream.next();
    if (step.done) return { ...step.value, text, tokens };
    if (step.value.token >= 0) tokens.push(step.value.token);
    text += step.value.text;
  }
}

function defaultEos(lm: LoadedModel): number[] {
  const ids = lm.generation.eosTokenIds ?? (lm.config.eosTokenIds.length ? lm.config.eosTokenIds : lm.tokenizer.eosTokenIds);
  return ids;
}

