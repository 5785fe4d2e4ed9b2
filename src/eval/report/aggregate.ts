/** Grouping and means over report rows; non-finite values (a metric a cell could not measure) are left out. */
import type { Row } from './rows.js';

export function mean(values: Array<number | null | undefined>): number | null {
  const finite = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  return finite.length > 0 ? finite.reduce((s, v) => s + v, 0) / finite.length : null;
}

/** Groups items by a key, keeping the order in which keys first appear. */
export function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = groups.get(k);
    if (list) list.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

/** Sorted distinct values. */
export function distinct<T extends string | number>(values: T[]): T[] {
  return [...new Set(values)].sort((a, b) => (typeof a === 'number' ? a - (b as number) : String(a).localeCompare(String(b))));
}

/** The mean of one metric over rows. */
export function meanOf(rows: Row[], metric: (row: Row) => number | null | undefined): number | null {
  return mean(rows.map(metric));
}
