/** The console table of a sweep: one row per method, budget and context length, averaged over its cells. */
import { groupBy } from './report/aggregate.js';
import type { CellResult } from './types.js';

export interface SummaryRow {
  method: string;
  budget: string;
  contextLength: number;
  cells: number;
  accuracy: number;
  kvMiB: number;
  peakKvMiB: number;
  ttftS: number;
  /** Some of its cells shared their prefill with other methods (their TTFT counts that prefill whole). */
  sharedPrefill: boolean;
  decodeTokensPerS: number;
}

/** The legend of the TTFT marker of rows whose prefill was shared. */
export const SHARED_PREFILL_NOTE = '* TTFT of a prefill shared by the methods of each instance, plus the method\'s own compression (sharedPrefill)';
export const ttftText = (r: SummaryRow): string => `${r.ttftS.toFixed(1)}${r.sharedPrefill ? '*' : ''}`;

export function budgetLabel(r: Pick<CellResult, 'budget' | 'during' | 'queryAware'>): string {
  if (!r.budget) return 'full';
  const size = 'ratio' in r.budget ? `ratio ${r.budget.ratio}` : `${r.budget.tokens} tokens`;
  return `${size}${r.during === 'chunks' ? ', per chunk' : ''}${r.queryAware ? ', query-aware' : ''}`;
}

export function summarise(results: CellResult[]): SummaryRow[] {
  const groups = groupBy(results, (r) => JSON.stringify([r.method, budgetLabel(r), r.contextLength]));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return [...groups.values()]
    .map((rs) => ({
      method: rs[0].method,
      budget: budgetLabel(rs[0]),
      contextLength: rs[0].contextLength,
      cells: rs.length,
      accuracy: mean(rs.map((r) => r.metrics.accuracy)),
      kvMiB: mean(rs.map((r) => r.metrics.kvBytes)) / 2 ** 20,
      peakKvMiB: mean(rs.map((r) => r.metrics.peakKvBytes)) / 2 ** 20,
      ttftS: mean(rs.map((r) => r.metrics.ttftMs)) / 1000,
      sharedPrefill: rs.some((r) => r.metrics.sharedPrefill),
      decodeTokensPerS: mean(rs.map((r) => r.metrics.decodeTokensPerS)),
    }))
    .sort((a, b) => a.contextLength - b.contextLength || (a.method === 'full' ? -1 : b.method === 'full' ? 1 : a.method.localeCompare(b.method)) || a.budget.localeCompare(b.budget));
}

export const SUMMARY_HEAD = ['context', 'method', 'budget', 'cells', 'accuracy', 'KV MiB', 'peak KV MiB', 'TTFT s', 'decode tok/s'];

/** One summary row as the table's cells (the console keeps a decimal of decode speed, Markdown none). */
export function summaryCells(r: SummaryRow, decodeDigits = 1): string[] {
  return [
    String(r.contextLength),
    r.method,
    r.budget,
    String(r.cells),
    `${(r.accuracy * 100).toFixed(1)}%`,
    r.kvMiB.toFixed(1),
    r.peakKvMiB.toFixed(1),
    ttftText(r),
    r.decodeTokensPerS.toFixed(decodeDigits),
  ];
}

export function formatSummary(rows: SummaryRow[]): string {
  const head = SUMMARY_HEAD;
  const body = rows.map((r) => summaryCells(r));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 3 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  const legend = rows.some((r) => r.sharedPrefill) ? [SHARED_PREFILL_NOTE] : [];
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line), ...legend].join('\n');
}
