/**
 * Runs one cell of a sweep: one task instance through the model with one KV method, measured.
 * - Query-agnostic (kvpress's default): the context is prefilled and compressed, then the question is added
 *   on the compressed cache without compressing it; query-aware: context and question are prefilled together
 *   and compressed with the question in the cache.
 * - The answer is decoded greedily and scored by RULER's string match.
 * - Perplexity cells stream the document through the model chunk by chunk (compression applies per chunk),
 *   so methods that keep a bounded cache run unbounded.
 * Context and question are tokenized separately (the question without special tokens), so that both modes see
 * the same ids.
 */
import type { KVCache } from '../cache/kv-cache.js';
import { AttendError } from '../errors.js';
import { forwardChunks } from '../generate/chunks.js';
import { generate } from '../generate/generate.js';
import { prefill } from '../generate/prefill.js';
import type { LoadedModel } from '../models/load.js';
import { createPress, pressEntry, resolveOptions } from '../presses/registry.js';
import { type CompressionPlan, CompressionSession } from '../presses/runner.js';
import { createSelector, type SelectionStats, type Selector } from '../selectors/registry.js';
import { SelectionSession, seesPrefill } from '../selectors/selector.js';
import { modelOfCell } from './act-method.js';
import { isPromptMethod, PROMPT_METHODS } from './prompt-methods.js';
import { scoreAll, scorePart } from './scoring.js';
import { isSelectorMethod } from './sweep-config.js';
import type { CellKey, CellMetrics, PerplexityInstance, TaskInstance } from './types.js';

/**
 * The cell's compression plan, with the decoding-time eviction the method itself prescribes (H2O's); for a selector
 * over a press (CellKey.within), that press's plan after prefill.
 */
export function planOf(key: CellKey): CompressionPlan | undefined {
  if (key.within) {
    const { press, ratio, options = {} } = key.within;
    return { press: createPress(press, options), budget: { ratio }, during: 'prefill', decode: pressEntry(press).decode?.(resolveOptions(pressEntry(press), options)) };
  }
  if (key.method === 'full' || isSelectorMethod(key.method) || isPromptMethod(key.method)) return undefined;
  const entry = pressEntry(key.method);
  // A press that sets its own size (DMS, SimLayerKV) runs without a budget; any other needs one.
  if (!key.budget && !entry.sizesItself) return undefined;
  return {
    press: createPress(key.method, key.options),
    budget: key.budget ?? undefined,
    during: key.during ?? 'prefill',
    decode: entry.decode?.(resolveOptions(entry, key.options)),
  };
}

/** Highest resident memory seen, sampled at chunk boundaries. */
export class MemoryProbe {
  peakRss = process.memoryUsage().rss;
  peakKv = 0;

  sample(kvBytes: number): void {
    this.peakKv = Math.max(this.peakKv, kvBytes);
    this.peakRss = Math.max(this.peakRss, process.memoryUsage().rss);
  }
}

export async function runCell(lm: LoadedModel, key: CellKey, instance: TaskInstance | PerplexityInstance): Promise<CellMetrics> {
  return instance.task === 'perplexity'
    ? runPerplexity(lm, key, instance as PerplexityInstance)
    : (await runGeneration(lm, key, instance as TaskInstance)).metrics;
}

/** A generation cell's metrics, and the cache it ended with (for tests that compare what was kept). */
export interface GenerationRun {
  metrics: CellMetrics;
  cache: KVCache;
}

/** Context and question ids, tokenized apart so that both query modes see the same ids. */
export function promptParts(lm: LoadedModel, instance: TaskInstance): { contextIds: number[]; questionIds: number[] } {
  return {
    contextIds: lm.tokenizer.encode(instance.context),
    questionIds: lm.tokenizer.encode(instance.question, { addSpecialTokens: false }),
  };
}

/** The cell's selector, when its method is one: its budget is the tokens each head reads per decoding step. */
export function selectorOf(key: CellKey): Selector | undefined {
  if (!isSelectorMethod(key.method) || !key.budget || !('tokens' in key.budget)) return undefined;
  return createSelector(key.method, { ...(key.options as Record<string, number>), budget: key.budget.tokens });
}

export async function runGeneration(given: LoadedModel, key: CellKey, instance: TaskInstance): Promise<GenerationRun> {
  // An ACT cell runs every forward, prefill and decoding, on the calibrated model (eval/act-method.ts).
  const lm = modelOfCell(given, key);
  const { contextIds, questionIds } = promptParts(lm, instance);
  const selector = selectorOf(key);
  const plan = planOf(key);
  // A selector that reads the prefill sees the context's prefill below too: one session for the whole sequence.
  const selection = selector && seesPrefill(selector) ? new SelectionSession(selector, lm.config) : undefined;
  const cache = lm.model.makeCache();
  const probe = new MemoryProbe();
  const afterPrefillChunk = () => probe.sample(cache.bytes());
  const t0 = performance.now();
  let session: CompressionSession | undefined;
  let promptIds = [...contextIds, ...questionIds];
  // A prompt compressor (eval/prompt-methods.ts) drops prompt tokens before the prefill, timed in the TTFT.
  if (isPromptMethod(key.method) && key.budget) promptIds = PROMPT_METHODS[key.method].compress(lm, promptIds, key.budget, key.options);
  if (plan && !key.queryAware) {
    session = new CompressionSession(plan, lm.model, cache);
    const s = session;
    prefill(lm.model, cache, contextIds, {
      chunkSize: key.prefillChunk,
      observer: s.observer,
      select: selection?.prefillSelect,
      afterChunk: (_, end) => {
        afterPrefillChunk();
        s.afterChunk(end, contextIds.length);
      },
    });
    promptIds = questionIds;
  }
  const contextMs = performance.now() - t0;
  const out = await generate(lm, promptIds, {
    temperature: 0,
    maxNewTokens: instance.maxNewTokens,
    prefillChunk: key.prefillChunk,
    cache,
    session,
    compressPrompt: key.queryAware,
    compression: key.queryAware ? plan : undefined,
    selector,
    selection,
    afterPrefillChunk,
  });
  probe.sample(out.cacheBytes);
  const metrics = generationMetrics(instance, out, probe, contextIds.length + questionIds.length, contextMs + out.prefillMs);
  return { metrics: withSelection(metrics, out.selection), cache };
}

/** A selector cell's metrics gain what its sparse steps read (selectors/selector.ts SelectionStats). */
export function withSelection(metrics: CellMetrics, s: SelectionStats | undefined): CellMetrics {
  if (!s) return metrics;
  return {
    ...metrics,
    readShare: s.entriesHeld ? s.entriesRead / s.entriesHeld : 1,
    entriesReadPerStep: s.lists ? s.entriesRead / s.lists : 0,
  };
}

/** TTFT is the time until the first token's logits exist (prefill, compression, question); sampling it is decoding. */
export function generationMetrics(
  instance: TaskInstance,
  out: { text: string; cacheBytes: number; newTokens: number; decodeMs: number },
  probe: MemoryProbe,
  promptTokens: number,
  ttftMs: number,
): CellMetrics {
  const prediction = out.text;
  return {
    accuracy: instance.metric === 'all' ? scoreAll(prediction, instance.answers) : scorePart(prediction, instance.answers),
    prediction,
    expected: [...instance.answers],
    kvBytes: out.cacheBytes,
    peakKvBytes: probe.peakKv,
    peakRssBytes: probe.peakRss,
    promptTokens,
    ttftMs,
    prefillTokensPerS: promptTokens / (ttftMs / 1000),
    decodeTokensPerS: out.newTokens > 1 ? (out.newTokens - 1) / (out.decodeMs / 1000) : 0,
  };
}

/** Perplexity of the document's tokens after the first, each predicted from the (compressed) cache before it. */
function runPerplexity(given: LoadedModel, key: CellKey, instance: PerplexityInstance): CellMetrics {
  const lm = modelOfCell(given, key);
  if (isPromptMethod(key.method)) throw new AttendError(`${key.method} compresses a prompt before its prefill and has no perplexity cells`);
  const ids = lm.tokenizer.encode(instance.text).slice(0, instance.contextLength);
  const plan = planOf(key);
  const cache = lm.model.makeCache();
  const session = plan ? new CompressionSession({ ...plan, during: 'chunks' }, lm.model, cache) : undefined;
  const probe = new MemoryProbe();
  const vocab = lm.config.vocabSize;
  let nll = 0;
  let counted = 0;
  const t0 = performance.now();
  forwardChunks(lm.model, cache, ids, key.prefillChunk, { observer: session?.observer }, (chunk, start, end) => {
    const logits = lm.model.backend.read(chunk);
    // Row t predicts token t + 1 (the last row of a chunk predicts the next chunk's first token).
    for (let t = start; t < Math.min(end, ids.length - 1); t++) {
      const row = logits.subarray((t - start) * vocab, (t - start + 1) * vocab);
      nll += logSumExp(row) - row[ids[t + 1]];
      counted++;
    }
    probe.sample(cache.bytes());
    session?.afterChunk(end, ids.length);
  });
  const ms = performance.now() - t0;
  return {
    accuracy: 0,
    perplexity: Math.exp(nll / counted),
    kvBytes: cache.bytes(),
    peakKvBytes: probe.peakKv,
    peakRssBytes: probe.peakRss,
    promptTokens: ids.length,
    ttftMs: ms,
    prefillTokensPerS: ids.length / (ms / 1000),
    decodeTokensPerS: 0,
  };
}

function logSumExp(row: Float32Array): number {
  let max = -Infinity;
  for (const x of row) if (x > max) max = x;
  let sum = 0;
  for (const x of row) sum += Math.exp(x - max);
  return max + Math.log(sum);
}
