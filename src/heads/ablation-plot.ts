/**
 * The plot of the retrieval-head ablation check (ablation-check.ts): needle accuracy against k, one line for the
 * top-k retrieval heads ablated and one for k random heads, each with its 95% Wilson band. Drawn like the bench
 * report (eval/report/svg.ts: Vega-Lite to a static SVG, no script), written as a standalone .svg file.
 */
import { basename } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { AttendError } from '../errors.js';
import { renderSvg } from '../eval/report/svg.js';
import { writeFileAtomic } from '../io/files.js';
import type { AblationCheck } from './ablation-check.js';

export const TOP_LABEL = 'top-k retrieval heads';
export const RANDOM_LABEL = 'k random heads';

/** The Vega-Lite spec: one row per point and line, bands under lines and dots. */
export function ablationSpec(check: AblationCheck): TopLevelSpec {
  const values = [
    ...check.top.map((p) => ({ ...p, heads: TOP_LABEL })),
    ...check.random.map((p) => ({ ...p, heads: RANDOM_LABEL })),
  ];
  const color = { field: 'heads', type: 'nominal' as const, title: 'ablated', scale: { domain: [TOP_LABEL, RANDOM_LABEL], range: ['#d62728', '#1f77b4'] } };
  const x = { field: 'k', type: 'quantitative' as const, title: 'heads ablated (k)', scale: { domain: [0, Math.max(1, ...check.top.map((p) => p.k))] } };
  const y = { field: 'accuracy', type: 'quantitative' as const, title: 'needle accuracy', axis: { format: '.0%' }, scale: { domain: [0, 1] } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: `Retrieval-head ablation: ${check.task} at ${check.length} tokens`,
      subtitle: [
        `${basename(check.model)}, heads' outputs ${check.mode === 'zero' ? 'zeroed' : 'given uniform attention'} on decoding steps`,
        `n = ${check.samples} prompts per point (random: ${check.draws} draws × ${check.samples}); bands: 95% Wilson`,
      ],
    },
    width: 420,
    height: 260,
    data: { values },
    layer: [
      { mark: { type: 'area' as const, opacity: 0.18 }, encoding: { x, y: { field: 'lo', type: 'quantitative' as const, scale: { domain: [0, 1] }, title: 'needle accuracy', axis: { format: '.0%' } }, y2: { field: 'hi' }, color } },
      { mark: { type: 'line' as const, strokeWidth: 2 }, encoding: { x, y, color } },
      { mark: { type: 'point' as const, filled: true, size: 40 }, encoding: { x, y, color, tooltip: [{ field: 'heads' }, { field: 'k' }, { field: 'accuracy', format: '.1%' }, { field: 'n' }, { field: 'lo', format: '.1%' }, { field: 'hi', format: '.1%' }] } },
    ],
  };
}

/**
 * Writes the plot as a standalone SVG. Returns null when written, or the one-line reason it was not (the optional
 * vega / vega-lite packages are missing); other errors propagate.
 */
export async function writeAblationSvg(file: string, check: AblationCheck): Promise<string | null> {
  let svg: string;
  try {
    svg = await renderSvg(ablationSpec(check), 'ablation');
  } catch (e) {
    if (e instanceof AttendError && /not installed/.test(e.message)) return `the plot needs the optional packages vega and vega-lite (npm install vega vega-lite); ${file} not written`;
    throw e;
  }
  writeFileAtomic(file, svg.startsWith('<?xml') ? svg : `<?xml version="1.0" encoding="UTF-8"?>\n${svg}\n`);
  return null;
}
