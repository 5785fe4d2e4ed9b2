/**
 * The entries one key/value head of one layer holds: keys, values and each entry's original position, kept
 * in ascending position order so that a causal mask is a prefix. Heads are independent, so a compression step
 * can keep a different number of entries per head; `keep` reallocates to the kept size, so dropped entries
 * return their memory instead of being masked.
 *
 * Key channels (ThinK, presses/think.ts): `pruneKeyChannels` stores every entry held with only the given channels of
 * its key, so the entries [0, pruned) take keyChannels.length elements each and the entries appended after them the
 * whole headDim. The other channels are freed and read as 0 (keys()); attention multiplies such keys by the same
 * channels of the query only (the CPU kernel), which is the product with the zeroed key. Values keep every channel.
 */
import { applyRope } from '../attention/rope.js';
import { type DType, BYTES_PER_ELEMENT, narrow, widen } from '../tensor/dtype.js';
import { headChecks, type HeadMemory } from './head-memory.js';
import { countUpTo, indexIn } from './positions.js';

/**
 * Room added when a head grows: an eighth of what it holds, at least 16 and at most 256 entries — few copies
 * for long caches, little spare room for small or freshly compressed ones.
 */
const GROW_MIN = 16;
const GROW_MAX = 256;

type Storage = Float32Array | Uint16Array;

function allocate(dtype: DType, n: number): Storage {
  return dtype === 'f32' ? new Float32Array(n) : new Uint16Array(n);
}

/** The host implementation of HeadMemory (the CPU and reference backends'). */
export class HeadStore implements HeadMemory {
  /** Keys of entries [0, pruned) with their kept channels only (channelData.length elements each), then whole rows. */
  private keyData: Storage;
  private valueData: Storage;
  private positionData: Int32Array;
  /** Per-entry statistics that presses accumulate (e.g. attention received), moved along on `keep`. */
  private readonly statData = new Map<string, Float32Array>();
  /** The key channels entries [0, prunedRows) keep (ascending), or null when no entry's key is pruned. */
  private channelData: Int32Array | null = null;
  private prunedRows = 0;
  length = 0;

  constructor(
    readonly headDim: number,
    readonly dtype: DType = 'f32',
    capacity = 0,
  ) {
    this.keyData = allocate(dtype, capacity * headDim);
    this.valueData = allocate(dtype, capacity * headDim);
    this.positionData = new Int32Array(capacity);
  }

  get capacity(): number {
    return this.positionData.length;
  }

  get positions(): Int32Array {
    return this.positionData.subarray(0, this.length);
  }

  /** Entries [0, pruned) hold only the key channels `keyChannels` (pruneKeyChannels); 0 when none does. */
  get pruned(): number {
    return this.prunedRows;
  }

  get keyChannels(): Int32Array | null {
    return this.channelData;
  }

  /**
   * Bytes this head really holds: keys (pruned ones with their kept channels only), values and positions (allocated
   * room included), plus press statistics and the list of kept key channels.
   */
  bytes(): number {
    let stats = 0;
    for (const s of this.statData.values()) stats += s.byteLength;
    return this.keyData.byteLength + this.valueData.byteLength + this.positionData.byteLength + (this.channelData?.byteLength ?? 0) + stats;
  }

  /**
   * Bytes of the live entries only: keys, values and positions of the `length` entries held, plus their press
   * statistics and the kept key channels; `bytes()` minus the spare room allocated for growth (a clone holds exactly this).
   */
  liveBytes(): number {
    const b = BYTES_PER_ELEMENT[this.dtype];
    return this.keyAt(this.length) * b + this.length * (this.headDim * b + 4 + 4 * this.statData.size) + (this.channelData?.byteLength ?? 0);
  }

  /** A per-entry statistic by name (zero for entries added since it was created), `length` long. */
  stat(name: string): Float32Array {
    let s = this.statData.get(name);
    if (!s) {
      s = new Float32Array(this.capacity);
      this.statData.set(name, s);
    }
    return s.subarray(0, this.length);
  }

  hasStat(name: string): boolean {
    return this.statData.has(name);
  }

  /** Deep copy (a compressed context can then answer several questions). */
  clone(): HeadStore {
    const copy = new HeadStore(this.headDim, this.dtype, 0);
    copy.keyData = this.keyData.slice(0, this.keyAt(this.length));
    copy.channelData = this.channelData?.slice() ?? null;
    copy.prunedRows = this.prunedRows;
    copy.valueData = this.valueData.slice(0, this.length * this.headDim);
    copy.positionData = this.positionData.slice(0, this.length);
    for (const [name, s] of this.statData) copy.statData.set(name, s.slice(0, this.length));
    copy.length = this.length;
    return copy;
  }

  /**
   * Appends `count` entries. `keys`/`values` are f32 rows read with a stride: entry i starts at
   * `offset + i·stride` (so a head can be copied straight out of a [tokens × heads·dim] projection).
   */
  append(keys: Float32Array, values: Float32Array, positions: Int32Array, offset: number, stride: number): void {
    const count = positions.length;
    if (count > 0 && this.length > 0 && positions[0] <= this.positionData[this.length - 1]) {
      throw new Error(`cache entries must be appended in increasing position order`);
    }
    this.reserve(this.length + count);
    const d = this.headDim;
    for (let i = 0; i < count; i++) {
      const src = offset + i * stride;
      this.writeRow(this.keyData, this.keyAt(this.length + i), keys.subarray(src, src + d));
      this.writeRow(this.valueData, (this.length + i) * d, values.subarray(src, src + d));
      this.positionData[this.length + i] = positions[i];
    }
    this.length += count;
  }

  /**
   * Keys of entries [start, start+count) as f32 rows of headDim; 16-bit storage is widened into `scratch`. Pruned
   * key channels read as 0 (rows of pruned entries are filled in `scratch`, or a new array).
   */
  keys(start: number, count: number, scratch?: Float32Array): Float32Array {
    if (start >= this.prunedRows) return this.read(this.keyData, this.keyAt(start), count, scratch);
    const d = this.headDim;
    const channels = this.channelData!;
    const m = channels.length;
    const out = scratch && scratch.length >= count * d ? scratch.subarray(0, count * d) : new Float32Array(count * d);
    const pruned = Math.min(this.prunedRows, start + count) - start;
    const kept = this.wide(this.keyData.subarray(start * m, (start + pruned) * m));
    out.fill(0, 0, pruned * d);
    for (let r = 0; r < pruned; r++) for (let j = 0; j < m; j++) out[r * d + channels[j]] = kept[r * m + j];
    if (count > pruned) out.set(this.wide(this.keyData.subarray(this.keyAt(start + pruned), this.keyAt(start + count))), pruned * d);
    return out;
  }

  values(start: number, count: number, scratch?: Float32Array): Float32Array {
    return this.read(this.valueData, start * this.headDim, count, scratch);
  }

  /**
   * Keys of entries [start, start+count) as stored, a view with no copy: f32 rows, or for f16/bf16 storage the
   * 16-bit words (bit patterns) that a kernel widens itself (the CPU attention does, with SIMD). Entries below
   * `pruned` hold keyChannels.length elements each (their kept channels, in that order), the others headDim.
   */
  storedKeys(start: number, count: number): Float32Array | Uint16Array {
    return this.keyData.subarray(this.keyAt(start), this.keyAt(start + count));
  }

  storedValues(start: number, count: number): Float32Array | Uint16Array {
    return this.valueData.subarray(start * this.headDim, (start + count) * this.headDim);
  }

  /**
   * Keeps only the entries at `indices` (ascending, no repeats) and reallocates to exactly that many, so the
   * dropped entries' memory is released.
   */
  keep(indices: ArrayLike<number>): void {
    headChecks.indices('keep', indices, this.length);
    const d = this.headDim;
    const n = indices.length;
    // Kept pruned entries stay pruned (they come first, indices being ascending).
    const m = this.channelData?.length ?? 0;
    let pruned = 0;
    while (pruned < n && indices[pruned] < this.prunedRows) pruned++;
    const keys = allocate(this.dtype, pruned * m + (n - pruned) * d);
    const values = allocate(this.dtype, n * d);
    const positions = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const j = indices[i];
      const from = this.keyAt(j);
      keys.set(this.keyData.subarray(from, from + (i < pruned ? m : d)), i < pruned ? i * m : pruned * m + (i - pruned) * d);
      values.set(this.valueData.subarray(j * d, (j + 1) * d), i * d);
      positions[i] = this.positionData[j];
    }
    for (const [name, s] of this.statData) this.statData.set(name, Float32Array.from(indices, (j) => s[j]));
    this.keyData = keys;
    this.valueData = values;
    this.positionData = positions;
    this.length = n;
    this.setPruned(pruned);
  }

  /**
   * ThinK (presses/think.ts): every entry held keeps only the key channels `channels` (ascending, unique, below
   * headDim) and the others are freed; they read as 0 from now on. An entry pruned before keeps what it had in
   * those channels (0 in one it had lost), so pruning again is pruning the zeroed keys again. Entries appended later
   * have every channel. The spare room for growth is kept. Returns whether the stored keys changed.
   */
  pruneKeyChannels(channels: ArrayLike<number>): boolean {
    const d = this.headDim;
    const m = channels.length;
    for (let j = 0; j < m; j++) {
      const c = channels[j];
      if (!Number.isInteger(c) || c < 0 || c >= d || (j > 0 && c <= channels[j - 1])) {
        throw new Error(`pruneKeyChannels: channels must be ascending, unique and below ${d}`);
      }
    }
    const n = this.length;
    const old = this.channelData;
    const before = this.prunedRows;
    if (n === 0 || (!old && m === d)) return false;
    if (before === n && old && old.length === m && old.every((c, j) => c === channels[j])) return false;
    const keys = allocate(this.dtype, n * m + (this.capacity - n) * d);
    const stored = this.keyData;
    // Where each kept channel is in a row pruned before (−1: that row had lost it, so it stays 0).
    const from = old ? Int32Array.from({ length: m }, (_, j) => indexIn(old, channels[j])) : null;
    const oldM = old?.length ?? 0;
    for (let i = 0; i < n; i++) {
      if (i < before) {
        for (let j = 0; j < m; j++) if (from![j] >= 0) keys[i * m + j] = stored[i * oldM + from![j]];
      } else {
        const at = before * oldM + (i - before) * d;
        for (let j = 0; j < m; j++) keys[i * m + j] = stored[at + channels[j]];
      }
    }
    this.keyData = keys;
    this.channelData = Int32Array.from(channels);
    this.prunedRows = n;
    return true;
  }

  /** Overwrites the values of the entries at `indices` (ascending, unique) with f32 rows (narrowed to the dtype). */
  writeValues(indices: ArrayLike<number>, rows: Float32Array): void {
    const d = this.headDim;
    headChecks.rows('writeValues', indices, rows, d, this.length);
    for (let i = 0; i < indices.length; i++) {
      const j = indices[i];
      this.writeRow(this.valueData, j * d, rows.subarray(i * d, (i + 1) * d));
    }
  }

  /**
   * Overwrites the keys of the entries at `indices` (ascending, unique) with f32 rows of headDim (narrowed to the
   * dtype); an entry with pruned key channels stores only its kept channels of the row.
   */
  writeKeys(indices: ArrayLike<number>, rows: Float32Array): void {
    const d = this.headDim;
    headChecks.rows('writeKeys', indices, rows, d, this.length);
    const channels = this.channelData;
    for (let i = 0; i < indices.length; i++) {
      const j = indices[i];
      const row = rows.subarray(i * d, (i + 1) * d);
      if (j >= this.prunedRows) {
        this.writeRow(this.keyData, this.keyAt(j), row);
        continue;
      }
      const kept = Float32Array.from(channels!, (c) => row[c]);
      const at = this.keyAt(j);
      if (this.keyData instanceof Float32Array) this.keyData.set(kept, at);
      else narrow(this.dtype as 'f16' | 'bf16', kept, this.keyData.subarray(at, at + kept.length));
    }
  }

  /**
   * New positions for the entries (strictly ascending), and with `rotation` each key turned by its row of the
   * cos/sin tables ([length × half], rotate-half layout): 16-bit keys are widened, turned and narrowed again.
   */
  renumber(positions: ArrayLike<number>, rotation?: { cos: Float32Array; sin: Float32Array }): void {
    const n = this.length;
    headChecks.renumber(positions, n, this.headDim, rotation);
    if (rotation && n > 0) {
      const keys = this.keys(0, n);
      applyRope(keys, n, 1, this.headDim, rotation);
      if (this.prunedRows > 0) {
        // Turning a key mixes channel i with channel i + half: a pruned (zero) channel whose partner is kept no longer
        // stays 0, so the turned keys are stored whole again.
        const whole = allocate(this.dtype, this.capacity * this.headDim);
        if (whole instanceof Float32Array) whole.set(keys);
        else narrow(this.dtype as 'f16' | 'bf16', keys, whole.subarray(0, n * this.headDim));
        this.keyData = whole;
        this.setPruned(0);
      } else if (!(this.keyData instanceof Float32Array)) narrow(this.dtype as 'f16' | 'bf16', keys, this.keyData.subarray(0, n * this.headDim));
    }
    for (let i = 0; i < n; i++) this.positionData[i] = positions[i];
  }

  /**
   * Rollback: drops every entry whose original position is ≥ `position` (entries are sorted, so what stays is a
   * prefix and nothing moves). Speculative decoding uses it to take back the draft tokens the target rejected.
   * The allocated room is kept as spare room for the appends that follow (`bytes()` is unchanged, `liveBytes()`
   * shrinks exactly); press statistics of the dropped entries are zeroed, so that entries appended later start
   * from zero as `stat` promises, and those of the kept entries stay where they are.
   */
  truncate(position: number): void {
    headChecks.truncate(position);
    const n = this.visibleUpTo(position - 1);
    for (const s of this.statData.values()) s.fill(0, n, this.length);
    this.length = n;
    this.setPruned(Math.min(this.prunedRows, n));
  }

  /** Number of entries whose position is ≤ `position` (entries are sorted, so they form a prefix). */
  visibleUpTo(position: number): number {
    return countUpTo(this.positionData, position, this.length);
  }

  private reserve(needed: number): void {
    // The keys may lack room while the positions have it: a rollback into pruned entries leaves less key room.
    if (needed <= this.capacity && this.keyAt(needed) <= this.keyData.length) return;
    const grow = Math.min(GROW_MAX, Math.max(GROW_MIN, this.capacity >> 3));
    const capacity = needed <= this.capacity ? this.capacity : Math.max(needed, this.capacity + grow);
    const d = this.headDim;
    const keys = allocate(this.dtype, this.keyAt(capacity));
    keys.set(this.keyData.subarray(0, this.keyAt(this.length)));
    this.keyData = keys;
    if (capacity === this.capacity) return;
    const values = allocate(this.dtype, capacity * d);
    const positions = new Int32Array(capacity);
    values.set(this.valueData.subarray(0, this.length * d));
    positions.set(this.positionData.subarray(0, this.length));
    for (const [name, s] of this.statData) {
      const grown = new Float32Array(capacity);
      grown.set(s.subarray(0, this.length));
      this.statData.set(name, grown);
    }
    this.valueData = values;
    this.positionData = positions;
  }

  /** Where entry i's key starts in keyData: pruned entries first, with their kept channels only. */
  private keyAt(i: number): number {
    const m = this.channelData?.length ?? 0;
    return i <= this.prunedRows ? i * m : this.prunedRows * m + (i - this.prunedRows) * this.headDim;
  }

  private setPruned(rows: number): void {
    this.prunedRows = rows;
    if (rows === 0) this.channelData = null;
  }

  private writeRow(target: Storage, at: number, row: Float32Array): void {
    if (target instanceof Float32Array) target.set(row, at);
    else narrow(this.dtype as 'f16' | 'bf16', row, target.subarray(at, at + this.headDim));
  }

  /** `count` rows of headDim from element `at` as f32: a view of f32 storage, or widened into `scratch`. */
  private read(source: Storage, at: number, count: number, scratch?: Float32Array): Float32Array {
    const d = this.headDim;
    const rows = source.subarray(at, at + count * d);
    if (rows instanceof Float32Array) return rows;
    const out = scratch && scratch.length >= count * d ? scratch.subarray(0, count * d) : new Float32Array(count * d);
    return widen(this.dtype as 'f16' | 'bf16', rows, out);
  }

  /** Stored elements as f32 (a view, or a widened copy). */
  private wide(stored: Storage): Float32Array {
    return stored instanceof Float32Array ? stored : widen(this.dtype as 'f16' | 'bf16', stored, new Float32Array(stored.length));
  }
}

/** `head` as host storage, for backends that read its arrays directly (the CPU and reference backends). */
export function hostHead(head: HeadMemory): HeadStore {
  if (!(head instanceof HeadStore)) throw new Error('this backend reads host KV memory (HeadStore); the cache was made by another backend');
  return head;
}
