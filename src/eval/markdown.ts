/**
 * A sweep's results as Markdown tables, for docs/results.md (`attend bench … --markdown`): the summary per
 * method, budget and context length; accuracy per task; and, for tasks with a needle depth, accuracy by depth ×
 * context length per method and budget.
 */
import { distinct, groupBy } from './report/aggregate.js';
import {
  ACCURACY_HEAD, accuracyCells, budgetLabel, methodText, variants, closingText, COST_HEAD, costCells, costHead, pooledText, QUERY_NOTE, SHARED_PREFILL_NOTE, type Summary,
} from './summary.js';
import type { CellResult } from './types.js';

const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

function table(head: string[], rows: string[][], numericFrom = 1): string {
  const align = head.map((_, i) => (i >= numericFrom ? '---:' : '---'));
  return [head, align, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

/** A method and budget as a row label; its options too where the results hold it with more than one set of them. */
function methodLabeller(results: CellResult[]): (r: CellResult) => string {
  const variant = variants(results);
  return (r) => (r.method === 'full' && !r.act ? 'full' : `${methodText({ method: r.method, variant: variant(r) })}, ${budgetLabel(r)}`);
}

/** The pooled accuracy table (with Wilson intervals), the cost table per context length, their notes. */
export function summaryMarkdown(s: Summary): string {
  const parts: string[] = [];
  if (s.accuracy.length > 0) {
    parts.push(`Accuracy per method, pooled over ${pooledText(s)} (n prompts per row, 95% Wilson score interval):`);
    parts.push(table(ACCURACY_HEAD, s.accuracy.map(accuracyCells), 2));
  }
  parts.push('Cost per context length (means over the cells):', table(costHead(s), s.cost.map((r) => costCells(r, 0, costHead(s).length > COST_HEAD.length)), 3));
  if (s.cost.some((r) => r.sharedPrefill)) parts.push(SHARED_PREFILL_NOTE);
  if (s.cost.some((r) => /query-a/.test(r.budget))) parts.push(QUERY_NOTE);
  parts.push(closingText(s));
  return parts.join('\n\n');
}

/** Accuracy per task (columns) for each method and budget (rows), one table per context length. */
export function taskAccuracyMarkdown(results: CellResult[]): string {
  const tasks = [...new Set(results.map((r) => r.task))];
  const methodLabel = methodLabeller(results);
  const out: string[] = [];
  for (const [length, rs] of groupBy(results, (r) => String(r.contextLength))) {
    const rows = [...groupBy(rs, methodLabel)].map(([label, cells]) => [
      label,
      ...tasks.map((t) => {
        const acc = cells.filter((c) => c.task === t).map((c) => c.metrics.accuracy);
        return acc.length ? pct(mean(acc)) : '';
      }),
      pct(mean(cells.map((c) => c.metrics.accuracy))),
    ]);
    out.push(`**${length} tokens**\n\n${table(['method, budget', ...tasks, 'all'], rows)}`);
  }
  return out.join('\n\n');
}

/** Accuracy by needle depth (rows) × context length (columns), one table per method and budget. */
export function depthMarkdown(results: CellResult[]): string {
  const withDepth = results.filter((r) => r.depth !== null);
  const lengths = distinct(withDepth.map((r) => r.contextLength));
  const depths = distinct(withDepth.map((r) => r.depth!));
  if (depths.length < 2) return '';
  const methodLabel = methodLabeller(results);
  return [...groupBy(withDepth, methodLabel)]
    .map(([label, cells]) => {
      const rows = depths.map((d) => [
        String(d),
        ...lengths.map((n) => {
          const acc = cells.filter((c) => c.depth === d && c.contextLength === n).map((c) => c.metrics.accuracy);
          return acc.length ? pct(mean(acc)) : '';
        }),
      ]);
      return `**${label}**\n\n${table(['depth', ...lengths.map(String)], rows)}`;
    })
    .join('\n\n');
}

export function resultsMarkdown(results: CellResult[], summary: Summary): string {
  const parts = [summaryMarkdown(summary), 'Accuracy per task:', taskAccuracyMarkdown(results)];
  const depth = depthMarkdown(results);
  if (depth) parts.push('Accuracy by needle depth (rows) and context length (columns):', depth);
  return parts.join('\n\n');
}
