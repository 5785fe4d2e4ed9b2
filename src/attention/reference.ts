/**
 * Attention in plain loops: the oracle that every backend's fast attention is tested against (llm.c's habit: a
 * reference beside each fast kernel). Grouped-query attention of `q` ([rows × numHeads·headDim], rows at
 * `positions`) over a layer's heads, entry by entry with the visibility rule of visibility.ts and the kernel's own
 * reference weights, accumulated in f64. Slow by design; never on a model's path.
 */
import { ENTRY_LOG_WEIGHT } from '../cache/head-memory.js';
import type { LayerCache } from '../cache/kv-cache.js';
import { type AttentionKernelSpec, kernelOf } from './kernels/index.js';
import { checkRemap, spanOf, turn } from './remap.js';
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
  const remap = opts.remap;
  if (remap) checkRemap(opts, rows, numHeads, layer.heads.map((x) => x.length), d);
  for (let h = 0; h < numHeads; h++) {
    const g = Math.floor(h / group);
    const head = layer.heads[g];
    const keys = head.keys(0, head.length);
    const values = head.values(0, head.length);
    const entryPositions = head.positions;
    // An entry standing for n tokens (a compensation token) scores log n more: n·exp(s) in the softmax.
    const logWeights = head.hasStat?.(ENTRY_LOG_WEIGHT) ? head.stat(ENTRY_LOG_WEIGHT) : null;
    if (logWeights && kernel.spec.name !== 'softmax') throw new Error(`entries weighted by a token count (${ENTRY_LOG_WEIGHT}) need the softmax kernel, not ${kernel.spec.name}`);
    weights.push([]);
    for (let r = 0; r < rows; r++) {
      const visible: number[] = [];
      for (let i = 0; i < head.length; i++) if (sees(opts, g, i, entryPositions[i], r, positions, h)) visible.push(i);
      const s = new Float64Array(visible.length);
      const qo = (r * numHeads + h) * d;
      // Remapped reads: the query and each key turned to the positions they are read at (attention/remap.ts).
      const unit = r * numHeads + h;
      const qv = remap ? turned(q.subarray(qo, qo + d), remap.queryShifts[unit], remap.inverseFrequencies) : q.subarray(qo, qo + d);
      visible.forEach((i, j) => {
        const key = keys.subarray(i * d, (i + 1) * d);
        const kv = remap ? turned(key, remap.keyShifts[spanOf(remap, unit, i)], remap.inverseFrequencies) : key;
        let dot = 0;
        for (let x = 0; x < d; x++) dot += qv[x] * kv[x];
        s[j] = dot * opts.scale + (logWeights ? logWeights[i] : 0);
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

function turned(x: Float32Array, shift: number, inv: Float32Array): Float64Array {
  const out = new Float64Array(x.length);
  turn(x, shift, inv, out);
  return out;
}
