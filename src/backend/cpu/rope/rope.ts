/**
 * Rotary position embedding in place, through the WebAssembly SIMD kernel of rope-kernel.ts when this runtime has
 * WebAssembly SIMD, else through applyRope of attention/rope.ts (the reference, which it matches bit for bit).
 *
 * The kernel works in its own linear memory: rows and their cos/sin rows are copied in and out a block at a time,
 * each block small enough to stay in the L2 cache between the copies and the kernel.
 */
import { applyRope } from '../../../attention/rope.js';
import { BLOCK_BYTES, floatsOf, lazyKernel } from '../wasm/instance.js';
import { buildRopeModule } from './rope-kernel.js';

interface Exports {
  rope(x: number, cos: number, sin: number, rows: number, heads: number, headDim: number, half: number): void;
}

const wasmKernel = lazyKernel<Exports>(buildRopeModule);

export function ropePath(): 'wasm' | 'js' {
  return wasmKernel() ? 'wasm' : 'js';
}

/** Rotates `heads` heads of `headDim` in each row of x ([rows × heads·headDim]) by the rows' cos/sin tables. */
export function rope(x: Float32Array, rows: number, heads: number, headDim: number, tables: { cos: Float32Array; sin: Float32Array }): void {
  const k = wasmKernel();
  if (!k || rows === 0) return applyRope(x, rows, heads, headDim, tables);
  const width = heads * headDim;
  const half = tables.cos.length / rows;
  const blockRows = Math.max(1, Math.min(rows, Math.floor(BLOCK_BYTES / (4 * (width + 2 * half)))));
  // Layout: the block's rows, then its cos rows, then its sin rows.
  const mem = floatsOf(k.memory, 4 * blockRows * (width + 2 * half));
  const [cosAt, sinAt] = [blockRows * width, blockRows * (width + half)];
  for (let r0 = 0; r0 < rows; r0 += blockRows) {
    const n = Math.min(blockRows, rows - r0);
    mem.set(x.subarray(r0 * width, (r0 + n) * width));
    mem.set(tables.cos.subarray(r0 * half, (r0 + n) * half), cosAt);
    mem.set(tables.sin.subarray(r0 * half, (r0 + n) * half), sinAt);
    k.exports.rope(0, 4 * cosAt, 4 * sinAt, n, heads, headDim, half);
    x.set(mem.subarray(0, n * width), r0 * width);
  }
}
