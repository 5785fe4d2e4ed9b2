/**
 * The KV cache of one sequence: per layer, per key/value head, a HeadMemory (HeadStore on the host). Positions keep the original
 * numbering: after entries are dropped, new tokens still continue from `nextPosition`, so RoPE and causal
 * masks stay those of the uncompressed sequence — unless a press renumbers the cache (`renumber`, key rerotation).
 */
import { ropeTables } from '../attention/rope.js';
import { AttendError } from '../errors.js';
import type { DType } from '../tensor/dtype.js';
import type { HeadMemory } from './head-memory.js';
import { RecurrentState, type StateCheckpoint, type StateShape } from './recurrent-state.js';
import { HeadStore } from './head-store.js';

/**
 * The head statistic in which a renumbered cache keeps each entry's original position (KVCache.renumber; read it
 * with KVCache.originalPositions, which also knows the entries appended since).
 */
export const ORIGINAL_POSITION = 'original-position';

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
  /** Positions that renumbering took away, in all: tokens seen = nextPosition + this. */
  private renumberedAway = 0;
  /** Entries at positions below this were renumbered (their original positions are in ORIGINAL_POSITION). */
  private renumberedBelow = 0;
  private renumbered = false;

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
    copy.renumberedAway = this.renumberedAway;
    copy.renumberedBelow = this.renumberedBelow;
    copy.renumbered = this.renumbered;
    return copy;
  }

  /**
   * Renumbers the cache as if only the entries it holds had ever been run, and returns how many positions that took
   * away (key rerotation, kvpress's KeyRerotationPress: the question then follows the compressed context). Every
   * head's entries keep their order and take consecutive positions ending at N − 1, N being the most entries any
   * head of any layer holds, and the next token takes N: when all heads hold the same number n (every press that
   * keeps a fixed count per head), each holds 0…n−1 and the sequence continues at n; a head holding fewer has the
   * gap before its first entry, so that in every head the latest entries stay next to the tokens that follow.
   * `inverseFrequencies` (rope.ts; absent for a model without rotary embeddings): each key is turned by its own
   * position difference, new − old, with angles (new − old)·θᵢ computed in f32 as kvpress computes them, so that
   * it is the key RoPE would have written at its new position.
   * Each entry's original position is kept (ORIGINAL_POSITION, originalPositions); `seenTokens` still counts the
   * tokens seen. Recurrent-state checkpoints name positions of the old numbering, so they are forgotten (a trim to
   * before this point is refused as for any position without one).
   */
  renumber(inverseFrequencies?: Float32Array): number {
    const n = this.layers.reduce((m, l) => Math.max(m, l.maxLength()), 0);
    const away = this.nextPosition - n;
    this.layers.forEach((layer, l) =>
      layer.heads.forEach((head, h) => {
        const origin = this.originalPositions(l, h);
        head.stat(ORIGINAL_POSITION).set(origin);
        const from = head.positions;
        const to = Int32Array.from({ length: head.length }, (_, i) => n - head.length + i);
        const delta = Int32Array.from(to, (p, i) => p - from[i]);
        head.renumber(to, inverseFrequencies && head.length > 0 ? ropeTables(inverseFrequencies, delta) : undefined);
      }),
    );
    this.nextPosition = n;
    this.renumberedAway += away;
    this.renumberedBelow = n;
    this.renumbered = true;
    this.checkpoints.clear();
    return away;
  }

  /** The original positions of the entries of `layer`'s head `head` (their positions unless the cache was renumbered). */
  originalPositions(layer: number, head: number): Int32Array {
    const memory = this.layers[layer].heads[head];
    const positions = memory.positions;
    if (!this.renumbered) return positions.slice();
    const origin = memory.stat(ORIGINAL_POSITION);
    return Int32Array.from(positions, (p, i) => (p >= this.renumberedBelow ? p + this.renumberedAway : origin[i]));
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
    // Entries appended from here on are new ones (original position = position + renumberedAway).
    this.renumberedBelow = Math.min(this.renumberedBelow, position);
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

  /** Tokens seen so far (the uncompressed length): nextPosition, plus the positions a renumbering took away. */
  get seenTokens(): number {
    return this.nextPosition + this.renumberedAway;
  }
}
