/**
 * Memory vs context length: the KV cache held after prefill (and compression), its peak, and the process's peak RSS,
 * per budget (colour) and method (point shape), as means over cells. Colour goes by budget because the budget, not
 * the method, sets the bytes: methods at one budget share a line unless one of them holds more (chunking, layer
 * budgets).
 */
import type { TopLevelSpec } from 'vega-lite';
import { compareBudgets, FULL_BUDGET, type Row } from '../rows.js';
import { groupBy, meanOf, distinct } from '../aggregate.js';
import { fmtTokens, toMiB } from '../format.js';
import { type Chart, type ChartInput, contextLabels } from './chart.js';

const MEASURES: Array<{ name: string; value: (r: Row) => number }> = [
  { name: 'KV cache after prefill (MiB)', value: (r) => toMiB(r.cell.metrics.kvBytes) },
  { name: 'peak KV cache (MiB)', value: (r) => toMiB(r.cell.metrics.peakKvBytes) },
  { name: 'peak RSS of the process (MiB)', value: (r) => toMiB(r.cell.metrics.peakRssBytes) },
];

/** Vega's plasma scheme at t = 0, 0.1, … 0.8 (past 0.8 it is too light on white). */
const PLASMA: Array<[number, number, number]> = [
  [13, 8, 135], [66, 3, 157], [106, 0, 168], [144, 13, 164], [177, 42, 144],
  [203, 71, 121], [225, 100, 98], [242, 131, 76], [252, 166, 54],
];

/** The plasma colour at t in [0, 0.8], interpolated between its stops. */
function plasma(t: number): string {
  const x = Math.max(0, Math.min(1, t / 0.8)) * (PLASMA.length - 1);
  const i = Math.min(Math.floor(x), PLASMA.length - 2);
  const f = x - i;
  const [a, b] = [PLASMA[i]!, PLASMA[i + 1]!];
  return `rgb(${a.map((v, k) => Math.round(v + (b[k]! - v) * f)).join(', ')})`;
}

/** Full KV in grey, the budgets along the plasma scheme from most kept (dark) to least. */
function budgetScale(budgets: string[]): { domain: string[]; range: string[] } {
  const budgeted = budgets.filter((b) => b !== FULL_BUDGET);
  const colors = budgeted.map((_, i) => plasma(budgeted.length === 1 ? 0.3 : 0.05 + (0.7 * i) / (budgeted.length - 1)));
  return { domain: budgets, range: budgets.map((b) => (b === FULL_BUDGET ? '#4a4a4a' : colors[budgeted.indexOf(b)]!)) };
}

export function memoryChart(input: ChartInput): Chart {
  const id = 'memory';
  const title = 'Memory vs context length';
  const caption = 'Mean over cells. Colour is the budget, the point shape the method; RSS includes the model weights.';
  const data: Array<{ series: string; budget: string; context: string; measure: string; mib: number }> = [];
  for (const group of groupBy(input.rows, (r) => JSON.stringify([r.series, r.budget, r.cell.contextLength])).values()) {
    const first = group[0]!;
    for (const m of MEASURES) {
      const mib = meanOf(group, (r) => m.value(r));
      if (mib !== null) {
        data.push({ series: first.series, budget: first.budget, context: fmtTokens(first.cell.contextLength), measure: m.name, mib });
      }
    }
  }
  if (data.length === 0) return { id, title, caption, note: 'No cell recorded its memory use.' };
  const budgets = distinct(input.rows.map((r) => r.budget));
  budgets.sort((a, b) => compareBudgets(input.rows.find((r) => r.budget === a)!, input.rows.find((r) => r.budget === b)!));
  const measures = MEASURES.map((m) => m.name).filter((n) => data.some((d) => d.measure === n));
  const spec = {
    description: 'memory use by context length per method',
    data: { values: data },
    facet: { field: 'measure', type: 'nominal', sort: measures, header: { labelFontSize: 12, labelFontWeight: 'bold', title: null } },
    columns: 3,
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 220,
      height: 190,
      mark: { type: 'line', point: { size: 36, filled: true }, strokeWidth: 2 },
      encoding: {
        x: { field: 'context', type: 'ordinal', sort: contextLabels(input.rows), title: 'context length (tokens)', axis: { labelAngle: 0 } },
        y: { field: 'mib', type: 'quantitative', title: 'MiB' },
        color: { field: 'budget', type: 'nominal', title: 'KV kept', sort: budgets, scale: budgetScale(budgets), legend: { orient: 'bottom', direction: 'horizontal', columns: 4 } },
        shape: { field: 'series', type: 'nominal', title: 'method', sort: input.series.map((s) => s.name), legend: { orient: 'bottom', direction: 'horizontal', columns: 4 } },
      },
    },
  } as TopLevelSpec;
  return { id, title, caption, spec };
}
