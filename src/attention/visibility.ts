/**
 * Which entries a query row may read: the one rule every attention kernel and backend applies, stated here once.
 *
 *  - causal by original position: an entry is visible to a query when its position is ≤ the query's (after
 *    compression, positions keep their original numbering, so a compressed cache masks as the full one did);
 *  - a sliding window: only entries with position > the query's − window;
 *  - per-head entry lists (selectors): a KV head reads only the listed entries, everything else stays in the cache;
 *  - a tree mask (tree attention, as Medusa verifies several candidate continuations in one forward): among the
 *    call's own rows, a row sees the entry of another row of the call only if that row is its ancestor;
 *  - remapped reads (LongHeads): per query row and query head, spans of entries read at shifted positions
 *    (attention/remap.ts states how they are weighed); alone, with none of the above but causality.
 */
import { indexIn } from '../cache/positions.js';
import { type RemappedReads, spanOf } from './remap.js';

export interface TreeMask {
  /** Per query row of the call: the row it continues (its parent, < its own index), or −1 for a row on the trunk. */
  parents: Int32Array;
}

export interface Visibility {
  /** Sliding window in tokens, or null. */
  window: number | null;
  /** Per KV head: ascending indices of the head's entries its queries may read; null (or absent) for all. */
  entries?: readonly (Int32Array | null)[];
  /**
   * Per query head instead (a selector that picks for each query head, as Quest's official code does): ascending
   * indices into its KV head's entries; null for all. Not together with `entries`.
   */
  queryEntries?: readonly (Int32Array | null)[];
  tree?: TreeMask;
  /**
   * Per query row and query head, the spans of entries read and the positions they are read at (attention/remap.ts):
   * a selector's per-head remapped positions. Not together with `entries`, `queryEntries`, a window or a tree.
   */
  remap?: RemappedReads;
}

/**
 * Whether query row `row` (at queryPositions[row]) may read the entry at index `index` (position `position`) of KV head
 * `head`; `queryHead` (the query head asking) matters only for per-query-head lists.
 */
export function sees(vis: Visibility, head: number, index: number, position: number, row: number, queryPositions: Int32Array, queryHead = -1): boolean {
  const p = queryPositions[row];
  if (position > p) return false;
  if (vis.window !== null && position <= p - vis.window) return false;
  const list = vis.queryEntries ? vis.queryEntries[queryHead] : vis.entries?.[head];
  if (list && indexIn(list, index) < 0) return false;
  if (vis.remap && spanOf(vis.remap, row * (vis.remap.queryShifts.length / queryPositions.length) + queryHead, index) < 0) return false;
  if (vis.tree) {
    const t = queryPositions.indexOf(position);
    if (t >= 0 && t !== row && !isAncestor(vis.tree.parents, t, row)) return false;
  }
  return true;
}

/** Whether row `a` is an ancestor of row `b` in the tree. */
export function isAncestor(parents: Int32Array, a: number, b: number): boolean {
  for (let r = parents[b]; r >= 0; r = parents[r]) if (r === a) return true;
  return false;
}

/** A tree mask's parents must point backwards; the call's rows must be the tree's. */
export function checkTree(tree: TreeMask, rows: number): void {
  if (tree.parents.length !== rows) throw new Error(`tree mask has ${tree.parents.length} rows, the call ${rows}`);
  tree.parents.forEach((p, r) => {
    if (p < -1 || p >= r) throw new Error(`tree mask: row ${r}'s parent ${p} must be −1 or an earlier row`);
  });
}
