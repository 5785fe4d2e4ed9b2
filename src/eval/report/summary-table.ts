/**
 * The summary tables: accuracy per method and budget pooled over every context length, depth and task (as the
 * console pools it), with n and the 95% Wilson interval (a bar behind the value, the interval drawn on it); then
 * cost per method, budget and context length: perplexity where measured, memory and speed. And the notes the
 * rows need (shared prefill, query-aware / query-agnostic).
 */
import { compareBudgets, type Row, type SeriesInfo } from './rows.js';
import { groupBy, meanOf } from './aggregate.js';
import { QUERY_NOTE, SHARED_PREFILL_NOTE } from '../summary.js';
import { wilson } from '../scoring.js';
import { escapeHtml, fmt, fmtPercent, fmtTokens, toMiB } from './format.js';

function accuracyCell(value: number, lo: number, hi: number): string {
  const v = (x: number) => `${Math.max(0, Math.min(100, x * 100)).toFixed(1)}%`;
  return `<td class="num acc" style="--v:${v(value)};--lo:${v(lo)};--hi:${v(hi)}">${fmtPercent(value)}</td>`;
}

function swatch(row: Row, colors: Map<string, string>): string {
  return `<span class="swatch" style="background:${colors.get(row.series)}"></span>${escapeHtml(row.series)}`;
}

/** 'query-aware' / 'query-agnostic' named in the rows: the note that explains them. */
export function queryNote(rows: Row[]): string {
  return rows.some((r) => r.budgetKind !== null) ? `<p class="note">${escapeHtml(QUERY_NOTE)}</p>` : '';
}

const queryMode = (r: Row) => (r.budgetKind === null ? '—' : r.cell.queryAware ? 'query-aware' : 'query-agnostic');

export function summaryTable(rows: Row[], series: SeriesInfo[]): string {
  if (rows.length === 0) return '<p class="note">No cells.</p>';
  const order = new Map(series.map((s, i) => [s.name, i]));
  const colors = new Map(series.map((s) => [s.name, s.color]));
  const sorted = [...rows].sort((a, b) => (order.get(a.series) ?? 0) - (order.get(b.series) ?? 0) || compareBudgets(a, b)
    || a.cell.contextLength - b.cell.contextLength);
  const scored = sorted.filter((r) => !r.perplexity && Number.isFinite(r.cell.metrics.accuracy));
  const parts: string[] = [];
  if (scored.length > 0) {
    const body: string[] = [];
    for (const group of groupBy(scored, (r) => JSON.stringify([r.series, r.budget, queryMode(r)])).values()) {
      const first = group[0]!;
      const hits = group.reduce((s, r) => s + r.cell.metrics.accuracy, 0);
      const { lo, hi } = wilson(hits, group.length);
      body.push(`<tr><td>${swatch(first, colors)}</td><td>${escapeHtml(first.budget)}</td><td>${queryMode(first)}</td>`
        + `<td class="num">${group.length}</td>${accuracyCell(hits / group.length, lo, hi)}`
        + `<td class="num">${fmtPercent(lo)} – ${fmtPercent(hi)}</td></tr>`);
    }
    parts.push('<h3>Accuracy per method, pooled over context lengths, depths and tasks</h3>'
      + '<div class="table-wrap"><table class="summary" data-table="accuracy"><thead><tr>'
      + ['method', 'KV kept', 'question', 'n', 'accuracy', '95% Wilson interval'].map((h) => `<th>${h}</th>`).join('')
      + `</tr></thead><tbody>${body.join('\n')}</tbody></table></div>`);
  }
  const hasPerplexity = rows.some((r) => r.perplexity);
  const head = ['method', 'KV kept', 'question', 'context', 'cells', ...(hasPerplexity ? ['perplexity'] : []),
    'KV MiB', 'peak KV MiB', 'peak RSS MiB', 'TTFT ms', 'prefill tok/s', 'decode tok/s'];
  const body: string[] = [];
  for (const group of groupBy(sorted, (r) => JSON.stringify([r.series, r.budget, queryMode(r), r.cell.contextLength])).values()) {
    const first = group[0]!;
    const m = (f: (r: Row) => number | undefined) => meanOf(group, f);
    body.push(`<tr><td>${swatch(first, colors)}</td><td>${escapeHtml(first.budget)}</td><td>${queryMode(first)}</td>`
      + `<td class="num">${fmtTokens(first.cell.contextLength)}</td><td class="num">${group.length}</td>`
      + (hasPerplexity ? `<td class="num">${fmt(meanOf(group.filter((r) => r.perplexity), (r) => r.cell.metrics.perplexity), 2)}</td>` : '')
      + `<td class="num">${fmt(m((r) => toMiB(r.cell.metrics.kvBytes)), 2)}</td>`
      + `<td class="num">${fmt(m((r) => toMiB(r.cell.metrics.peakKvBytes)), 2)}</td>`
      + `<td class="num">${fmt(m((r) => toMiB(r.cell.metrics.peakRssBytes)), 0)}</td>`
      + `<td class="num">${fmt(m((r) => r.cell.metrics.ttftMs), 0)}${group.some((r) => r.cell.metrics.sharedPrefill) ? '*' : ''}</td>`
      + `<td class="num">${fmt(m((r) => r.cell.metrics.prefillTokensPerS), 1)}</td>`
      + `<td class="num">${fmt(m((r) => r.cell.metrics.decodeTokensPerS), 1)}</td></tr>`);
  }
  parts.push('<h3>Cost per context length (means over the cells)</h3>'
    + `<div class="table-wrap"><table class="summary" data-table="cost"><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead>`
    + `<tbody>${body.join('\n')}</tbody></table></div>`);
  if (rows.some((r) => r.cell.metrics.sharedPrefill)) parts.push(`<p class="note">${escapeHtml(SHARED_PREFILL_NOTE)}</p>`);
  parts.push(queryNote(rows));
  return parts.join('\n');
}
