/**
 * Needle depth × context length heatmaps of accuracy: one panel per method and budget, each square coloured by its
 * mean and labelled with its count (correct of n: a handful of prompts, too few for a percentage to mean much).
 * Only cells with a needle depth count, and only a run with more than one depth gets the plot.
 */
import type { TopLevelSpec } from 'vega-lite';
import { FULL_SERIES, compareBudgets, type Row } from '../rows.js';
import { groupBy, meanOf, distinct } from '../aggregate.js';
import { fmtPercent, fmtTokens } from '../format.js';
import type { Chart, ChartInput } from './chart.js';

interface Square {
  panel: string;
  context: string;
  depth: string;
  accuracy: number;
  n: number;
  /** 'k/n': the correct answers (part credit summed) of n. */
  count: string;
}

function panelOf(row: Row): string {
  return row.budgetKind === null && row.series === FULL_SERIES ? FULL_SERIES
    : row.budgetKind === null ? row.series : `${row.series} · ${row.budget}`;
}

/** Roughly the widest the plot may be and still fit the page without scrolling (px). */
const PAGE_WIDTH = 1120;

/**
 * Panels per row: as many as fit the page (at most 5), then the fewest empty places in the last row (Vega-Lite draws
 * axes under empty ones). Panel width is estimated as Vega does headless: 0.8 × font size per character of a title line.
 */
function wrapColumns(panels: string[], contexts: number): number {
  const titleWidth = Math.max(...panels.flatMap((p) => p.split(' · ')).map((line) => line.length * 0.8 * 12));
  const panelWidth = Math.max(contexts * 48, titleWidth) + 24;
  const fit = Math.max(1, Math.min(5, Math.floor((PAGE_WIDTH - 160) / panelWidth)));
  if (panels.length <= fit) return panels.length;
  const empty = (c: number) => Math.ceil(panels.length / c) * c - panels.length;
  let best = fit;
  for (let c = fit - 1; c >= Math.max(2, fit - 1); c--) if (empty(c) < empty(best)) best = c;
  return best;
}

export function heatmapChart(input: ChartInput): Chart {
  const id = 'needle-heatmap';
  const title = 'Needle depth × context length';
  const caption = 'Correct answers of the prompts at each needle depth (0% = start of the context) and context length, coloured by their '
    + 'share; one panel per method and budget. Each square holds only a few prompts: read the pattern (where in the context a method '
    + 'loses the needle), not the single squares.';
  const rows = input.rows.filter((r) => !r.perplexity && typeof r.cell.depth === 'number' && Number.isFinite(r.cell.depth)
    && Number.isFinite(r.cell.metrics.accuracy));
  if (rows.length === 0) {
    return { id, title, caption, note: 'No accuracy cell has a needle depth (no depth sweep in this run).' };
  }
  const depthsSeen = distinct(rows.map((r) => r.cell.depth as number));
  if (depthsSeen.length < 2) {
    return { id, title, caption, note: `Every prompt has its needle at depth ${fmtPercent(depthsSeen[0]!, 0)}: no depth × length map (a sweep over several depths draws one).` };
  }
  const order = new Map(input.series.map((s, i) => [s.name, i]));
  const sorted = [...rows].sort((a, b) => (order.get(a.series) ?? 0) - (order.get(b.series) ?? 0) || compareBudgets(a, b));
  const panels = distinct(sorted.map(panelOf));
  panels.sort((a, b) => sorted.findIndex((r) => panelOf(r) === a) - sorted.findIndex((r) => panelOf(r) === b));
  const contexts = distinct(rows.map((r) => r.cell.contextLength)).map(fmtTokens);
  const depths = distinct(rows.map((r) => r.cell.depth as number)).map((d) => fmtPercent(d, 0));
  const data: Square[] = [];
  for (const group of groupBy(rows, (r) => JSON.stringify([panelOf(r), r.cell.contextLength, r.cell.depth])).values()) {
    const first = group[0]!;
    const hits = group.reduce((s, r) => s + r.cell.metrics.accuracy, 0);
    data.push({
      panel: panelOf(first), context: fmtTokens(first.cell.contextLength), depth: fmtPercent(first.cell.depth as number, 0),
      accuracy: meanOf(group, (r) => r.cell.metrics.accuracy)!, n: group.length,
      count: `${Number.isInteger(hits) ? hits : hits.toFixed(1)}/${group.length}`,
    });
  }
  const x = { field: 'context', type: 'ordinal' as const, sort: contexts, title: 'context length', axis: { labelAngle: 0 } };
  const y = { field: 'depth', type: 'ordinal' as const, sort: depths, title: 'needle depth' };
  const spec = {
    description: 'needle depth by context length accuracy heatmaps',
    data: { values: data },
    facet: { field: 'panel', type: 'nominal', sort: panels, header: { labelFontSize: 12, labelFontWeight: 'bold', title: null, labelExpr: "split(datum.value, ' · ')" } },
    columns: wrapColumns(panels, contexts.length),
    spec: {
      width: { step: 48 },
      height: { step: depths.length > 8 ? 18 : 24 },
      layer: [
        {
          mark: { type: 'rect', stroke: 'white', strokeWidth: 1 },
          encoding: {
            x, y,
            color: { field: 'accuracy', type: 'quantitative', title: 'accuracy', scale: { domain: [0, 1], scheme: 'viridis' }, legend: { format: '.0%', title: 'share correct' } },
          },
        },
        {
          mark: { type: 'text', fontSize: 10 },
          encoding: {
            x, y,
            text: { field: 'count', type: 'nominal' },
            color: { condition: { test: 'datum.accuracy < 0.55', value: 'white' }, value: 'black' },
          },
        },
      ],
    },
  } as TopLevelSpec;
  return { id, title, caption, spec };
}
