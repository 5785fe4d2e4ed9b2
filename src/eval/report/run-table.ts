/** The run table: what was run (models, tasks, grid, methods and their settings), by which commit, when, and how. */
import type { CellResult } from '../types.js';
import type { SeriesInfo } from './rows.js';
import { distinct } from './aggregate.js';
import { escapeHtml, fmtPercent, fmtTokens } from './format.js';

function dateRange(cells: CellResult[]): string {
  const times = cells.map((c) => Date.parse(c.date)).filter((t) => Number.isFinite(t)).sort((a, b) => a - b);
  if (times.length === 0) return '—';
  const iso = (t: number) => new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  return times[0] === times.at(-1) ? iso(times[0]!) : `${iso(times[0]!)} → ${iso(times.at(-1)!)}`;
}

function commits(cells: CellResult[]): string {
  const counts = new Map<string, number>();
  for (const c of cells) counts.set(c.commit || 'unknown', (counts.get(c.commit || 'unknown') ?? 0) + 1);
  return [...counts].map(([commit, n]) => `<code>${escapeHtml(commit.slice(0, 12))}</code> (${n} cell${n === 1 ? '' : 's'})`).join(', ');
}

export function runTable(cells: CellResult[], series: SeriesInfo[], command: string | undefined): string {
  const list = (values: Array<string | number>) => escapeHtml(values.join(', ') || '—');
  const depths = distinct(cells.map((c) => c.depth).filter((d): d is number => typeof d === 'number'));
  const entries: Array<[string, string]> = [
    ['models', list(distinct(cells.map((c) => c.model)))],
    ['tasks', list(distinct(cells.map((c) => c.task)))],
    ['cells', String(cells.length)],
    ['context lengths', list(distinct(cells.map((c) => c.contextLength)).map(fmtTokens))],
    ['needle depths', depths.length > 0 ? list(depths.map((d) => fmtPercent(d, 0))) : '—'],
    ['seeds', list(distinct(cells.map((c) => c.seed)))],
    ['methods', series.map((s) => `<span class="swatch" style="background:${s.color}"></span>${escapeHtml(s.name)}`
      + ` <span class="muted">${escapeHtml(s.settings)}</span>`).join('<br>')],
    ['commits', commits(cells) || '—'],
    ['dates', escapeHtml(dateRange(cells))],
  ];
  if (command) entries.push(['command', `<code>${escapeHtml(command)}</code>`]);
  return `<table class="meta"><tbody>${entries.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join('\n')}</tbody></table>`;
}
