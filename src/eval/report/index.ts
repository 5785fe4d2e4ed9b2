/**
 * The HTML report of `attend bench`: renderReport turns the sweep's cells into one self-contained HTML document
 * (plots drawn by Vega-Lite to static SVG at report time, tables, run metadata); writeReport writes it atomically.
 * Plots the data cannot give (no budget, no depth, no cells) become a short note, never an error.
 */
import type { CellResult } from '../types.js';
import { writeFileAtomic } from '../../io/files.js';
import { toRows } from './rows.js';
import { distinct } from './aggregate.js';
import type { Chart, ChartInput } from './charts/chart.js';
import { budgetCharts } from './charts/budget.js';
import { heatmapChart } from './charts/heatmap.js';
import { memoryChart } from './charts/memory.js';
import { speedChart } from './charts/speed.js';
import { renderSvg } from './svg.js';
import { renderPage, type PlotSection } from './page.js';
import { summaryTable } from './summary-table.js';
import { runTable } from './run-table.js';
import { predictionsTable } from './predictions.js';

export interface ReportOptions {
  title: string;
  /** The command line that ran the sweep, shown in the run table. */
  command?: string;
}

async function draw(chart: Chart): Promise<Chart & { svg?: string }> {
  if (!chart.spec) return chart;
  try {
    return { ...chart, svg: await renderSvg(chart.spec, `p-${chart.id}`) };
  } catch (e) {
    return { ...chart, spec: undefined, note: `This plot could not be drawn: ${(e as Error).message}` };
  }
}

function subtitle(cells: CellResult[]): string {
  if (cells.length === 0) return 'No cells yet.';
  const models = distinct(cells.map((c) => c.model));
  const tasks = distinct(cells.map((c) => c.task));
  return `${cells.length} cell${cells.length === 1 ? '' : 's'} · ${models.join(', ')} · ${tasks.join(', ')}`;
}

/** Renders the whole report. Async because Vega renders asynchronously; it does not touch the network or disk. */
export async function renderReport(cells: CellResult[], opts: ReportOptions): Promise<string> {
  const usable = cells.filter((c) => c && typeof c === 'object' && c.metrics && typeof c.method === 'string');
  const { rows, series } = toRows(usable);
  const input: ChartInput = { rows, series };
  const groups: Array<{ id: string; title: string; charts: Chart[] }> = [
    { id: 'accuracy', title: 'Accuracy vs KV budget', charts: budgetCharts(input, 'accuracy') },
    ...(rows.some((r) => r.perplexity)
      ? [{ id: 'perplexity', title: 'Perplexity vs KV budget', charts: budgetCharts(input, 'perplexity') }] : []),
    // The depth map only where the needles sit at more than one depth.
    ...(distinct(rows.filter((r) => !r.perplexity && typeof r.cell.depth === 'number').map((r) => r.cell.depth as number)).length > 1
      ? [{ id: 'needle', title: 'Needle depth × context length', charts: [heatmapChart(input)] }] : []),
    { id: 'memory', title: 'Memory vs context length', charts: [memoryChart(input)] },
    { id: 'speed', title: 'Speed', charts: [speedChart(input)] },
  ];
  const sections: PlotSection[] = [];
  for (const g of groups) sections.push({ ...g, charts: await Promise.all(g.charts.map(draw)) });
  return renderPage({
    title: opts.title,
    subtitle: subtitle(usable),
    sections,
    summary: summaryTable(rows, series),
    predictions: predictionsTable(rows, series),
    run: runTable(usable, series, opts.command),
    generated: new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC'),
  });
}

/** Renders the report and writes it to path atomically (a reader never sees half a file). */
export async function writeReport(path: string, cells: CellResult[], opts: ReportOptions): Promise<void> {
  writeFileAtomic(path, await renderReport(cells, opts));
}
