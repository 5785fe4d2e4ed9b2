/**
 * Quality vs KV budget: one line per method, x the KV kept, y the mean accuracy (or perplexity), with the methods
 * that have no budget (full KV) as dashed reference lines; one panel per context length, a row per task.
 * Ratio budgets and token budgets get separate plots, as their x axes differ.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { Row } from '../rows.js';
import { groupBy, meanOf, distinct } from '../aggregate.js';
import { fmtTokens } from '../format.js';
import { type Chart, type ChartInput, seriesScale, contextLabels } from './chart.js';

type Quality = 'accuracy' | 'perplexity';

interface Point {
  layer: 'line' | 'rule';
  series: string;
  kept: number | null;
  context: string;
  task: string;
  value: number;
  n: number;
}

function points(rows: Row[], quality: Quality, kind: 'ratio' | 'tokens'): Point[] {
  const value = (r: Row) => (quality === 'accuracy' ? r.cell.metrics.accuracy : r.cell.metrics.perplexity);
  const used = rows.filter((r) => r.budgetKind === kind || r.budgetKind === null);
  const groups = groupBy(used, (r) => JSON.stringify([r.series, r.kept, r.cell.contextLength, r.cell.task]));
  const out: Point[] = [];
  for (const group of groups.values()) {
    const first = group[0]!;
    const v = meanOf(group, value);
    if (v === null) continue;
    out.push({
      layer: first.budgetKind === null ? 'rule' : 'line', series: first.series, kept: first.kept,
      context: `${fmtTokens(first.cell.contextLength)} tokens`, task: first.cell.task, value: v, n: group.length,
    });
  }
  // Reference lines only in panels that have a budgeted line to compare with.
  const panels = new Set(out.filter((p) => p.layer === 'line').map((p) => `${p.context}\n${p.task}`));
  return out.filter((p) => panels.has(`${p.context}\n${p.task}`));
}

function spec(input: ChartInput, data: Point[], quality: Quality, kind: 'ratio' | 'tokens', rows: Row[]): TopLevelSpec {
  const contexts = contextLabels(rows).map((c) => `${c} tokens`).filter((c) => data.some((p) => p.context === c));
  const tasks = distinct(data.map((p) => p.task));
  const color = { field: 'series', type: 'nominal' as const, title: 'method', scale: seriesScale(input.series, data.map((p) => p.series)) };
  const y = quality === 'accuracy'
    ? { field: 'value', type: 'quantitative' as const, title: 'mean accuracy', scale: { domain: [0, 1] }, axis: { format: '.0%' } }
    : { field: 'value', type: 'quantitative' as const, title: 'perplexity', scale: { zero: false } };
  const x = kind === 'ratio'
    ? { field: 'kept', type: 'quantitative' as const, title: 'KV kept (share of the prompt)', scale: { domain: [0, 1] }, axis: { format: '.0%' } }
    : { field: 'kept', type: 'quantitative' as const, title: 'KV kept (tokens)', scale: { zero: false, nice: true } };
  const layered = {
    width: contexts.length > 2 ? 220 : 280,
    height: 190,
    layer: [
      {
        transform: [{ filter: "datum.layer === 'line'" }],
        mark: { type: 'line' as const, point: { size: 40, filled: true }, strokeWidth: 2 },
        encoding: { x, y, color },
      },
      {
        transform: [{ filter: "datum.layer === 'rule'" }],
        mark: { type: 'rule' as const, strokeDash: [6, 4], strokeWidth: 1.5 },
        encoding: { y, color },
      },
    ],
  };
  const header = { labelFontSize: 12, labelFontWeight: 'bold' as const, title: null };
  const description = `${quality} vs KV kept per method`;
  if (tasks.length > 1) {
    return {
      description, data: { values: data },
      facet: {
        column: { field: 'context', type: 'nominal', sort: contexts, header },
        row: { field: 'task', type: 'nominal', sort: tasks, header },
      },
      spec: layered,
    } as TopLevelSpec;
  }
  return {
    description, data: { values: data },
    facet: { field: 'context', type: 'nominal', sort: contexts, header },
    columns: Math.min(contexts.length, 3),
    spec: layered,
  } as TopLevelSpec;
}

/** The quality-vs-budget plots for one quality: one per kind of budget present, or one chart holding a note. */
export function budgetCharts(input: ChartInput, quality: Quality): Chart[] {
  const rows = input.rows.filter((r) => r.perplexity === (quality === 'perplexity'));
  const what = quality === 'accuracy' ? 'Accuracy' : 'Perplexity';
  const kinds = (['ratio', 'tokens'] as const).filter((k) => rows.some((r) => r.budgetKind === k));
  const caption = quality === 'accuracy'
    ? 'Mean accuracy over seeds, depths and tasks shown per panel; dashed lines are methods without a budget (full KV).'
    : 'Mean perplexity over documents (lower is better); dashed lines are methods without a budget (full KV).';
  if (kinds.length === 0) {
    const note = rows.length === 0
      ? `No ${quality} cells in this run.`
      : `No ${quality} cell has a KV budget (only ${distinct(rows.map((r) => r.series)).join(', ')}): nothing to plot against the budget; see the summary table.`;
    return [{ id: `${quality}-budget`, title: `${what} vs KV budget`, caption, note }];
  }
  return kinds.map((kind) => {
    const data = points(rows, quality, kind);
    const id = `${quality}-budget${kinds.length > 1 ? `-${kind}` : ''}`;
    const title = `${what} vs KV budget${kinds.length > 1 ? (kind === 'ratio' ? ' (ratio budgets)' : ' (token budgets)') : ''}`;
    if (!data.some((p) => p.layer === 'line')) {
      return { id, title, caption, note: `No ${quality} value could be measured for the budgeted cells.` };
    }
    return { id, title, caption, spec: spec(input, data, quality, kind, rows) };
  });
}
