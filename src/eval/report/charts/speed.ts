/**
 * Speed: prefill and decode throughput and time to first token, per method and budget (bars), one bar per context
 * length, as means over cells.
 */
import type { TopLevelSpec } from 'vega-lite';
import { compareBudgets, type Row } from '../rows.js';
import { groupBy, meanOf } from '../aggregate.js';
import { fmtTokens } from '../format.js';
import { type Chart, type ChartInput, contextLabels } from './chart.js';

const MEASURES: Array<{ name: string; value: (r: Row) => number }> = [
  { name: 'prefill (tokens/s)', value: (r) => r.cell.metrics.prefillTokensPerS },
  { name: 'decode (tokens/s)', value: (r) => r.cell.metrics.decodeTokensPerS },
  { name: 'time to first token (ms)', value: (r) => r.cell.metrics.ttftMs },
];

function labelOf(row: Row): string {
  return row.budgetKind === null ? row.series : `${row.series} · ${row.budget}`;
}

export function speedChart(input: ChartInput): Chart {
  const id = 'speed';
  const title = 'Speed';
  const caption = 'Mean over cells; one bar per context length. Prefill includes compression.';
  const positive = (v: number) => Number.isFinite(v) && v > 0;
  const rows = input.rows.filter((r) => MEASURES.some((m) => positive(m.value(r))));
  if (rows.length === 0) return { id, title, caption, note: 'No cell recorded its speed.' };
  const order = new Map(input.series.map((s, i) => [s.name, i]));
  const labels: string[] = [];
  for (const r of [...rows].sort((a, b) => (order.get(a.series) ?? 0) - (order.get(b.series) ?? 0) || compareBudgets(a, b))) {
    if (!labels.includes(labelOf(r))) labels.push(labelOf(r));
  }
  const contexts = contextLabels(rows);
  const data: Array<{ label: string; context: string; measure: string; value: number }> = [];
  for (const group of groupBy(rows, (r) => JSON.stringify([labelOf(r), r.cell.contextLength])).values()) {
    const first = group[0]!;
    for (const m of MEASURES) {
      const value = meanOf(group.filter((r) => positive(m.value(r))), m.value);
      if (value !== null) {
        data.push({ label: labelOf(first), context: fmtTokens(first.cell.contextLength), measure: m.name, value });
      }
    }
  }
  const measures = MEASURES.map((m) => m.name).filter((n) => data.some((d) => d.measure === n));
  const band = Math.max(14, contexts.length * 7);
  const spec = {
    description: 'throughput and time to first token per method',
    data: { values: data },
    facet: { field: 'measure', type: 'nominal', sort: measures, header: { labelFontSize: 12, labelFontWeight: 'bold', title: null } },
    columns: 3,
    resolve: { scale: { x: 'independent' } },
    spec: {
      width: 180,
      height: labels.length * band,
      mark: { type: 'bar', height: { band: 0.85 } },
      encoding: {
        y: { field: 'label', type: 'nominal', sort: labels, title: null, axis: { labelLimit: 0 } },
        yOffset: { field: 'context', type: 'ordinal', sort: contexts },
        x: { field: 'value', type: 'quantitative', title: null },
        color: { field: 'context', type: 'ordinal', sort: contexts, title: 'context length', scale: { scheme: { name: 'blues', extent: [0.35, 0.9] } }, legend: { orient: 'bottom', direction: 'horizontal' } },
      },
    },
  } as TopLevelSpec;
  return { id, title, caption, spec };
}
