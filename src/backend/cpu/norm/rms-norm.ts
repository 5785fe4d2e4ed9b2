/**
 * RMSNorm, alone or with the residual add before it fused in, through the WebAssembly SIMD kernel of
 * rms-norm-kernel.ts when this runtime has WebAssembly SIMD, else through the loops of ../elementwise.ts.
 *
 * The kernel works in its own linear memory: the weight is copied in once per call, rows a block at a time, each
 * block small enough to stay in the L2 cache between the copies and the kernel.
 */
import * as ew from '../elementwise.js';
import { BLOCK_BYTES, floatsOf, type KernelInstance, lazyKernel } from '../wasm/instance.js';
import { buildRmsNormModule } from './rms-norm-kernel.js';

interface Exports {
  rmsNorm(x: number, weight: number, out: number, rows: number, n: number, eps: number): void;
  addRmsNorm(x: number, delta: number, weight: number, out: number, rows: number, n: number, eps: number): void;
}

const wasmKernel = lazyKernel<Exports>(buildRmsNormModule);

export function rmsNormPath(): 'wasm' | 'js' {
  return wasmKernel() ? 'wasm' : 'js';
}

/** out = x / rms(x) · weight, row by row (rows as wide as weight). */
export function rmsNorm(x: Float32Array, weight: Float32Array, eps: number, out: Float32Array): void {
  const k = wasmKernel();
  if (!k) return ew.rmsNorm(x, weight, eps, out);
  run(k, x, null, weight, eps, out);
}

/** x += delta in place, then out = rmsNorm(x). */
export function addRmsNorm(x: Float32Array, delta: Float32Array, weight: Float32Array, eps: number, out: Float32Array): void {
  const k = wasmKernel();
  if (!k) return ew.addRmsNorm(x, delta, weight, eps, out);
  run(k, x, delta, weight, eps, out);
}

function run(k: KernelInstance<Exports>, x: Float32Array, delta: Float32Array | null, weight: Float32Array, eps: number, out: Float32Array): void {
  const n = weight.length;
  const rows = x.length / n;
  const arrays = delta ? 3 : 2;
  const blockRows = Math.max(1, Math.min(rows, Math.floor(BLOCK_BYTES / (4 * arrays * n))));
  const block = blockRows * n;
  // Layout: weight, then the block's x, delta and out.
  const mem = floatsOf(k.memory, 4 * (n + arrays * block));
  const [xAt, deltaAt, outAt] = [n, n + block, n + (arrays - 1) * block];
  mem.set(weight);
  for (let r0 = 0; r0 < rows; r0 += blockRows) {
    const count = Math.min(blockRows, rows - r0) * n;
    const from = r0 * n;
    mem.set(x.subarray(from, from + count), xAt);
    if (delta) {
      mem.set(delta.subarray(from, from + count), deltaAt);
      k.exports.addRmsNorm(4 * xAt, 4 * deltaAt, 0, 4 * outAt, count / n, n, eps);
      x.set(mem.subarray(xAt, xAt + count), from);
    } else {
      k.exports.rmsNorm(4 * xAt, 0, 4 * outAt, count / n, n, eps);
    }
    out.set(mem.subarray(outAt, outAt + count), from);
  }
}
