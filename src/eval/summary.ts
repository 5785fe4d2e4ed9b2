/**
 * The console summary of a sweep (and the rows of its Markdown):
 * - accuracy per method and budget, pooled over every context length, depth and task of the sweep, with its 95%
 *   Wilson score interval (pooled because a row per length would have too few instances to say anything);
 * - cost per context length, method and budget: KV bytes, time to first token, decode speed;
 * - a closing sentence, made from the results, saying what the table shows and what it cannot.
 * Budgets are worded one way everywhere (console, Markdown, report): the share of the prompt's KV kept.
 */
import { actLabel } from './act-method.js';
import { distinct, groupBy } from './report/aggregate.js';
import { wilson } from './scoring.js';
import { PRESSES } from '../presses/registry.js';
import { isSelectorMethod } from './sweep-config.js';
import { TASKS } from './tasks/index.js';
import type { CellResult } from './types.js';

/**
 * A budget as the share (or number of tokens) of the KV kept: '100% kept' (full KV), '50% kept', '512 tokens kept';
 * for a press whose ratio is the share of something else (PressEntry.ratioOf), that share: '50% of KV heads made streaming'.
 */
export function keptLabel(budget: CellResult['budget'], method?: string): string {
  if (!budget) return '100% kept';
  const ratioOf = method === undefined ? undefined : PRESSES.find((p) => p.name === method)?.ratioOf;
  if ('ratio' in budget && ratioOf) return `${Number((budget.ratio * 100).toFixed(1))}% of ${ratioOf}`;
  if ('ratio' in budget) return `${Number(((1 - budget.ratio) * 100).toFixed(1))}% kept`;
  return `${budget.tokens} tokens kept`;
}

/**
 * The budget column: the KV kept, when compression ran if per chunk, and whether the question was in the cache. A
 * press that sets its own size (DMS, SimLayerKV, the decoding presses) has no budget: 'own size', and the rest.
 */
export function budgetLabel(r: Pick<CellResult, 'budget' | 'during' | 'queryAware' | 'within'> & { method?: string }): string {
  const when = `${r.during === 'chunks' ? ', per chunk' : ''}, ${r.queryAware ? 'query-aware' : 'query-agnostic'}`;
  if (!r.budget) return r.method && r.method !== 'full' && !isSelectorMethod(r.method) ? `own size${when}` : keptLabel(null);
  if (r.method && isSelectorMethod(r.method) && 'tokens' in r.budget) {
    const read = `${r.budget.tokens} tokens read per step`;
    return r.within ? `${keptLabel({ ratio: r.within.ratio })} by ${r.within.press}${when}, ${read}` : `100% kept, ${read}`;
  }
  return `${keptLabel(r.budget, r.method)}${when}`;
}

export const QUERY_NOTE = 'query-aware: the question was in the cache when the press compressed it, so the press could see what is asked; '
  + 'query-agnostic: the context was compressed before the question arrived (kvpress\'s default).';

/** The legend of the TTFT marker of rows whose prefill was shared. */
export const SHARED_PREFILL_NOTE = '* TTFT of a prefill shared by the methods of each instance, plus the method\'s own compression (sharedPrefill)';

export interface AccuracyRow {
  method: string;
  /** The method's options, where the results hold it with more than one set of them (else ''). */
  variant: string;
  budget: string;
  /** Instances (cells) pooled in the row. */
  n: number;
  /**
   * Distinct instances by seed among them: (task, seed), or (task, seed, length, depth) for a pooled task; fewer
   * than n when a seed's needle recurs at other lengths or depths.
   */
  seeds: number;
  accuracy: number;
  /** The 95% Wilson score interval of the accuracy. */
  lo: number;
  hi: number;
}

export interface CostRow {
  method: string;
  variant: string;
  budget: string;
  contextLength: number;
  cells: number;
  kvMiB: number;
  peakKvMiB: number;
  ttftS: number;
  /** Some of its cells shared their prefill with other methods (their TTFT counts that prefill whole). */
  sharedPrefill: boolean;
  decodeTokensPerS: number;
  /** Selectors: the share of the held entries their sparse decoding steps read (mean over the cells). */
  readShare?: number;
}

export interface Summary {
  accuracy: AccuracyRow[];
  cost: CostRow[];
  /** What was pooled, for the table's heading and the closing sentence. */
  models: string[];
  tasks: string[];
  contextLengths: number[];
  depths: number[];
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

function methodOrder(a: { method: string; variant: string; budget: string }, b: { method: string; variant: string; budget: string }): number {
  if (a.method !== b.method) return a.method === 'full' ? -1 : b.method === 'full' ? 1 : a.method.localeCompare(b.method);
  if (a.variant !== b.variant) return a.variant.localeCompare(b.variant);
  return b.budget.localeCompare(a.budget, 'en', { numeric: true });
}

/** "k=v, …" of a cell's options, sorted. */
export function optionsText(options: CellResult['options']): string {
  return Object.entries(options ?? {}).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join(', ');
}

/**
 * Per cell, its options where its method ran with more than one set of them in `results` (else ''), and its ACT
 * calibration where it ran with one (eval/act-method.ts: "ACT on 2 heads: 6.5, 6.4").
 */
export function variants(results: CellResult[]): (r: CellResult) => string {
  const sets = new Map<string, Set<string>>();
  for (const r of results) sets.set(r.method, (sets.get(r.method) ?? new Set()).add(optionsText(r.options)));
  const options = (r: CellResult) => ((sets.get(r.method)?.size ?? 0) > 1 ? optionsText(r.options) : '');
  return (r) => [options(r), r.act ? actLabel(r.act) : ''].filter((p) => p).join(', ');
}

/** A row's method as the tables show it: its name, and its options where they tell rows apart. */
export const methodText = (r: { method: string; variant: string }): string => (r.variant ? `${r.method} (${r.variant})` : r.method);

export function summarise(results: CellResult[]): Summary {
  const scored = results.filter((r) => r.task !== 'perplexity');
  const variant = variants(results);
  const accuracy = [...groupBy(scored, (r) => JSON.stringify([r.method, variant(r), budgetLabel(r)])).values()].map((rs): AccuracyRow => {
    const hits = rs.reduce((s, r) => s + r.metrics.accuracy, 0);
    const seeds = new Set(rs.map((r) => (TASKS.find((t) => t.name === r.task)?.pooled
      ? `${r.task}|${r.seed}|${r.contextLength}|${r.depth}` : `${r.task}|${r.seed}`))).size;
    return { method: rs[0]!.method, variant: variant(rs[0]!), budget: budgetLabel(rs[0]!), n: rs.length, seeds, accuracy: hits / rs.length, ...wilson(hits, rs.length) };
  }).sort(methodOrder);
  const cost = [...groupBy(results, (r) => JSON.stringify([r.method, variant(r), budgetLabel(r), r.contextLength])).values()]
    .map((rs): CostRow => ({
      method: rs[0]!.method,
      variant: variant(rs[0]!),
      budget: budgetLabel(rs[0]!),
      contextLength: rs[0]!.contextLength,
      cells: rs.length,
      kvMiB: mean(rs.map((r) => r.metrics.kvBytes)) / 2 ** 20,
      peakKvMiB: mean(rs.map((r) => r.metrics.peakKvBytes)) / 2 ** 20,
      ttftS: mean(rs.map((r) => r.metrics.ttftMs)) / 1000,
      sharedPrefill: rs.some((r) => r.metrics.sharedPrefill),
      decodeTokensPerS: mean(rs.map((r) => r.metrics.decodeTokensPerS)),
      ...(rs.some((r) => r.metrics.readShare !== undefined) ? { readShare: mean(rs.map((r) => r.metrics.readShare ?? 1)) } : {}),
    }))
    .sort((a, b) => a.contextLength - b.contextLength || methodOrder(a, b));
  return {
    accuracy,
    cost,
    models: distinct(results.map((r) => r.model)),
    tasks: distinct(scored.map((r) => r.task)),
    contextLengths: distinct(results.map((r) => r.contextLength)),
    depths: distinct(scored.map((r) => r.depth).filter((d): d is number => typeof d === 'number')),
  };
}

const pct = (x: number, digits = 1) => `${(x * 100).toFixed(digits)}%`;
export const intervalText = (r: AccuracyRow, digits = 1): string => `${(r.lo * 100).toFixed(digits)}–${pct(r.hi, digits)}`;
export const ttftText = (r: CostRow): string => `${r.ttftS.toFixed(1)}${r.sharedPrefill ? '*' : ''}`;

export const ACCURACY_HEAD = ['method', 'KV kept', 'n', 'accuracy', '95% interval'];
export const COST_HEAD = ['context', 'method', 'KV kept', 'cells', 'KV MiB', 'peak KV MiB', 'TTFT s', 'decode tok/s'];
/** The cost table's head: with a column of the KV read per decoding step when a selector ran. */
export function costHead(s: Pick<Summary, 'cost'>): string[] {
  return s.cost.some((r) => r.readShare !== undefined) ? [...COST_HEAD, 'KV read per step'] : COST_HEAD;
}

export function accuracyCells(r: AccuracyRow): string[] {
  return [methodText(r), r.budget, String(r.n), pct(r.accuracy), intervalText(r)];
}

/** One cost row as the table's cells (the console keeps a decimal of decode speed, Markdown none). */
export function costCells(r: CostRow, decodeDigits = 1, withRead = false): string[] {
  const cells = [String(r.contextLength), methodText(r), r.budget, String(r.cells), r.kvMiB.toFixed(1), r.peakKvMiB.toFixed(1), ttftText(r),
    r.decodeTokensPerS.toFixed(decodeDigits)];
  return withRead ? [...cells, r.readShare !== undefined ? pct(r.readShare) : '100%'] : cells;
}

const list = (xs: Array<string | number>) => (xs.length <= 2 ? xs.join(' and ') : `${xs.slice(0, -1).join(', ')} and ${xs.at(-1)}`);
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** What the accuracy rows pool, for the heading of the accuracy table. */
export function pooledText(s: Summary): string {
  const depths = s.depths.length > 1 ? `, needle depths ${list(s.depths.map((d) => pct(d, 0)))}` : s.depths.length === 1 ? `, needle depth ${pct(s.depths[0]!, 0)}` : '';
  return `${list(s.tasks)} at ${list(s.contextLengths)} tokens${depths}`;
}

/**
 * The closing sentence: what the table shows and what it cannot. Everything in it comes from the results (the
 * bundled model may change; no figure is written here).
 */
export function closingText(s: Summary): string {
  if (s.accuracy.length === 0) return 'No accuracy cells: the table shows cost only.';
  const ns = distinct(s.accuracy.map((r) => r.n));
  const widest = Math.max(...s.accuracy.map((r) => (r.hi - r.lo) / 2));
  const reused = s.accuracy.some((r) => r.seeds < r.n);
  const full = s.accuracy.find((r) => r.method === 'full');
  const below = full ? s.accuracy.filter((r) => r !== full && r.hi < full.lo) : [];
  const level = full ? s.accuracy.filter((r) => r !== full && r.hi >= full.lo && r.lo <= full.hi) : [];
  // A press by the KV it kept; a selector by what it read (it keeps everything).
  const label = (r: AccuracyRow) => `${methodText(r)} (${isSelectorMethod(r.method) ? r.budget.replace(/^100% kept, /, '') : r.budget.split(',')[0]})`;
  const versus = full && s.accuracy.length > 1
    ? ` Against full KV, ${below.length ? `${list(below.map(label))} ${below.length === 1 ? 'is' : 'are'} clearly below it (the intervals do not overlap)` : 'no method is clearly below it'}`
      + `${level.length ? `; ${list(level.map(label))} cannot be told apart from it at this n` : ''}.`
    : '';
  return `This table shows the exact-match accuracy of ${s.models.length === 1 ? 'one model' : `${s.models.length} models`} (${s.models.join(', ')})`
    + ` on ${s.tasks.length === 1 ? 'one task' : `${s.tasks.length} tasks`} (${list(s.tasks)}), each row pooling`
    + ` ${ns.length === 1 ? `n = ${ns[0]}` : `n = ${ns[0]}–${ns.at(-1)}`} ${reused ? '' : 'independent '}prompts over ${plural(s.contextLengths.length, 'context length')}`
    + `${s.depths.length > 1 ? ` and ${s.depths.length} needle depths` : ''}, with 95% Wilson intervals (the widest ±${(widest * 100).toFixed(1)} points, half its width).`
    + (reused ? ` The prompts come from only ${list(distinct(s.accuracy.map((r) => r.seeds)))} seeds per row (a seed's needle recurs at other`
      + ' lengths or depths), so they are not independent samples and the intervals, which assume they are, are too narrow.' : '')
    + versus
    + ` It cannot show differences smaller than the intervals, how accuracy changes with length or depth within a row`
    + ` (the report has those counts), or anything about other models, tasks, longer contexts or budgets.`;
}

function aligned(head: string[], body: string[][], numericFrom: number): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= numericFrom ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)];
}

/** Wraps text at spaces to lines of at most `width` characters. */
export function wrap(text: string, width = 110): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line].join('\n');
}

export function formatSummary(s: Summary): string {
  const out: string[] = [];
  if (s.accuracy.length > 0) {
    out.push(`Accuracy per method, pooled over ${pooledText(s)} (n prompts per row, 95% Wilson score interval):`, '');
    out.push(...aligned(ACCURACY_HEAD, s.accuracy.map(accuracyCells), 2), '');
  }
  out.push('Cost per context length (means over the cells):', '');
  out.push(...aligned(costHead(s), s.cost.map((r) => costCells(r, 1, costHead(s).length > COST_HEAD.length)), 3));
  const notes: string[] = [];
  if (s.cost.some((r) => r.sharedPrefill)) notes.push(SHARED_PREFILL_NOTE);
  if (s.cost.some((r) => /query-a/.test(r.budget))) notes.push(QUERY_NOTE);
  if (notes.length) out.push('', ...notes.map((n) => wrap(n)));
  out.push('', wrap(closingText(s)));
  return out.join('\n');
}
