/**
 * The predictions table: one row per cell with an answer — which prompt (task, context length, needle depth,
 * seed), method, budget, what was expected, what the model said (quoted, escapes visible, so a runaway number or
 * a line break shows) and whether it was scored correct (src/eval/scoring.ts: the answer as a whole token).
 * Folded in a <details> element (no script needed), as it has a row per cell.
 */
import { compareBudgets, type Row, type SeriesInfo } from './rows.js';
import { escapeHtml, fmtPercent, fmtTokens } from './format.js';

/** The prompt's id: task, length, depth and seed name one instance of the sweep. */
export function promptId(row: Row): string {
  const c = row.cell;
  const depth = typeof c.depth === 'number' ? ` · depth ${fmtPercent(c.depth, 0)}` : '';
  return `${c.task} · ${fmtTokens(c.contextLength)}${depth} · seed ${c.seed}`;
}

export function predictionsTable(rows: Row[], series: SeriesInfo[]): string {
  const answered = rows.filter((r) => !r.perplexity && typeof r.cell.metrics.prediction === 'string');
  if (answered.length === 0) return '<p class="note">No cell recorded a prediction.</p>';
  const order = new Map(series.map((s, i) => [s.name, i]));
  const colors = new Map(series.map((s) => [s.name, s.color]));
  const sorted = [...answered].sort((a, b) => a.cell.task.localeCompare(b.cell.task) || a.cell.contextLength - b.cell.contextLength
    || (a.cell.depth ?? -1) - (b.cell.depth ?? -1) || a.cell.seed - b.cell.seed
    || (order.get(a.series) ?? 0) - (order.get(b.series) ?? 0) || compareBudgets(a, b));
  const correct = answered.filter((r) => r.cell.metrics.accuracy === 1).length;
  const body = sorted.map((r) => {
    const m = r.cell.metrics;
    const expected = m.expected ? escapeHtml(m.expected.join(', ')) : '<span class="muted">not recorded</span>';
    const score = m.accuracy === 1 ? '<span class="ok">✓ 1</span>' : m.accuracy === 0 ? '<span class="bad">✗ 0</span>' : escapeHtml(String(Number(m.accuracy.toFixed(2))));
    return `<tr><td>${escapeHtml(promptId(r))}</td><td><span class="swatch" style="background:${colors.get(r.series)}"></span>${escapeHtml(r.series)}</td>`
      + `<td>${escapeHtml(r.budget)}</td><td class="mono">${expected}</td><td class="mono pred">${escapeHtml(JSON.stringify(m.prediction))}</td>`
      + `<td class="num">${score}</td></tr>`;
  });
  return `<details><summary>${answered.length} predictions, ${correct} scored correct (click to show)</summary>`
    + '<p class="note">Scored strictly: the expected answer must appear as a whole token (no letter or digit right before or after it), '
    + 'so a runaway number that merely contains the needle scores 0. Predictions are quoted as JSON strings: \\n is a line break.</p>'
    + '<div class="table-wrap"><table class="predictions"><thead><tr>'
    + ['prompt', 'method', 'KV kept', 'expected', 'predicted', 'correct'].map((h) => `<th>${h}</th>`).join('')
    + `</tr></thead><tbody>${body.join('\n')}</tbody></table></div></details>`;
}
