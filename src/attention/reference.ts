/**
 * Attention in plain loops: the oracle that every backend's fast attention is tested against (llm.c's habit: a
 * reference beside each fast kernel). Grouped-query attention of `q` ([rows × numHeads·headDim], rows at
 * `positions`) over a layer's heads, entry by entry with the visibility rule of visibility.ts and the kernel's own
 * reference weights, accumulated in f64. Slow by design; never on a model's path.
 */
import type { LayerCache } from '../cache/kv-cache.js';
import { type AttentionKernelSpec, kernelOf } from './kernels/index.js';
import { sees, type Visibility } from './visibility.js';

export interface ReferenceOptions extends Visibility {
  scale: number;
  kernel?: AttentionKernelSpec;
}

/** Output [rows × numHeads·headDim], and per query head and row the weights over the head's entries (for observers). */
export function referenceAttention(
  q: Float32Array,
  numHeads: number,
  layer: LayerCache,
  positions: Int32Array,
  opts: ReferenceOptions,
): { out: Float32Array; weights: Float64Array[][] } {
  const kernel = kernelOf(opts.kernel);
  const numKv = layer.heads.length;
  const group = numHeads / numKv;
  const d = layer.heads[0].headDim;
  const rows = positions.length;
  const out = new Float32Array(rows * numHeads * d);
  const weights: Float64Array[][] = [];
  for (let h = 0; h < numHeads; h++) {
    const g = Math.floor(h / group);
    const head = layer.heads[g];
    const keys = head.keys(0, head.length);
    const values = head.values(0, head.length);
    const entryPositions = head.positions;
    weights.push([]);
    for (let r = 0; r < rows; r++) {
      const visible: number[] = [];
      for (let i = 0; i < head.length; i++) if (sees(opts, g, i, entryPositions[i], r, positions, h)) visible.push(i);
      const s = new Float64Array(visible.length);
      const qo = (r * numHeads + h) * d;
      visible.forEach((i, j) => {
        let dot = 0;
        for (let x = 0; x < d; x++) dot += q[qo + x] * keys[i * d + x];
        s[j] = dot * opts.scale;
      });
      if (visible.length) kernel.weights(s);
      const w = new Float64Array(head.length);
      const acc = new Float64Array(d);
      visible.forEach((i, j) => {
        w[i] = s[j];
        for (let x = 0; x < d; x++) acc[x] += s[j] * values[i * d + x];
      });
      weights[h].push(w);
      for (let x = 0; x < d; x++) out[qo + x] = acc[x];
    }
  }
  return { out, weights };
}
