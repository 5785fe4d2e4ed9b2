/**
 * silu(gate) · up over a fused [rows × 2·inner] projection, through the WebAssembly SIMD kernel of swiglu-kernel.ts
 * when this runtime has WebAssembly SIMD, else through the Math.exp loop of ../elementwise.ts (the reference).
 *
 * The kernel works in its own linear memory: rows are copied in and out a block at a time, each block small enough
 * to stay in the L2 cache between the copy in, the kernel and the copy out.
 */
import { swiglu as swigluJs } from '../elementwise.js';
import { BLOCK_BYTES, floatsOf, lazyKernel } from '../wasm/instance.js';
import { buildSwigluModule } from './swiglu-kernel.js';

export type SwigluPath = 'wasm' | 'js';

interface Exports {
  swiglu(src: number, dst: number, rows: number, inner: number): void;
}

const wasmKernel = lazyKernel<Exports>(buildSwigluModule);

export function swigluPath(): SwigluPath {
  return wasmKernel() ? 'wasm' : 'js';
}

/** out[r, i] = silu(gateUp[r, i]) · gateUp[r, inner + i]. */
export function swiglu(gateUp: Float32Array, rows: number, inner: number, out: Float32Array): void {
  const k = wasmKernel();
  if (!k) return swigluJs(gateUp, rows, inner, out);
  const blockRows = Math.max(1, Math.min(rows, Math.floor(BLOCK_BYTES / (12 * inner))));
  const mem = floatsOf(k.memory, blockRows * 12 * inner);
  const outAt = blockRows * 2 * inner;
  for (let r0 = 0; r0 < rows; r0 += blockRows) {
    const n = Math.min(blockRows, rows - r0);
    mem.set(gateUp.subarray(r0 * 2 * inner, (r0 + n) * 2 * inner));
    k.exports.swiglu(0, outAt * 4, n, inner);
    out.set(mem.subarray(outAt, outAt + n * inner), r0 * inner);
  }
}
