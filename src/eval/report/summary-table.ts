/**
 * The summary table: one row per method, budget and context length with the mean accuracy (a bar behind it),
 * perplexity where measured, memory and speed.
 */
import { compareBudgets, type Row, type SeriesInfo } from './rows.js';
import { groupBy, meanOf } from './aggregate.js';
import { SHARED_PREFILL_NOTE } from '../summary.js';
import { escapeHtml, fmt, fmtPercent, fmtTokens, toMiB } from './format.js';

function accuracyCell(value: number | null): string {
  if (value === null) return '<td class="num">—</td>';
  const pct = Math.max(0, Math.min(100, value * 100)).toFixed(1);
  return `<td class="num acc" style="--v:${pct}%">${fmtPercent(value)}</td>`;
}

export function summaryTable(rows: Row[], series: SeriesInfo[]): string {
  if (rows.length === 0) return '<p class="note">No cells.</p>';
  const order = new Map(series.map((s, i) => [s.name, i]));
  const colors = new Map(series.map((s) => [s.name, s.color]));
  const sorted = [...rows].sort((a, b) => (order.get(a.series) ?? 0) - (order.get(b.series) ?? 0) || compareBudgets(a, b)
    || a.cell.contextLength - b.cell.contextLength);
  const hasPerplexity = rows.some((r) => r.perplexity);
  const head = ['method', 'budget', 'context', 'cells', 'accuracy', ...(hasPerplexity ? ['perplexity'] : []),
    'KV MiB', 'peak KV MiB', 'peak RSS MiB', 'TTFT ms', 'prefill tok/s', 'decode tok/s'];
  const body: string[] = [];
  for (const group of groupBy(sorted, (r) => JSON.stringify([r.series, r.budget, r.cell.contextLength])).values()) {
    const first = group[0]!;
    const accuracyRows = group.filter((r) => !r.perplexity);
    const m = (f: (r: Row) => number | undefined) => meanOf(group, f);
    body.push(`<tr><td><span class="swatch" style="background:${colors.get(first.series)}"></span>${escapeHtml(first.series)}</td>`
      + `<td>${first.budgetKind === null ? '—' : escapeHtml(first.budget)}</td><td class="num">${fmtTokens(first.cell.contextLength)}</td><td class="num">${group.length}</td>`
      + accuracyCell(accuracyRows.length > 0 ? meanOf(accuracyRows, (r) => r.cell.metrics.accuracy) : null)
      + (hasPerplexity ? `<td class="num">${fmt(meanOf(group.filter((r) => r.perplexity), (r) => r.cell.metrics.perplexity), 2)}</td>` : '')
      + `<td class="num">${fmt(m((r) => toMiB(r.cell.metrics.kvBytes)), 2)}</td>`
      + `<td class="num">${fmt(m((r) => toMiB(r.cell.metrics.peakKvBytes)), 2)}</td>`
      + `<td class="num">${fmt(m((r) => toMiB(r.cell.metrics.peakRssBytes)), 0)}</td>`
      + `<td class="num">${fmt(m((r) => r.cell.metrics.ttftMs), 0)}${group.some((r) => r.cell.metrics.sharedPrefill) ? '*' : ''}</td>`
      + `<td class="num">${fmt(m((r) => r.cell.metrics.prefillTokensPerS), 1)}</td>`
      + `<td class="num">${fmt(m((r) => r.cell.metrics.decodeTokensPerS), 1)}</td></tr>`);
  }
  const legend = rows.some((r) => r.cell.metrics.sharedPrefill) ? `<p class="note">${escapeHtml(SHARED_PREFILL_NOTE)}</p>` : '';
  return `<div class="table-wrap"><table class="summary"><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead>`
    + `<tbody>${body.join('\n')}</tbody></table></div>${legend}`;
}
