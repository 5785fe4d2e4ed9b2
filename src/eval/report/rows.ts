/**
 * The report's view of a cell: which series (method and the settings that tell its runs apart) it belongs to, its
 * budget as a label and as the amount of KV kept, and whether it measured perplexity rather than accuracy.
 */
import type { CellResult } from '../types.js';
import { isSelectorMethod } from '../sweep-config.js';
import { actLabel } from '../act-method.js';
import { keptLabel, optionsText } from '../summary.js';

export interface Row {
  cell: CellResult;
  /** 'full KV', or the method name plus the settings that vary between its cells. */
  series: string;
  /** The share of the KV kept, worded as on the console: '100% kept' (full KV), '50% kept', '512 tokens kept', or 'no budget'. */
  budget: string;
  budgetKind: 'ratio' | 'tokens' | null;
  /** KV kept: a fraction of the prompt's cache (1 − ratio) for ratio budgets, tokens for token budgets. */
  kept: number | null;
  /** A perplexity cell: its accuracy means nothing. */
  perplexity: boolean;
}

/** Every series in a report, in display order, with its colour (the same in every plot) and full settings. */
export interface SeriesInfo {
  name: string;
  color: string;
  /** Every setting of the series, for the run table (options, when it compresses, query awareness, chunk). */
  settings: string;
}

export const FULL_SERIES = 'full KV';
/** The budget of full KV, worded as the others. */
export const FULL_BUDGET = keptLabel(null);
const FULL_COLOR = '#4a4a4a';
/** Tableau 10 without its grey (kept for full KV), then Tableau 20's lighter partners. */
const PALETTE = [
  '#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f',
  '#a0cbe8', '#ffbe7d', '#ff9d9a', '#86bcb6', '#8cd17d', '#f1ce63', '#d4a6c8', '#fabfd2', '#d7b5a6',
];

export function isPerplexityCell(cell: CellResult): boolean {
  return cell.task === 'perplexity' || typeof cell.metrics?.perplexity === 'number';
}


/** The parts of a cell's settings that can tell two runs of one method apart. */
function settingParts(cell: CellResult): Record<string, string> {
  return {
    options: optionsText(cell.options),
    during: cell.during === 'chunks' ? 'in chunks' : cell.during === 'prefill' ? 'after prefill' : '',
    queryAware: cell.queryAware ? 'query-aware' : 'query-agnostic',
    prefillChunk: `chunk ${cell.prefillChunk}`,
    within: cell.within ? `within ${cell.within.press} at ${keptLabel({ ratio: cell.within.ratio })}` : '',
    act: cell.act ? actLabel(cell.act) : '',
  };
}

function budgetOf(cell: CellResult): Pick<Row, 'budget' | 'budgetKind' | 'kept'> {
  const b = cell.budget;
  if (b && 'ratio' in b && Number.isFinite(b.ratio)) {
    // A ratio of something else than entries (DuoAttention's KV heads) is labelled so, and plotted at 1 − ratio all the same.
    return { budget: keptLabel(b, cell.method), budgetKind: 'ratio', kept: 1 - b.ratio };
  }
  if (b && 'tokens' in b && Number.isFinite(b.tokens)) {
    if (isSelectorMethod(cell.method)) return { budget: `${b.tokens} tokens read per step`, budgetKind: 'tokens', kept: b.tokens };
    return { budget: keptLabel(b), budgetKind: 'tokens', kept: b.tokens };
  }
  return { budget: cell.method === 'full' ? keptLabel(null) : 'no budget', budgetKind: null, kept: null };
}

/** Labels every cell; a method's label names only the settings that differ between its cells. */
export function toRows(cells: CellResult[]): { rows: Row[]; series: SeriesInfo[] } {
  const byMethod = new Map<string, CellResult[]>();
  for (const cell of cells) {
    const list = byMethod.get(cell.method) ?? [];
    list.push(cell);
    byMethod.set(cell.method, list);
  }
  const varying = new Map<string, string[]>();
  for (const [method, list] of byMethod) {
    const keys = Object.keys(settingParts(list[0]!));
    varying.set(method, keys.filter((k) => new Set(list.map((c) => settingParts(c)[k])).size > 1));
  }
  const settingsOf = new Map<string, Set<string>>();
  const rows = cells.map((cell): Row => {
    const parts = settingParts(cell);
    const shown = (varying.get(cell.method) ?? []).map((k) => parts[k]).filter((p) => p);
    const base = cell.method === 'full' ? FULL_SERIES : cell.method;
    const series = shown.length > 0 ? `${base} (${shown.join(', ')})` : base;
    const all = cell.method === 'full' ? [parts.prefillChunk!] : Object.values(parts).filter((p) => p);
    const set = settingsOf.get(series) ?? new Set<string>();
    set.add(all.join(', '));
    settingsOf.set(series, set);
    return { cell, series, ...budgetOf(cell), perplexity: isPerplexityCell(cell) };
  });
  const names = [...settingsOf.keys()].sort((a, b) => {
    if (a === FULL_SERIES || b === FULL_SERIES) return a === FULL_SERIES ? -1 : 1;
    return a.localeCompare(b);
  });
  let next = 0;
  const series = names.map((name) => ({
    name,
    color: name === FULL_SERIES ? FULL_COLOR : PALETTE[next++ % PALETTE.length]!,
    settings: [...settingsOf.get(name)!].join('; '),
  }));
  return { rows, series };
}

/** Orders budgets: none first, then ratio budgets from most kept to least, then token budgets likewise. */
export function compareBudgets(a: Row, b: Row): number {
  const rank = (r: Row) => (r.budgetKind === null ? 0 : r.budgetKind === 'ratio' ? 1 : 2);
  return rank(a) - rank(b) || (b.kept ?? 0) - (a.kept ?? 0);
}
