/**
 * The KV cache of one sequence: per layer, per key/value head, a HeadMemory (HeadStore on the host). Positions keep the original
 * numbering: after entries are dropped, new tokens still continue from `nextPosition`, so RoPE and causal
 * masks stay those of the uncompressed sequence.
 */
import { AttendError } from '../errors.js';
import type { DType } from '../tensor/dtype.js';
import type { HeadMemory } from './head-memory.js';
import { RecurrentState, type StateCheckpoint, type StateShape } from './recurrent-state.js';
import { HeadStore } from './head-store.js';

export interface CacheShape {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  /**
   * Per layer, the shape of a recurrent state the layer keeps (linear and recurrent kernels: the second kind of
   * layer memory, cache/recurrent-state.ts), or null for a layer of KV entries only. Absent: no recurrent layers.
   */
  states?: readonly (StateShape | null)[];
}

/** One layer's heads; H is the backend's head memory (HeadStore, host arrays, by default). */
export class LayerCache<H extends HeadMemory = HeadMemory> {
  constructor(readonly heads: H[]) {}

  static empty(numKvHeads: number, headDim: number, dtype: DType): LayerCache<HeadStore> {
    return new LayerCache(Array.from({ length: numKvHeads }, () => new HeadStore(headDim, dtype)));
  }

  bytes(): number {
    return this.heads.reduce((sum, h) => sum + h.bytes(), 0);
  }

  /** Bytes of the live entries (see HeadStore.liveBytes). */
  liveBytes(): number {
    return this.heads.reduce((sum, h) => sum + h.liveBytes(), 0);
  }

  /** Largest number of entries any head holds. */
  maxLength(): number {
    return this.heads.reduce((m, h) => Math.max(m, h.length), 0);
  }

  clone(): LayerCache<H> {
    return new LayerCache(this.heads.map((h) => h.clone() as H));
  }
}

export class KVCache<H extends HeadMemory = HeadMemory> {
  readonly layers: LayerCache<H>[];
  /** Per layer, its recurrent state, or null (a layer of KV entries only): the layer-memory kinds of the cache. */
  readonly states: (RecurrentState | null)[];
  /** The original position the next token will take. */
  nextPosition = 0;
  /** Recurrent states' checkpoints by position: what trim rolls them back to (a sum cannot drop tokens). */
  private checkpoints = new Map<number, StateCheckpoint[]>();

  constructor(
    readonly shape: CacheShape,
    readonly dtype: DType = 'f32',
    layers?: LayerCache<H>[],
    states?: (RecurrentState | null)[],
  ) {
    // Without layers given: host memory (a backend with its own head memory passes its layers).
    this.layers = layers ?? (Array.from({ length: shape.numLayers }, () => LayerCache.empty(shape.numKvHeads, shape.headDim, dtype)) as unknown as LayerCache<H>[]);
    if (shape.states && shape.states.length !== shape.numLayers) {
      throw new AttendError(`the cache shape gives ${shape.states.length} recurrent-state entries for ${shape.numLayers} layers`);
    }
    this.states = states ?? Array.from({ length: shape.numLayers }, (_, l) => (shape.states?.[l] ? new RecurrentState(shape.states[l]!) : null));
  }

  /** A deep copy: keep a compressed context and answer several questions from copies of it. */
  clone(): KVCache<H> {
    const copy = new KVCache<H>(this.shape, this.dtype, this.layers.map((l) => l.clone()), this.states.map((s) => s?.clone() ?? null));
    copy.nextPosition = this.nextPosition;
    for (const [p, c] of this.checkpoints) copy.checkpoints.set(p, c);
    return copy;
  }

  /**
   * Remembers the recurrent states at the current position, so that trim can roll them back to it (call it before a
   * speculative block). KV entries need none: they are dropped by position. No-op without recurrent layers.
   */
  checkpoint(): void {
    if (this.states.some((s) => s)) this.checkpoints.set(this.nextPosition, this.states.map((s) => s?.checkpoint() ?? null) as StateCheckpoint[]);
  }

  /**
   * Rollback to `position`: every layer and head drops its entries at original positions ≥ `position` and the
   * next token takes `position` again, as if the tokens from there on had never been run (speculative decoding
   * takes back rejected draft tokens this way). Works on a compressed cache too: each head keeps its own prefix.
   * Moving forward (`position` > nextPosition) would leave positions no entry was computed for, so it is refused.
   */
  trim(position: number): void {
    if (!Number.isInteger(position) || position < 0 || position > this.nextPosition) {
      throw new AttendError(`cannot trim the KV cache to position ${position}: it must be a whole number from 0 to ${this.nextPosition} (the next position)`);
    }
    if (position !== this.nextPosition && this.states.some((s) => s)) {
      const saved = this.checkpoints.get(position);
      if (!saved) throw new AttendError(`cannot trim the recurrent layers to position ${position}: no checkpoint there (call cache.checkpoint() at that position first)`);
      this.states.forEach((s, l) => s?.restore(saved[l]!));
      for (const p of this.checkpoints.keys()) if (p > position) this.checkpoints.delete(p);
    }
    for (const layer of this.layers) for (const head of layer.heads) head.truncate(position);
    this.nextPosition = position;
  }

  /** Exact bytes allocated by all layers and heads (spare room for growth included), recurrent states included. */
  bytes(): number {
    return this.layers.reduce((sum, l) => sum + l.bytes(), 0) + this.stateBytes();
  }

  /** Bytes of the live entries only, without the room allocated for growth: `bytes()` ≥ `liveBytes()`; states whole. */
  liveBytes(): number {
    return this.layers.reduce((sum, l) => sum + l.liveBytes(), 0) + this.stateBytes();
  }

  private stateBytes(): number {
    return this.states.reduce((sum, s) => sum + (s?.bytes() ?? 0), 0);
  }

  /** Entries held, summed over layers and heads. */
  entries(): number {
    return this.layers.reduce((sum, l) => sum + l.heads.reduce((s, h) => s + h.length, 0), 0);
  }

  /** Tokens seen so far (the uncompressed length). */
  get seenTokens(): number {
    return this.nextPosition;
  }
}
