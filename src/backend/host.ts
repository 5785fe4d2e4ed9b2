/**
 * What the host backends (CPU, reference) share: their memory is host arrays, so the ops that only move data in and
 * out of it are the same for both — weights widened to f32, tensors read and made, caches and recurrent states
 * created, keys and values appended, attention weights collected from an attention call's observer blocks, key
 * norms read from the heads' keys. Each backend adds its own compute. A device backend implements these ops with
 * kernels and transfers where its memory lives instead.
 */
import type { HeadMemory } from '../cache/head-memory.js';
import { hostHead } from '../cache/head-store.js';
import { type CacheShape, KVCache, type LayerCache } from '../cache/kv-cache.js';
import { RecurrentState, type StateShape } from '../cache/recurrent-state.js';
import { asF32 } from '../models/weights.js';
import type { DType } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';
import type { AttentionOptions, Backend } from './backend.js';

type Layer = LayerCache<HeadMemory>;

export abstract class HostBackend implements Pick<Backend, 'weight' | 'read' | 'upload' | 'createCache' | 'createState' | 'keyNorms' | 'attentionWeights' | 'appendKv'> {
  abstract attention(q: Tensor, layer: Layer, positions: Int32Array, opts: AttentionOptions): Tensor;

  weight(stored: Tensor): Tensor {
    return stored.dtype === 'f32' ? stored : new Tensor(stored.shape, asF32(stored));
  }

  read(t: Tensor): Float32Array {
    return t.f32;
  }

  upload(shape: readonly number[], data: Float32Array): Tensor {
    return new Tensor(shape, data);
  }

  createCache(shape: CacheShape, dtype: DType): KVCache {
    return new KVCache(shape, dtype);
  }

  createState(shape: StateShape): RecurrentState {
    return new RecurrentState(shape);
  }

  keyNorms(layer: Layer): Float32Array[] {
    return hostKeyNorms(layer);
  }

  attentionWeights(q: Tensor, layer: Layer, positions: Int32Array, opts: AttentionOptions): Float32Array[] {
    return weightsFromObserver(this, q, layer, positions, opts);
  }

  appendKv(layer: Layer, k: Tensor, v: Tensor, positions: Int32Array): void {
    const d = layer.heads[0].headDim;
    const width = layer.heads.length * d;
    layer.heads.forEach((head, h) => hostHead(head).append(k.f32, v.f32, positions, h * d, width));
  }
}

function weightsFromObserver(b: Pick<Backend, 'attention'>, q: Tensor, layer: Layer, positions: Int32Array, opts: AttentionOptions): Float32Array[] {
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

function hostKeyNorms(layer: Layer): Float32Array[] {
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
