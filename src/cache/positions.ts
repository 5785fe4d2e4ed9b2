/** Searching ascending position (or index) lists, as caches keep them. */

/** How many of the first `length` values of ascending `sorted` are ≤ `x` (so they form a prefix). */
export function countUpTo(sorted: Int32Array, x: number, length = sorted.length): number {
  let lo = 0;
  let hi = length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The index of `x` in ascending, unique `sorted`, or −1. */
export function indexIn(sorted: Int32Array, x: number): number {
  const at = countUpTo(sorted, x) - 1;
  return at >= 0 && sorted[at] === x ? at : -1;
}
