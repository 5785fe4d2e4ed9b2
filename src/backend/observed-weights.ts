/**
 * Backend ops that host backends (CPU, reference) build from their own kernels: attention weights collected from an
 * attention call's observer blocks, and key norms read from the heads' keys. A device backend implements the same
 * ops with kernels where the cache lives instead.
 */
import type { LayerCache } from '../cache/kv-cache.js';
import type { Tensor } from '../tensor/tensor.js';
import type { AttentionOptions, Backend } from './backend.js';

export function weightsFromObserver(b: Backend, q: Tensor, layer: LayerCache, positions: Int32Array, opts: AttentionOptions): Float32Array[] {
  const rows = positions.length;
  const group = q.size / rows / layer.heads[0].headDim / layer.heads.length;
  const out = layer.heads.map((h) => new Float32Array(rows * group * h.length));
  b.attention(q, layer, positions, {
    ...opts,
    observer: {
      observe(block) {
        const length = layer.heads[block.kvHead].length;
        const first = positions.indexOf(block.queryPositions[0]);
        for (let r = 0; r < block.queryPositions.length * group; r++) {
          out[block.kvHead].set(block.probs.subarray(r * block.cols, (r + 1) * block.cols), (first * group + r) * length);
        }
      },
    },
  });
  return out;
}

export function hostKeyNorms(layer: LayerCache): Float32Array[] {
  return layer.heads.map((head) => {
    const keys = head.keys(0, head.length);
    const d = head.headDim;
    return Float32Array.from({ length: head.length }, (_, i) => {
      let s = 0;
      for (let j = 0; j < d; j++) s += keys[i * d + j] ** 2;
      return Math.sqrt(s);
    });
  });
}
