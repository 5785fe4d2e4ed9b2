/**
 * Shared prefill (a sweep's `sharedPrefill`). Methods that compress once, when the whole prompt is in (kvpress's
 * way), and record nothing of their own while it runs all see the same prefill: the same ids, cache and attention.
 * So the cells of one instance that prefill the same ids run it once, with one recorder keeping what any of their
 * presses needs; each cell then starts from an exact copy of the cache and of what its own recorder would hold,
 * and compresses, adds the question and decodes as a run of its own does (run-cell.ts; the test checks equality).
 * An instance has two such prefills: the context alone (query-agnostic cells) and context + question (query-aware
 * cells, and 'full', which prefills the whole prompt too). Metrics: see CellMetrics.sharedPrefill.
 */
import { seesPrefill } from '../selectors/selector.js';
import type { KVCache } from '../cache/kv-cache.js';
import { generate } from '../generate/generate.js';
import { prefill } from '../generate/prefill.js';
import type { LoadedModel } from '../models/load.js';
import { PressRecorder, type RecordedQueries, recordedStats } from '../presses/observe.js';
import type { PressNeeds } from '../presses/press.js';
import { type CompressionPlan, CompressionSession } from '../presses/runner.js';
import { copyAsPrefilled } from './prefilled-copy.js';
import { isPromptMethod } from './prompt-methods.js';
import { type GenerationRun, generationMetrics, MemoryProbe, planOf, promptParts, selectorOf, withSelection } from './run-cell.js';
import type { CellKey, TaskInstance } from './types.js';

/** A cell without compression, or query-aware, prefills context and question together (see run-cell.ts). */
function prefillsWholePrompt(key: CellKey): boolean {
  return key.queryAware || !planOf(key);
}

function canShare(key: CellKey): boolean {
  // A selector that reads the prefill (its queries build its index or chunks) needs a prefill of its own.
  const selector = selectorOf(key);
  if (selector && seesPrefill(selector)) return false;
  // A prompt compressor prefills ids of its own (the prompt it kept).
  if (isPromptMethod(key.method)) return false;
  // ACT changes the model, so its prefill is its own too (eval/act-method.ts).
  if (key.act) return false;
  const plan = planOf(key);
  return !plan || (plan.during === 'prefill' && !plan.press.observer);
}

/**
 * Splits one instance's cells into groups that can share a prefill and cells that cannot, in order of first
 * appearance; a group of one gains nothing and runs as usual.
 */
export function groupBySharedPrefill(cells: CellKey[]): CellKey[][] {
  const groups = new Map<string, CellKey[]>();
  cells.forEach((cell, i) => {
    const id = canShare(cell) ? JSON.stringify([cell.prefillChunk, prefillsWholePrompt(cell)]) : `alone ${i}`;
    const group = groups.get(id);
    if (group) group.push(cell);
    else groups.set(id, [cell]);
  });
  return [...groups.values()];
}

/** What the one prefill leaves for every cell of its group. */
interface SharedPrefill {
  promptIds: number[];
  /** The question, still to run for query-agnostic cells. */
  questionIds: number[] | null;
  cache: KVCache;
  chunkEnds: number[];
  recorded: RecordedQueries;
  lastLogits: Float32Array;
  ms: number;
}

/** Runs one group's prefill once, then each cell; `onCell` gets each cell's run as it finishes. */
export async function runSharedPrefill(
  lm: LoadedModel,
  cells: CellKey[],
  instance: TaskInstance,
  onCell: (cell: CellKey, run: GenerationRun) => void,
): Promise<void> {
  const plans = cells.map(planOf);
  const shared = prefillOnce(lm, cells[0], instance, unionOfNeeds(plans));
  for (const [i, cell] of cells.entries()) onCell(cell, await runFromShared(lm, cell, plans[i], instance, shared));
}

function unionOfNeeds(plans: (CompressionPlan | undefined)[]): PressNeeds {
  const needs = plans.map((p) => p?.press.needs ?? {});
  return { queryWindow: Math.max(0, ...needs.map((n) => n.queryWindow ?? 0)), attention: needs.some((n) => n.attention) };
}

function prefillOnce(lm: LoadedModel, key: CellKey, instance: TaskInstance, needs: PressNeeds): SharedPrefill {
  const { contextIds, questionIds } = promptParts(lm, instance);
  const whole = prefillsWholePrompt(key);
  const ids = whole ? [...contextIds, ...questionIds] : contextIds;
  const cache = lm.model.makeCache();
  const recorder = new PressRecorder(needs, lm.config.numHeads * lm.config.headDim);
  const chunkEnds: number[] = [];
  const t0 = performance.now();
  const lastLogits = prefill(lm.model, cache, ids, {
    chunkSize: key.prefillChunk,
    observer: recorder,
    afterChunk: (_, end) => chunkEnds.push(end),
  });
  const ms = performance.now() - t0;
  return {
    promptIds: [...contextIds, ...questionIds],
    questionIds: whole ? null : questionIds,
    cache,
    chunkEnds,
    recorded: recorder.recorded(),
    lastLogits,
    ms,
  };
}

async function runFromShared(
  lm: LoadedModel,
  key: CellKey,
  plan: CompressionPlan | undefined,
  instance: TaskInstance,
  shared: SharedPrefill,
): Promise<GenerationRun> {
  const probe = new MemoryProbe();
  const cache = copyAsPrefilled(shared.cache, shared.chunkEnds, recordedStats(plan?.press.needs ?? {}));
  probe.sample(cache.bytes());
  const t0 = performance.now();
  const session = plan && CompressionSession.afterSharedPrefill(plan, lm.model, cache, shared.recorded);
  const compressMs = performance.now() - t0;
  // Query-agnostic cells add their question uncompressed; the others' first logits came with the prefill.
  const out = await generate(lm, shared.questionIds ?? shared.promptIds, {
    temperature: 0,
    maxNewTokens: instance.maxNewTokens,
    prefillChunk: key.prefillChunk,
    cache,
    session,
    compressPrompt: false,
    prefilledLogits: shared.questionIds ? undefined : shared.lastLogits,
    selector: selectorOf(key),
    afterPrefillChunk: () => probe.sample(cache.bytes()),
  });
  probe.sample(out.cacheBytes);
  const metrics = withSelection(generationMetrics(instance, out, probe, shared.promptIds.length, shared.ms + compressMs + out.prefillMs), out.selection);
  return { metrics: { ...metrics, sharedPrefill: true }, cache };
}
