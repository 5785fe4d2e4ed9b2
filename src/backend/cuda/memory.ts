/**
 * Device memory: a caching allocator over cuMemAlloc (which is slow, and whose cuMemFree waits for the whole device),
 * and the backend's scopes over it. Blocks come in size classes (2^k·{1, 1.25, 1.5, 1.75} bytes, at least 512) and
 * go back to per-class free lists; they are reused by later work on the same stream, which the stream orders after
 * every earlier use, so a block freed by the host while kernels still read it is safe to hand out again.
 *
 * Scopes (Backend.scope): blocks allocated inside one go back when it ends, except those under the tensors it
 * returns, which pass to the enclosing scope. Blocks allocated outside any scope (weights, caches, tensors a caller
 * uploads) stay until released explicitly or, for tensors, until the tensor is garbage-collected.
 */
import { Tensor } from '../../tensor/tensor.js';
import type { CudaDriver } from './driver.js';

export interface Block {
  readonly device: 'cuda';
  readonly ptr: number;
  /** Bytes of the size class (≥ the bytes asked). */
  readonly bytes: number;
  released: boolean;
}

function sizeClass(n: number): number {
  if (n <= 512) return 512;
  const top = 2 ** Math.floor(Math.log2(n));
  const step = top / 4;
  return Math.ceil(n / step) * step;
}

export class DeviceAllocator {
  /** Free device addresses per size class. */
  private readonly free = new Map<number, number[]>();
  private readonly scopes: Block[][] = [];
  /**
   * Blocks outside scopes go back once no tensor refers to them: the registry watches the Block object itself, which
   * every tensor over it (reshapes included) holds.
   */
  private readonly collector = new FinalizationRegistry<{ ptr: number; bytes: number }>((b) => this.putBack(b.ptr, b.bytes));
  /** Bytes obtained from the driver, and of those the bytes handed out now. */
  reservedBytes = 0;
  usedBytes = 0;
  peakUsedBytes = 0;

  constructor(private readonly driver: CudaDriver) {}

  /** A block of at least `bytes` (contents arbitrary); inside a scope it goes back when the scope ends. */
  alloc(bytes: number): Block {
    const size = sizeClass(bytes);
    let ptr = this.free.get(size)?.pop();
    if (ptr === undefined) {
      ptr = this.allocFresh(size);
      this.reservedBytes += size;
    }
    const block: Block = { device: 'cuda', ptr, bytes: size, released: false };
    this.usedBytes += size;
    this.peakUsedBytes = Math.max(this.peakUsedBytes, this.usedBytes);
    this.scopes[this.scopes.length - 1]?.push(block);
    return block;
  }

  /** A block outside every scope, given back only by release (the KV memory's). */
  persistent(bytes: number): Block {
    const scopes = this.scopes.splice(0);
    try {
      return this.alloc(bytes);
    } finally {
      this.scopes.push(...scopes);
    }
  }

  private allocFresh(size: number): number {
    try {
      return this.driver.alloc(size);
    } catch (e) {
      // Out of memory: give the cached free blocks back to the driver and try once more.
      if (!this.trim()) throw e;
      return this.driver.alloc(size);
    }
  }

  /**
   * A tensor over a fresh block: scoped inside a scope, else given back once no tensor over it is left (`permanent`:
   * never, for weights).
   */
  tensor(shape: readonly number[], dtype: 'f32' | 'f16' | 'bf16' = 'f32', permanent = false): Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    const block = this.alloc(n * (dtype === 'f32' ? 4 : 2));
    if (this.scopes.length === 0 && !permanent) this.watch(block);
    return new Tensor(shape, block, dtype);
  }

  private watch(block: Block): void {
    this.collector.register(block, { ptr: block.ptr, bytes: block.bytes }, block);
  }

  release(block: Block): void {
    if (block.released) return;
    block.released = true;
    this.collector.unregister(block);
    this.putBack(block.ptr, block.bytes);
  }

  private putBack(ptr: number, bytes: number): void {
    this.usedBytes -= bytes;
    const list = this.free.get(bytes);
    if (list) list.push(ptr);
    else this.free.set(bytes, [ptr]);
  }

  /** Frees every cached block to the driver (after the device is idle); returns whether any was freed. */
  trim(): boolean {
    let any = false;
    this.driver.synchronize();
    for (const [bytes, list] of this.free) {
      this.reservedBytes -= bytes * list.length;
      for (const ptr of list) {
        this.driver.free(ptr);
        any = true;
      }
    }
    this.free.clear();
    return any;
  }

  scope<R extends Tensor | Tensor[] | void>(fn: () => R): R {
    const mine: Block[] = [];
    this.scopes.push(mine);
    let result: R;
    try {
      result = fn();
    } catch (e) {
      this.scopes.pop();
      for (const b of mine) this.release(b);
      throw e;
    }
    this.scopes.pop();
    const kept = new Set<number>();
    for (const t of result instanceof Tensor ? [result] : Array.isArray(result) ? result : []) if (t.device) kept.add(t.device.ptr);
    const parent = this.scopes[this.scopes.length - 1];
    for (const b of mine) {
      if (!kept.has(b.ptr)) this.release(b);
      else if (parent) parent.push(b);
      else this.watch(b);
    }
    return result;
  }
}

type HostArray = Int32Array | Float32Array;

/**
 * Host arrays kept on the device while the same arrays, unchanged, come back: a forward's positions and RoPE tables,
 * which every layer passes again. `of(a, b, …)` returns the device address of their bytes one after the other; a
 * different set (or a changed array) replaces the last one and gives its block back.
 */
export class DeviceMirror {
  private last: { arrays: HostArray[]; copies: HostArray[]; block: Block } | undefined;

  constructor(
    private readonly alloc: DeviceAllocator,
    private readonly driver: CudaDriver,
  ) {}

  of(...arrays: HostArray[]): number {
    const l = this.last;
    if (l && this.holds(l, arrays)) return l.block.ptr;
    if (l) this.alloc.release(l.block);
    const bytes = new Uint8Array(arrays.reduce((n, a) => n + a.byteLength, 0));
    let at = 0;
    for (const a of arrays) {
      bytes.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), at);
      at += a.byteLength;
    }
    const block = this.alloc.persistent(Math.max(4, bytes.byteLength));
    this.driver.upload(block.ptr, bytes);
    this.last = { arrays, copies: arrays.map((a) => a.slice()), block };
    return block.ptr;
  }

  /** Whether `last` holds these very arrays with these contents (plain loops: it runs for every layer). */
  private holds(last: { arrays: HostArray[]; copies: HostArray[] }, arrays: HostArray[]): boolean {
    if (last.arrays.length !== arrays.length) return false;
    for (let i = 0; i < arrays.length; i++) {
      const [a, c] = [arrays[i], last.copies[i]];
      if (last.arrays[i] !== a || c.length !== a.length) return false;
      for (let j = 0; j < a.length; j++) if (c[j] !== a[j]) return false;
    }
    return true;
  }
}
