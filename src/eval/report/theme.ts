/** The Vega-Lite config every plot is drawn with: system fonts, quiet grid, readable titles. */
import type { Config } from 'vega-lite';

export const FONT = 'system-ui, -apple-system, Segoe UI, Roboto, Helvetica Neue, Arial, sans-serif';

export const THEME: Config = {
  font: FONT,
  background: 'white',
  padding: 8,
  view: { stroke: '#d9d9d9' },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 600, gridColor: '#ececec', domainColor: '#888', tickColor: '#888', labelColor: '#333', titleColor: '#222' },
  legend: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 600, labelLimit: 0, symbolStrokeWidth: 2 },
  header: { labelColor: '#222' },
  line: { strokeCap: 'round', strokeJoin: 'round' },
};
