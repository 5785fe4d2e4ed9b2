/**
 * What a plot builder returns: a Vega-Lite spec to draw, or a note saying why the data cannot give this plot.
 * Also the helpers the builders share: the series colour scale and context-length labels.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { Row, SeriesInfo } from '../rows.js';
import { distinct } from '../aggregate.js';
import { fmtTokens } from '../format.js';

export interface Chart {
  /** Stable id: the figure's anchor and data-plot attribute. */
  id: string;
  title: string;
  /** One or two sentences under the plot saying how to read it. */
  caption: string;
  spec?: TopLevelSpec;
  /** Why there is no plot (set instead of spec). */
  note?: string;
}

export interface ChartInput {
  rows: Row[];
  series: SeriesInfo[];
}

/** The colour scale of the series present in some data, so each method keeps one colour across plots. */
export function seriesScale(series: SeriesInfo[], present: Iterable<string>): { domain: string[]; range: string[] } {
  const wanted = new Set(present);
  const used = series.filter((s) => wanted.has(s.name));
  return { domain: used.map((s) => s.name), range: used.map((s) => s.color) };
}

/** Context-length labels ('4k') in numeric order, for ordinal axes and facets. */
export function contextLabels(rows: Row[]): string[] {
  return distinct(rows.map((r) => r.cell.contextLength)).map(fmtTokens);
}
