/**
 * Inner products over f32 rows for the vector indexes of RetrievalAttention (selectors/retrieval-attention.ts): one
 * dot product, a block of query·key scores through the CPU's matrix multiply (the index lives in host memory, as
 * the paper keeps it in CPU memory), and the top k of a score row. Distances are negated inner products, so that
 * "nearest" is "highest q·k" (maximum inner product search, RoarGraph's `ip` metric).
 */
import { matmulTransB } from '../../backend/cpu/matmul.js';

/** a[ai .. ai+d) · b[bi .. bi+d). */
export function dotAt(a: Float32Array, ai: number, b: Float32Array, bi: number, d: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = 0;
  for (; i + 3 < d; i += 4) {
    s0 += a[ai + i] * b[bi + i];
    s1 += a[ai + i + 1] * b[bi + i + 1];
    s2 += a[ai + i + 2] * b[bi + i + 2];
    s3 += a[ai + i + 3] * b[bi + i + 3];
  }
  for (; i < d; i++) s0 += a[ai + i] * b[bi + i];
  return s0 + s1 + s2 + s3;
}

/** scores[r·n + j] = queries row r · keys row j, for `rows` query rows and `n` key rows of width d. */
export function innerProducts(queries: Float32Array, rows: number, keys: Float32Array, n: number, d: number, scores = new Float32Array(rows * n)): Float32Array {
  // Keys change between calls (a cache grows): never let a path cache them as it would a weight.
  matmulTransB(queries, keys, scores, rows, n, d, { reuseB: false });
  return scores;
}

let scratch = new Float32Array(0);

/**
 * Indices of the k highest of scores[offset .. offset+n), best first (ties to the lower index), written into `out`
 * (k long); returns how many were written (min(k, n)). Quickselect finds the k-th highest score on a copy (O(n)
 * on average), then the k indices above it (ties at it by index) are sorted.
 */
export function topK(scores: Float32Array, offset: number, n: number, k: number, out: Int32Array): number {
  const m = Math.min(k, n);
  if (m <= 0) return 0;
  let count = 0;
  if (m === n) {
    for (let i = 0; i < n; i++) out[count++] = i;
  } else {
    if (scratch.length < n) scratch = new Float32Array(n);
    const buf = scratch;
    buf.set(scores.subarray(offset, offset + n));
    const t = kthHighest(buf, n, m - 1);
    for (let i = 0; i < n; i++) if (scores[offset + i] > t) out[count++] = i;
    for (let i = 0; i < n && count < m; i++) if (scores[offset + i] === t) out[count++] = i;
  }
  // Insertion sort, best first (k is small: at most a few hundred).
  for (let i = 1; i < m; i++) {
    const id = out[i];
    const s = scores[offset + id];
    let j = i - 1;
    while (j >= 0 && (scores[offset + out[j]] < s || (scores[offset + out[j]] === s && out[j] > id))) {
      out[j + 1] = out[j];
      j--;
    }
    out[j + 1] = id;
  }
  return m;
}

/** The value of rank `r` (0: the highest) among buf[0 .. n), rearranging buf (Hoare quickselect). */
function kthHighest(buf: Float32Array, n: number, r: number): number {
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const pivot = buf[(lo + hi) >> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (buf[i] > pivot) i++;
      while (buf[j] < pivot) j--;
      if (i <= j) {
        const x = buf[i];
        buf[i] = buf[j];
        buf[j] = x;
        i++;
        j--;
      }
    }
    if (r <= j) hi = j;
    else if (r >= i) lo = i;
    else return buf[r];
  }
  return buf[r];
}
