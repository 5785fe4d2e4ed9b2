/** What every model family provides to generation, presses and the CLI. */
import type { AttentionObserver, Backend } from '../backend/backend.js';
import { KVCache } from '../cache/kv-cache.js';
import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ModelConfig } from './config.js';
import type { SequenceStep } from './batch.js';

export interface ForwardOptions {
  /** Return only the last row's logits (prefill before sampling). */
  lastOnly?: boolean;
  /** Sees attention probabilities block by block (for presses that score by attention). */
  observer?: AttentionObserver;
}

export interface BatchOptions {
  /** Return only each sequence's last row of logits (prefill before sampling). */
  lastOnly?: boolean;
}

export interface CausalLM {
  readonly config: ModelConfig;
  readonly backend: Backend;
  /**
   * Runs `ids` as the next tokens of the sequence whose cache is given: their keys and values are appended at
   * positions cache.nextPosition…, and logits [rows × vocab] come back.
   */
  forward(ids: ArrayLike<number>, cache: KVCache, opts?: ForwardOptions): Tensor;
  /** The same for several sequences at once (each with its own cache, length and position); logits per sequence. */
  forwardBatch(steps: SequenceStep[], opts?: BatchOptions): Tensor[];
}

export function newCache(config: ModelConfig, dtype: DType = 'f32'): KVCache {
  return new KVCache({ numLayers: config.numLayers, numKvHeads: config.numKvHeads, headDim: config.headDim }, dtype);
}

/** The longest sequence the model is meant to run: max_position_embeddings, stretched for dynamic RoPE. */
export function contextLength(config: ModelConfig): number {
  return config.rope?.type === 'dynamic' ? Math.floor(config.maxPositions * config.rope.factor) : config.maxPositions;
}

/** KV-cache bytes one token costs at full size, over all layers (keys + values + its position). */
export function kvBytesPerToken(config: ModelConfig, bytesPerElement = 4): number {
  return config.numLayers * config.numKvHeads * (2 * config.headDim * bytesPerElement + 4);
}

export function positionsFrom(start: number, count: number): Int32Array {
  const p = new Int32Array(count);
  for (let i = 0; i < count; i++) p[i] = start + i;
  return p;
}
