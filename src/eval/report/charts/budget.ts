/**
 * Quality vs KV budget as small multiples: one panel per method (series), x the share of the KV kept, y the
 * accuracy pooled over every context length, depth and task (as the console table pools it) with its 95% Wilson
 * interval as an error bar, and full KV in every panel as a dashed line with its interval as a grey band. No two
 * methods share a panel, so none hides another. Perplexity: the same panels, means without intervals.
 * Ratio budgets and token budgets get separate plots, as their x axes differ.
 */
import type { TopLevelSpec } from 'vega-lite';
import { FULL_SERIES, type Row } from '../rows.js';
import { groupBy, distinct } from '../aggregate.js';
import { wilson } from '../../scoring.js';
import { type Chart, type ChartInput, seriesScale } from './chart.js';

type Quality = 'accuracy' | 'perplexity';

interface Point {
  layer: 'line' | 'reference';
  /** The panel: the budgeted series; reference points are copied into every panel. */
  panel: string;
  series: string;
  kept: number | null;
  value: number;
  lo: number | null;
  hi: number | null;
  n: number;
  /** The value as printed beside the point: '22.5%' (accuracy) or '12.31' (perplexity). */
  label: string;
}

function points(rows: Row[], quality: Quality, kind: 'ratio' | 'tokens'): Point[] {
  const value = (r: Row) => (quality === 'accuracy' ? r.cell.metrics.accuracy : r.cell.metrics.perplexity);
  const used = rows.filter((r) => (r.budgetKind === kind || r.budgetKind === null) && Number.isFinite(value(r)));
  const lines: Point[] = [];
  const references: Point[] = [];
  for (const group of groupBy(used, (r) => JSON.stringify([r.series, r.kept])).values()) {
    const first = group[0]!;
    const sum = group.reduce((s, r) => s + value(r)!, 0);
    const interval = quality === 'accuracy' ? wilson(sum, group.length) : null;
    const p: Point = {
      layer: first.budgetKind === null ? 'reference' : 'line', panel: first.series, series: first.series, kept: first.kept,
      value: sum / group.length, lo: interval?.lo ?? null, hi: interval?.hi ?? null, n: group.length,
      label: quality === 'accuracy' ? `${(100 * sum / group.length).toFixed(1)}%` : (sum / group.length).toFixed(2),
    };
    (p.layer === 'line' ? lines : references).push(p);
  }
  const panels = distinct(lines.map((p) => p.panel));
  return [...lines, ...panels.flatMap((panel) => references.map((r) => ({ ...r, panel })))];
}

function spec(input: ChartInput, data: Point[], quality: Quality, kind: 'ratio' | 'tokens'): TopLevelSpec {
  const order = input.series.map((s) => s.name);
  const panels = order.filter((name) => data.some((p) => p.layer === 'line' && p.panel === name));
  const color = { field: 'series', type: 'nominal' as const, title: 'method', scale: seriesScale(input.series, data.map((p) => p.series)),
    legend: { orient: 'bottom' as const, direction: 'horizontal' as const, columns: 4 } };
  const title = quality === 'accuracy' ? 'accuracy (95% interval)' : 'perplexity';
  const y = quality === 'accuracy'
    ? { field: 'value', type: 'quantitative' as const, title, scale: { domain: [0, 1] }, axis: { format: '.0%' } }
    : { field: 'value', type: 'quantitative' as const, title, scale: { zero: false } };
  const x = kind === 'ratio'
    ? { field: 'kept', type: 'quantitative' as const, title: '% of the KV kept', scale: { domain: [0, 1] }, axis: { format: '.0%', values: [0, 0.25, 0.5, 0.75, 1] } }
    : { field: 'kept', type: 'quantitative' as const, title: 'tokens of KV kept', scale: { zero: true, nice: true } };
  const low = { ...y, field: 'lo' };
  const tooltip = [{ field: 'series', title: 'method' }, { field: 'kept', format: kind === 'ratio' ? '.0%' : 'd', title: 'kept' },
    { field: 'value', format: quality === 'accuracy' ? '.1%' : '.2f', title: quality }, { field: 'n', title: 'n' }];
  const intervals = quality === 'accuracy';
  const layer = [
    ...(intervals ? [{
      transform: [{ filter: "datum.layer === 'reference'" }],
      mark: { type: 'rect' as const, color: '#4a4a4a', opacity: 0.12 },
      encoding: { y: low, y2: { field: 'hi' } },
    }] : []),
    {
      transform: [{ filter: "datum.layer === 'reference'" }],
      mark: { type: 'rule' as const, strokeDash: [6, 4], strokeWidth: 1.5 },
      encoding: { y, color },
    },
    ...(intervals ? [{
      transform: [{ filter: "datum.layer === 'line'" }],
      mark: { type: 'rule' as const, strokeWidth: 2 },
      encoding: { x, y: low, y2: { field: 'hi' }, color },
    }] : []),
    {
      transform: [{ filter: "datum.layer === 'line'" }],
      mark: { type: 'line' as const, point: { size: 50, filled: true }, strokeWidth: 2 },
      encoding: { x, y, color, tooltip },
    },
    {
      transform: [{ filter: "datum.layer === 'line'" }],
      mark: { type: 'text' as const, align: 'left' as const, dx: 7, dy: -8, fontSize: 11 },
      encoding: { x, y, text: { field: 'label', type: 'nominal' as const }, color },
    },
  ];
  return {
    description: `${quality} vs the share of the KV kept, one panel per method`,
    data: { values: data },
    facet: { field: 'panel', type: 'nominal', sort: panels, header: { labelFontSize: 12, labelFontWeight: 'bold', title: null, labelLimit: 0 } },
    columns: Math.min(panels.length, 4),
    spec: { width: 190, height: 170, layer },
  } as TopLevelSpec;
}

/** The quality-vs-budget plots for one quality: one per kind of budget present, or one chart holding a note. */
export function budgetCharts(input: ChartInput, quality: Quality): Chart[] {
  const rows = input.rows.filter((r) => r.perplexity === (quality === 'perplexity'));
  const what = quality === 'accuracy' ? 'Accuracy' : 'Perplexity';
  const kinds = (['ratio', 'tokens'] as const).filter((k) => rows.some((r) => r.budgetKind === k));
  const n = distinct(rows.filter((r) => r.budgetKind !== null).map((r) => r.cell.contextLength)).length;
  const pooled = `pooled over ${n === 1 ? 'the context length' : `${n} context lengths`}, every needle depth and task`;
  const caption = quality === 'accuracy'
    ? `One panel per method: accuracy against the share of the KV kept, ${pooled}, with its 95% Wilson score interval `
      + `(the bar); the dashed line and grey band are ${FULL_SERIES} and its interval, in every panel. Where a bar overlaps the band `
      + 'the run cannot tell the method from full KV.'
    : `One panel per method: mean perplexity against the KV kept (lower is better), ${pooled}; the dashed line is ${FULL_SERIES}.`;
  const modes = distinct(rows.filter((r) => r.budgetKind !== null).map((r) => (r.cell.queryAware ? 'query-aware' : 'query-agnostic')));
  const modeText = modes.length === 0 ? ''
    : ` The presses ran ${modes.join(' and ')}: query-aware means the question was in the cache when the press compressed it (so it could see`
      + ' what is asked), query-agnostic that the context was compressed before the question arrived.';
  if (kinds.length === 0) {
    const note = rows.length === 0
      ? `No ${quality} cells in this run.`
      : `No ${quality} cell has a KV budget (only ${distinct(rows.map((r) => r.series)).join(', ')}): nothing to plot against the budget; see the summary table.`;
    return [{ id: `${quality}-budget`, title: `${what} vs KV budget`, caption, note }];
  }
  return kinds.map((kind) => {
    const data = points(rows, quality, kind);
    const id = `${quality}-budget${kinds.length > 1 ? `-${kind}` : ''}`;
    const title = `${what} vs KV budget${kinds.length > 1 ? (kind === 'ratio' ? ' (share of the KV kept)' : ' (tokens kept)') : ''}`;
    if (!data.some((p) => p.layer === 'line')) {
      return { id, title, caption, note: `No ${quality} value could be measured for the budgeted cells.` };
    }
    return { id, title, caption: caption + modeText, spec: spec(input, data, quality, kind) };
  });
}
