/**
 * A kernel module instantiated over a memory of its own, as the CPU backend's row-wise SIMD kernels (activation/,
 * norm/) use it: callers copy a block of rows in, run the kernel, and copy the results out.
 */
import type { MemoryImport } from './encoder.js';

const PAGE = 65536;
const MAX_PAGES = 65536;

/** Bytes a kernel's callers copy in per block: small enough to stay in the L2 cache between copy and kernel. */
export const BLOCK_BYTES = 1 << 18;

export interface KernelInstance<E> {
  readonly memory: WebAssembly.Memory;
  readonly exports: E;
}

/** The module `build` emits, instantiated; null where this runtime cannot compile it (no WebAssembly SIMD). */
export function instantiate<E>(build: (memory: MemoryImport) => Uint8Array<ArrayBuffer>): KernelInstance<E> | null {
  try {
    const bytes = build({ initialPages: 1, maximumPages: MAX_PAGES, shared: false });
    const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES });
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
    return { memory, exports: instance.exports as E };
  } catch {
    return null;
  }
}

/** A getter that instantiates the module on first use and then returns the same instance (or null) every time. */
export function lazyKernel<E>(build: (memory: MemoryImport) => Uint8Array<ArrayBuffer>): () => KernelInstance<E> | null {
  let kernel: KernelInstance<E> | null | undefined;
  return () => {
    if (kernel === undefined) kernel = instantiate<E>(build);
    return kernel;
  };
}

/** The whole memory as f32, grown first to hold at least `bytes` (growing detaches earlier views). */
export function floatsOf(memory: WebAssembly.Memory, bytes: number): Float32Array {
  const have = memory.buffer.byteLength;
  if (bytes > have) memory.grow(Math.ceil((bytes - have) / PAGE));
  return new Float32Array(memory.buffer);
}
