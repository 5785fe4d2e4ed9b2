/**
 * The CUDA backend's HeadMemory: one KV head's keys and values in device memory (rows of headDim in the cache's
 * storage type), its entries' original positions both on the device (what the attention kernel searches) and on
 * the host (what policies read), and the per-entry press statistics on the host, as HeadStore keeps them. `keep`
 * gathers the kept rows into blocks of exactly that size and gives the old ones back, so dropped entries free their
 * memory here too. Growth leaves room as HeadStore does (an eighth, 16 to 256 entries).
 *
 * Host round trips, named: keys()/values() copy rows out (presses that score on the host read them so); renumber
 * with a rotation turns keys on the host and writes them back (key rerotation, rare). Key-channel pruning is not
 * offered yet (HeadMemory.pruneKeyChannels is optional: ThinK refuses a cache without it).
 */
import { applyRope } from '../../attention/rope.js';
import { countUpTo } from '../../cache/positions.js';
import { headChecks, type HeadMemory } from '../../cache/head-memory.js';
import { BYTES_PER_ELEMENT, type DType } from '../../tensor/dtype.js';
import type { CudaContext } from './context.js';
import type { Block } from './memory.js';

const GROW_MIN = 16;
const GROW_MAX = 256;

export class DeviceHeadMemory implements HeadMemory {
  length = 0;
  private hostPositions = new Int32Array(0);
  /**
   * The device blocks, in an object of their own that the context's registry frees once this head is
   * garbage-collected (a cache that goes out of use gives its device memory back).
   */
  private readonly own: { k: Block | null; v: Block | null; p: Block | null } = { k: null, v: null, p: null };
  private readonly statData = new Map<string, Float32Array>();
  private cap = 0;

  constructor(
    private readonly ctx: CudaContext,
    readonly headDim: number,
    readonly dtype: DType,
  ) {
    ctx.heads.register(this, this.own);
  }

  private get keyBlock(): Block | null {
    return this.own.k;
  }

  private get valueBlock(): Block | null {
    return this.own.v;
  }

  private get positionBlock(): Block | null {
    return this.own.p;
  }

  private set3(k: Block, v: Block, p: Block): void {
    this.freeBlocks();
    Object.assign(this.own, { k, v, p });
  }

  get capacity(): number {
    return this.cap;
  }

  get positions(): Int32Array {
    return this.hostPositions.subarray(0, this.length);
  }

  /** Device addresses the kernels read: keys, values, positions (0 while nothing is allocated). */
  get keyPtr(): number {
    return this.keyBlock?.ptr ?? 0;
  }

  get valuePtr(): number {
    return this.valueBlock?.ptr ?? 0;
  }

  get positionPtr(): number {
    return this.positionBlock?.ptr ?? 0;
  }

  private get rowBytes(): number {
    return this.headDim * BYTES_PER_ELEMENT[this.dtype];
  }

  bytes(): number {
    let stats = 0;
    for (const s of this.statData.values()) stats += s.byteLength;
    return this.cap * (2 * this.rowBytes + 4) + stats;
  }

  liveBytes(): number {
    return this.length * (2 * this.rowBytes + 4 + 4 * this.statData.size);
  }

  stat(name: string): Float32Array {
    let s = this.statData.get(name);
    if (!s) {
      s = new Float32Array(this.cap);
      this.statData.set(name, s);
    }
    return s.subarray(0, this.length);
  }

  hasStat(name: string): boolean {
    return this.statData.has(name);
  }

  /** Room for `needed` entries, growing by copying on the device. */
  reserve(needed: number): void {
    if (needed <= this.cap) return;
    const grow = Math.min(GROW_MAX, Math.max(GROW_MIN, this.cap >> 3));
    this.resize(Math.max(needed, this.cap + grow));
  }

  private resize(capacity: number): void {
    const { alloc, driver } = this.ctx;
    const [k, v, p] = [alloc.persistent(capacity * this.rowBytes), alloc.persistent(capacity * this.rowBytes), alloc.persistent(capacity * 4)];
    const n = Math.min(this.length, capacity);
    if (this.keyBlock) {
      driver.copy(k.ptr, this.keyBlock.ptr, n * this.rowBytes);
      driver.copy(v.ptr, this.valueBlock!.ptr, n * this.rowBytes);
      driver.copy(p.ptr, this.positionBlock!.ptr, n * 4);
    }
    this.set3(k, v, p);
    const positions = new Int32Array(capacity);
    positions.set(this.hostPositions.subarray(0, n));
    this.hostPositions = positions;
    for (const [name, s] of this.statData) {
      const grown = new Float32Array(capacity);
      grown.set(s.subarray(0, n));
      this.statData.set(name, grown);
    }
    this.cap = capacity;
  }

  private freeBlocks(): void {
    for (const b of [this.own.k, this.own.v, this.own.p]) if (b) this.ctx.alloc.release(b);
    Object.assign(this.own, { k: null, v: null, p: null });
  }

  /** After the backend wrote `count` rows at [length, length+count) on the device: the host side follows. */
  appended(positions: Int32Array): void {
    if (positions.length > 0 && this.length > 0 && positions[0] <= this.hostPositions[this.length - 1]) {
      throw new Error('cache entries must be appended in increasing position order');
    }
    this.hostPositions.set(positions, this.length);
    this.length += positions.length;
  }

  keys(start: number, count: number, scratch?: Float32Array): Float32Array {
    return this.read(this.keyBlock, start, count, scratch);
  }

  values(start: number, count: number, scratch?: Float32Array): Float32Array {
    return this.read(this.valueBlock, start, count, scratch);
  }

  private read(block: Block | null, start: number, count: number, scratch?: Float32Array): Float32Array {
    const n = count * this.headDim;
    const out = scratch && scratch.length >= n ? scratch.subarray(0, n) : new Float32Array(n);
    if (count === 0 || !block) return out;
    this.ctx.readRows(block.ptr + start * this.rowBytes, this.dtype, out);
    return out;
  }

  keep(indices: ArrayLike<number>): void {
    const n = indices.length;
    headChecks.indices('keep', indices, this.length);
    const { alloc } = this.ctx;
    const idx = Int32Array.from(indices);
    const [k, v, p] = [alloc.persistent(n * this.rowBytes), alloc.persistent(n * this.rowBytes), alloc.persistent(n * 4)];
    if (n > 0) this.ctx.gatherRows(this.dtype, this.keyBlock!.ptr, this.valueBlock!.ptr, this.positionBlock!.ptr, k.ptr, v.ptr, p.ptr, idx, this.headDim);
    this.set3(k, v, p);
    this.hostPositions = Int32Array.from(idx, (j) => this.hostPositions[j]);
    for (const [name, s] of this.statData) this.statData.set(name, Float32Array.from(idx, (j) => s[j]));
    this.length = n;
    this.cap = n;
  }

  writeValues(indices: ArrayLike<number>, rows: Float32Array): void {
    this.write('writeValues', this.valueBlock, indices, rows);
  }

  writeKeys(indices: ArrayLike<number>, rows: Float32Array): void {
    this.write('writeKeys', this.keyBlock, indices, rows);
  }

  private write(what: string, block: Block | null, indices: ArrayLike<number>, rows: Float32Array): void {
    const d = this.headDim;
    headChecks.rows(what, indices, rows, d, this.length);
    if (indices.length > 0) this.ctx.scatterRows(this.dtype, block!.ptr, Int32Array.from(indices), rows, d);
  }

  renumber(positions: ArrayLike<number>, rotation?: { cos: Float32Array; sin: Float32Array }): void {
    const n = this.length;
    headChecks.renumber(positions, n, this.headDim, rotation);
    if (rotation && n > 0) {
      const keys = this.keys(0, n);
      applyRope(keys, n, 1, this.headDim, rotation);
      this.ctx.scatterRows(this.dtype, this.keyBlock!.ptr, Int32Array.from({ length: n }, (_, i) => i), keys, this.headDim);
    }
    for (let i = 0; i < n; i++) this.hostPositions[i] = positions[i];
    if (n > 0) this.ctx.driver.upload(this.positionBlock!.ptr, this.hostPositions.subarray(0, n));
  }

  truncate(position: number): void {
    headChecks.truncate(position);
    const n = this.visibleUpTo(position - 1);
    for (const s of this.statData.values()) s.fill(0, n, this.length);
    this.length = n;
  }

  visibleUpTo(position: number): number {
    return countUpTo(this.hostPositions, position, this.length);
  }

  clone(): DeviceHeadMemory {
    const copy = new DeviceHeadMemory(this.ctx, this.headDim, this.dtype);
    copy.resize(this.length);
    const { driver } = this.ctx;
    if (this.length > 0) {
      driver.copy(copy.keyBlock!.ptr, this.keyBlock!.ptr, this.length * this.rowBytes);
      driver.copy(copy.valueBlock!.ptr, this.valueBlock!.ptr, this.length * this.rowBytes);
      driver.copy(copy.positionBlock!.ptr, this.positionBlock!.ptr, this.length * 4);
    }
    copy.hostPositions.set(this.positions);
    for (const [name, s] of this.statData) copy.statData.set(name, s.slice(0, this.length));
    copy.length = this.length;
    return copy;
  }
}
