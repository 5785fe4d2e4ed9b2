/**
 * 16-bit float storage (f16, bf16) widened to f32, through the WebAssembly SIMD kernel of half-kernel.ts when this
 * runtime has WebAssembly SIMD, else through `widen` of src/tensor/dtype.ts (the reference, which it matches bit for
 * bit, NaN payloads included).
 *
 * This is what the CPU attention reads a 16-bit KV cache through, once per head and step. The kernel works in its
 * own linear memory: words are copied in and f32 out a block at a time, each block small enough to stay in the L2
 * cache between the copies and the kernel.
 */
import { widen } from '../../../tensor/dtype.js';
import { BLOCK_BYTES, floatsOf, lazyKernel } from '../wasm/instance.js';
import { buildHalfModule, WIDEN_STEP } from './half-kernel.js';

interface Exports {
  widen_f16(src: number, dst: number, n: number): void;
  widen_bf16(src: number, dst: number, n: number): void;
}

const wasmKernel = lazyKernel<Exports>(buildHalfModule);

/** Words per block: 2 bytes in and 4 out each, a multiple of the kernel's step. */
const BLOCK_WORDS = Math.floor(BLOCK_BYTES / 6 / WIDEN_STEP) * WIDEN_STEP;

export function widenPath(): 'wasm' | 'js' {
  return wasmKernel() ? 'wasm' : 'js';
}

/** Widens `words` (f16 or bf16 bit patterns) into `out` (at least as long) and returns `out`'s first words.length. */
export function widenHalf(dtype: 'f16' | 'bf16', words: Uint16Array, out: Float32Array): Float32Array {
  const n = words.length;
  const result = out.length === n ? out : out.subarray(0, n);
  const k = wasmKernel();
  if (!k || n === 0) return widen(dtype, words, result);
  const block = Math.min(BLOCK_WORDS, Math.ceil(n / WIDEN_STEP) * WIDEN_STEP);
  // Layout: the block's words, then its floats.
  const floats = floatsOf(k.memory, 6 * block);
  const halves = new Uint16Array(floats.buffer, 0, block);
  const outAt = block / 2;
  const fn = dtype === 'f16' ? k.exports.widen_f16 : k.exports.widen_bf16;
  for (let i0 = 0; i0 < n; i0 += block) {
    const m = Math.min(block, n - i0);
    halves.set(words.subarray(i0, i0 + m));
    fn(0, 4 * outAt, m);
    result.set(floats.subarray(outAt, outAt + m), i0);
  }
  return result;
}
