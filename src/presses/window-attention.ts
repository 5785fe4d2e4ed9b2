/**
 * Attention of a layer's buffered recent queries over everything its heads hold, as SnapKV's and TOVA's
 * references recompute it at compression time: causal by original position, softmax in f32 over all visible
 * entries. Runs through the backend's attentionWeights op, so every device computes it where its cache lives.
 */
import { Tensor } from '../tensor/tensor.js';
import type { LayerView, QueryWindow } from './press.js';

/** Per KV head: probabilities [queries × groupSize rows (head fastest) × head.length entries]. */
export function windowAttention(view: LayerView, queries: QueryWindow): Float32Array[] {
  const { config, cache } = view;
  const rows = queries.positions.length;
  return view.backend.attentionWeights(view.backend.upload([rows, config.numHeads * config.headDim], queries.data), cache, queries.positions, {
    layer: view.layer,
    scale: 1 / Math.sqrt(config.headDim),
    window: null,
  });
}

/** Mean over the rows of `probs` ([rows × length]) of columns [0, cols), for the rows of one head. */
export function meanOverQueries(probs: Float32Array, length: number, queries: number, group: number, head: number, cols: number): Float32Array {
  const out = new Float32Array(cols);
  for (let t = 0; t < queries; t++) {
    const row = probs.subarray((t * group + head) * length, (t * group + head) * length + cols);
    for (let i = 0; i < cols; i++) out[i] += row[i];
  }
  for (let i = 0; i < cols; i++) out[i] /= queries;
  return out;
}

/** 1-D average pooling, stride 1, zero padding of kernel/2 counted in the mean (PyTorch's avg_pool1d default). */
export function avgPool1d(x: Float32Array, kernel: number): Float32Array {
  const pad = Math.floor(kernel / 2);
  const out = new Float32Array(x.length + 2 * pad - kernel + 1);
  for (let i = 0; i < out.length; i++) {
    let s = 0;
    for (let j = 0; j < kernel; j++) {
      const at = i - pad + j;
      if (at >= 0 && at < x.length) s += x[at];
    }
    out[i] = s / kernel;
  }
  return out;
}

/**
 * Gives the entries from `prefixes[h]` on the layer's highest score + 1, as kvpress pads the observation
 * window: above every scored entry of every head, so head-adaptive selection keeps them too.
 */
export function protectTail(scores: Float32Array[], prefixes: number[]): void {
  let max = -Infinity;
  scores.forEach((s, h) => {
    for (let i = 0; i < prefixes[h]; i++) max = Math.max(max, s[i]);
  });
  if (max === -Infinity) max = 0;
  scores.forEach((s, h) => s.fill(max + 1, prefixes[h]));
}
