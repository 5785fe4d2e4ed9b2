/** Builds small layers and views by hand for press tests. */
import { cpuBackend } from '../../src/backend/cpu/index.js';
import { LayerCache } from '../../src/cache/kv-cache.js';
import { uniformArray } from '../../src/generate/random.js';
import type { ModelConfig } from '../../src/models/config.js';
import { normaliseConfig } from '../../src/models/families.js';
import type { LayerView, QueryWindow } from '../../src/presses/press.js';

export function tinyConfig(numHeads: number, numKvHeads: number, headDim: number, numLayers = 1): ModelConfig {
  return normaliseConfig({
    architectures: ['LlamaForCausalLM'],
    hidden_size: numHeads * headDim,
    num_attention_heads: numHeads,
    num_key_value_heads: numKvHeads,
    head_dim: headDim,
    num_hidden_layers: numLayers,
    intermediate_size: 8,
    vocab_size: 16,
    max_position_embeddings: 1024,
  });
}

/** A layer whose head h holds keys[h][i] (values = keys) at positions 0…n−1 (or the given ones). */
export function layerOf(keys: number[][][], positions?: number[]): LayerCache {
  const d = keys[0][0].length;
  const layer = LayerCache.empty(keys.length, d, 'f32');
  keys.forEach((rows, h) => {
    const flat = Float32Array.from(rows.flat());
    const pos = Int32Array.from(positions ?? rows.map((_, i) => i));
    layer.heads[h].append(flat, flat, pos, 0, d);
  });
  return layer;
}

export function viewOf(config: ModelConfig, cache: LayerCache, keep: number, extra: Partial<LayerView> = {}): LayerView {
  const length = cache.maxLength();
  return { layer: 0, config, backend: cpuBackend, cache, seen: length, keep, ratio: 1 - keep / length, uniform: keep, ...extra };
}

export function queriesOf(rows: number[][], positions: number[]): QueryWindow {
  return { data: Float32Array.from(rows.flat()), positions: Int32Array.from(positions) };
}

export function randomRows(n: number, d: number, seed: number): number[][] {
  const values = uniformArray(n * d, seed);
  return Array.from({ length: n }, (_, i) => Array.from(values.subarray(i * d, (i + 1) * d)));
}
