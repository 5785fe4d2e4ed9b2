/**
 * Draws a Vega-Lite spec to a static SVG string, headless in Node (Vega's SVG renderer needs no canvas), so the
 * report holds finished pictures and no script. Ids inside the SVG (clip paths, gradients) get a per-plot prefix,
 * since several SVGs share one HTML document.
 */
import type { LoggerInterface } from 'vega';
import type { TopLevelSpec } from 'vega-lite';
import { AttendError } from '../../errors.js';
import { THEME } from './theme.js';

/** Vega and Vega-Lite, loaded on the first plot (a third of a second), not whenever the bench is imported. */
let libraries: Promise<[typeof import('vega'), typeof import('vega-lite')]> | undefined;
function load() {
  // Optional dependencies (the engine runs without them): a one-line error says how to get them for the report.
  libraries ??= Promise.all([import('vega'), import('vega-lite')]).catch(() => {
    throw new AttendError('the HTML report draws its charts with the optional packages vega and vega-lite, which are not installed: npm install vega vega-lite');
  });
  return libraries;
}

/** A logger that keeps Vega's errors (to fail the plot) and drops its warnings (they would clutter the console). */
function collectingLogger(errors: string[]) {
  let level = 1; // Vega's Error level
  const logger = {
    level(l?: number): any {
      if (l === undefined) return level;
      level = l;
      return logger;
    },
    error(...args: readonly unknown[]) {
      errors.push(args.map((a) => (a instanceof Error ? a.message : String(a))).join(' '));
      return logger;
    },
    warn: () => logger,
    info: () => logger,
    debug: () => logger,
  };
  return logger;
}

/** Gives every id and every reference to one (url(#…), href="#…") in an SVG the prefix. */
export function prefixSvgIds(svg: string, prefix: string): string {
  return svg
    .replace(/\bid="([^"]+)"/g, (_, id: string) => `id="${prefix}-${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_, id: string) => `url(#${prefix}-${id})`)
    .replace(/href="#([^"]+)"/g, (_, id: string) => `href="#${prefix}-${id}"`);
}

/** Renders a spec; throws with Vega's own message when it cannot be drawn. */
export async function renderSvg(spec: TopLevelSpec, idPrefix: string): Promise<string> {
  const [vega, vegaLite] = await load();
  const errors: string[] = [];
  const logger = collectingLogger(errors);
  const vgSpec = vegaLite.compile({ ...spec, config: THEME } as TopLevelSpec, { logger }).spec;
  const view = new vega.View(vega.parse(vgSpec), { renderer: 'none', logger: logger as unknown as LoggerInterface });
  try {
    const svg = await view.toSVG();
    if (errors.length > 0) throw new Error(errors.join('; '));
    return prefixSvgIds(svg, idPrefix);
  } finally {
    view.finalize();
  }
}
