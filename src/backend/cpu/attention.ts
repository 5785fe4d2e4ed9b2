/**
 * Grouped-query attention over a layer's HeadStores on the CPU. Queries are taken in blocks; for each KV head
 * the block's queries of the whole group form one matrix, so scores (Q·Kᵀ) and outputs (P·V) are two matrix
 * products over the entries the block can see. Memory stays bounded by one block of scores, never tokens².
 */
import type { AttentionOptions } from '../backend.js';
import type { LayerCache } from '../../cache/kv-cache.js';
import { matmulNN, matmulTransB } from './matmul.js';
import { softmaxInPlace } from './elementwise.js';

/** Scores held at once per block, in floats (4 MiB). */
const BLOCK_SCORES = 1 << 20;

export function attention(
  q: Float32Array,
  rows: number,
  numHeads: number,
  layer: LayerCache,
  positions: Int32Array,
  opts: AttentionOptions,
  out: Float32Array,
): void {
  const numKvHeads = layer.heads.length;
  const group = numHeads / numKvHeads;
  const d = layer.heads[0].headDim;
  const width = numHeads * d;
  for (let g = 0; g < numKvHeads; g++) {
    const head = layer.heads[g];
    const maxVisible = head.visibleUpTo(positions[rows - 1]);
    const blockRows = Math.max(1, Math.min(rows, Math.floor(BLOCK_SCORES / Math.max(1, maxVisible * group))));
    for (let t0 = 0; t0 < rows; t0 += blockRows) {
      const t1 = Math.min(rows, t0 + blockRows);
      const n = (t1 - t0) * group;
      const cols = head.visibleUpTo(positions[t1 - 1]);
      // Queries of the block, one row per (token, head of the group).
      const qb = new Float32Array(n * d);
      for (let t = t0; t < t1; t++) {
        for (let j = 0; j < group; j++) {
          const src = t * width + (g * group + j) * d;
          qb.set(q.subarray(src, src + d), ((t - t0) * group + j) * d);
        }
      }
      const scores = new Float32Array(n * cols);
      if (cols > 0) matmulTransB(qb, head.keys(0, cols), scores, n, cols, d, { reuseB: false });
      for (let t = t0; t < t1; t++) {
        const hi = head.visibleUpTo(positions[t]);
        const lo = opts.window === null ? 0 : head.visibleUpTo(positions[t] - opts.window);
        for (let j = 0; j < group; j++) {
          const row = scores.subarray(((t - t0) * group + j) * cols, ((t - t0) * group + j + 1) * cols);
          row.fill(0, 0, lo);
          row.fill(0, hi);
          const live = row.subarray(lo, hi);
          for (let i = 0; i < live.length; i++) live[i] *= opts.scale;
          softmaxInPlace(live);
        }
      }
      opts.observer?.observe?.({
        layer: opts.layer,
        kvHead: g,
        groupSize: group,
        queryPositions: positions.subarray(t0, t1),
        probs: scores,
        cols,
      });
      const ob = new Float32Array(n * d);
      if (cols > 0) matmulNN(scores, head.values(0, cols), ob, n, d, cols);
      for (let t = t0; t < t1; t++) {
        for (let j = 0; j < group; j++) {
          out.set(ob.subarray(((t - t0) * group + j) * d, ((t - t0) * group + j + 1) * d), t * width + (g * group + j) * d);
        }
      }
    }
  }
}
