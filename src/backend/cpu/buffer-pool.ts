/**
 * Reusable f32 buffers for the activations that CPU backend ops return, handed out inside scopes (Backend.scope).
 *
 * A fresh Float32Array costs its first touch (page faults: on the reference VM they halve OpenBLAS sgemm speed on
 * a new output) and later garbage collection. Inside a scope, allocations come from free lists instead; when the
 * scope ends, every buffer it handed out goes back to them, except those backing the tensors it returns, which
 * pass to the enclosing scope (or, from the outermost one, leave the pool for good). Outside any scope, allocation
 * is a plain new Float32Array, so callers that never open a scope see no change.
 */
import { Tensor } from '../../tensor/tensor.js';

/** Free buffers kept beyond this many bytes are left to the garbage collector. */
const MAX_FREE_BYTES = 256 * 2 ** 20;

/** Size classes of 2^k·{1, 1.25, 1.5, 1.75} elements: a buffer serves requests of up to 25% less. */
function sizeClass(n: number): number {
  if (n <= 16) return 16;
  const top = 2 ** Math.floor(Math.log2(n));
  const step = top / 4;
  return Math.ceil(n / step) * step;
}

export class BufferPool {
  private readonly free = new Map<number, Float32Array[]>();
  private freeBytes = 0;
  /** Buffers handed out by each open scope, innermost last. */
  private readonly scopes: Float32Array[][] = [];

  /** n floats: a recycled buffer's prefix inside a scope (contents arbitrary), else a fresh zeroed array. */
  alloc(n: number): Float32Array {
    const scope = this.scopes[this.scopes.length - 1];
    if (!scope) return new Float32Array(n);
    const size = sizeClass(n);
    let buffer = this.free.get(size)?.pop();
    if (buffer) this.freeBytes -= buffer.byteLength;
    else buffer = new Float32Array(size);
    scope.push(buffer);
    return buffer.length === n ? buffer : buffer.subarray(0, n);
  }

  /** Runs fn in a scope; see the file comment. If fn throws, the scope's buffers are dropped, not recycled. */
  scope<R extends Tensor | Tensor[] | void>(fn: () => R): R {
    const mine: Float32Array[] = [];
    this.scopes.push(mine);
    let result: R;
    try {
      result = fn();
    } finally {
      this.scopes.pop();
    }
    const kept = new Set<ArrayBufferLike>();
    for (const t of result instanceof Tensor ? [result] : Array.isArray(result) ? result : []) kept.add(t.data.buffer);
    const parent = this.scopes[this.scopes.length - 1];
    for (const buffer of mine) {
      if (kept.has(buffer.buffer)) parent?.push(buffer);
      else this.release(buffer);
    }
    return result;
  }

  private release(buffer: Float32Array): void {
    if (this.freeBytes + buffer.byteLength > MAX_FREE_BYTES) return;
    const list = this.free.get(buffer.length);
    if (list) list.push(buffer);
    else this.free.set(buffer.length, [buffer]);
    this.freeBytes += buffer.byteLength;
  }
}
