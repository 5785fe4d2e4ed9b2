/**
 * What every KV head's memory offers, whichever backend holds it: the entries of one key/value head of one layer,
 * with their original positions (ascending), per-entry statistics that move with them, and the operations a cache
 * policy needs. Policies (presses, selectors, the runner) and generation see only this; writing keys and values is
 * the backend's (Backend.appendKv), and so is reading them for attention. The CPU's implementation is HeadStore
 * (host arrays); a device backend gives its own, keeping keys and values in device memory.
 */
import { AttendError } from '../errors.js';
import type { DType } from '../tensor/dtype.js';

export interface HeadMemory {
  readonly headDim: number;
  readonly dtype: DType;
  /** Entries held. */
  readonly length: number;
  /** Entries the allocated memory has room for (≥ length). */
  readonly capacity: number;
  /** Original positions of the entries, ascending (host memory, `length` long). */
  readonly positions: Int32Array;
  /** Bytes allocated (spare room for growth included) and bytes of the live entries only. */
  bytes(): number;
  liveBytes(): number;
  /** A per-entry statistic by name (zero for entries added since it was created), `length` long, host memory. */
  stat(name: string): Float32Array;
  /**
   * Keys (or values) of entries [start, start+count) as f32 rows on the host; a device backend copies them. Key
   * channels pruned (pruneKeyChannels) read as 0.
   */
  keys(start: number, count: number, scratch?: Float32Array): Float32Array;
  values(start: number, count: number, scratch?: Float32Array): Float32Array;
  /** Keeps only the entries at `indices` (ascending, unique) and frees the rest. */
  keep(indices: ArrayLike<number>): void;
  /**
   * Overwrites the values of the entries at `indices` (ascending, unique) with f32 rows, [indices.length × headDim],
   * stored in the head's dtype (merge-on-evict presses fold dropped values into kept ones this way).
   */
  writeValues(indices: ArrayLike<number>, rows: Float32Array): void;
  /**
   * Overwrites the keys of the entries at `indices` (ascending, unique) with f32 rows, [indices.length × headDim],
   * stored in the head's dtype; an entry with pruned key channels keeps only its kept channels of the row. For a
   * press that stores an entry of its own making in a slot it kept (RazorAttention's compensation token).
   */
  writeKeys?(indices: ArrayLike<number>, rows: Float32Array): void;
  /** Whether the statistic `name` exists (`stat` creates it): attention asks before reading ENTRY_LOG_WEIGHT. */
  hasStat?(name: string): boolean;
  /**
   * Gives the entries new positions (`length` of them, strictly ascending, ≥ 0) and, with `rotation`, turns each
   * entry's key by its own RoPE angles: cos/sin tables [length × half] in the rotate-half layout (the first 2·half
   * dimensions turn), as rope.ts ropeTables makes them for each entry's position difference (key rerotation).
   */
  renumber(positions: ArrayLike<number>, rotation?: { cos: Float32Array; sin: Float32Array }): void;
  /**
   * Key-channel pruning (ThinK, presses/think.ts), where the backend's memory offers it: every entry held keeps only
   * the key channels `channels` (ascending, unique, below headDim) and the memory of the others is freed; they read
   * as 0 (keys()) and attention computes with the same channels of the query only, the product with the zeroed
   * key. Entries pruned before keep what they had in those channels, entries appended later every channel.
   * Returns whether the stored keys changed.
   */
  pruneKeyChannels?(channels: ArrayLike<number>): boolean;
  /** Entries [0, pruned) hold only the key channels `keyChannels` (ascending); 0 and null when none does. */
  readonly pruned?: number;
  readonly keyChannels?: Int32Array | null;
  /** Drops every entry whose original position is ≥ `position` (rollback). */
  truncate(position: number): void;
  /** Number of entries whose position is ≤ `position` (a prefix, positions being ascending). */
  visibleUpTo(position: number): number;
  clone(): HeadMemory;
}

/**
 * The head statistic attention weighs entries by: per entry, the log of the number of tokens it stands for (0, one
 * token, for every entry appended: statistics start at zero). Softmax attention gives entry i the weight
 * n_i·exp(s_i) / Σ_j n_j·exp(s_j), i.e. adds log n_i to its score, so an entry holding the mean key and value of n
 * dropped tokens attends as n copies of itself (RazorAttention's compensation token, presses/razor-attention.ts).
 * Heads without the statistic attend as before; other kernels refuse it.
 */
export const ENTRY_LOG_WEIGHT = 'attention.log-weight';

/** The argument checks every HeadMemory makes, in one place (HeadStore on the host, the CUDA backend's on the device). */
export const headChecks = {
  /** `indices` ascending, unique whole numbers below `length` (keep, writeValues, writeKeys). */
  indices(what: string, indices: ArrayLike<number>, length: number): void {
    for (let i = 0; i < indices.length; i++) {
      const j = indices[i];
      if (!Number.isInteger(j) || j < 0 || j >= length || (i > 0 && j <= indices[i - 1])) {
        throw new Error(`${what}: indices must be ascending, unique and below ${length}`);
      }
    }
  },

  /** f32 rows of headDim for each index, and the indices as above (writeValues, writeKeys). */
  rows(what: string, indices: ArrayLike<number>, rows: Float32Array, headDim: number, length: number): void {
    if (rows.length !== indices.length * headDim) throw new Error(`${what}: ${rows.length} values for ${indices.length} rows of ${headDim}`);
    headChecks.indices(what, indices, length);
  },

  /** New positions for `n` entries, and rotation tables that fit them (renumber). */
  renumber(positions: ArrayLike<number>, n: number, headDim: number, rotation?: { cos: Float32Array; sin: Float32Array }): void {
    if (positions.length !== n) throw new Error(`renumber: ${positions.length} positions for ${n} entries`);
    for (let i = 0; i < n; i++) {
      if (!Number.isInteger(positions[i]) || positions[i] < 0 || (i > 0 && positions[i] <= positions[i - 1])) {
        throw new Error('renumber: positions must be whole numbers ≥ 0, strictly ascending');
      }
    }
    if (rotation && n > 0) {
      const half = rotation.cos.length / n;
      if (!Number.isInteger(half) || 2 * half > headDim || rotation.sin.length !== rotation.cos.length) {
        throw new Error(`renumber: rotation tables of ${rotation.cos.length} angles do not fit ${n} entries of ${headDim}`);
      }
    }
  },

  truncate(position: number): void {
    if (!Number.isInteger(position) || position < 0) {
      throw new AttendError(`cannot truncate a cache head to position ${position}: it must be a whole number ≥ 0`);
    }
  },
};
