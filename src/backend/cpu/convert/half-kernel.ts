/**
 * Widening of 16-bit floats (IEEE binary16 and bfloat16) to f32 as a WebAssembly SIMD kernel, emitted from
 * TypeScript at load time (../wasm/encoder.ts). Both conversions are exact: every 16-bit value is an f32 value.
 *
 * widen_f16(src, dst, n) and widen_bf16(src, dst, n): the u16 words at byte `src` become f32 at byte `dst`, eight
 * per step, so up to seven words past `n` are read and converted too (the caller leaves room and ignores them).
 *
 * binary16, four lanes at a time, without branches (the usual bit trick):
 * - the exponent and mantissa bits `h & 0x7fff`, shifted left by 13, are an f32 whose exponent is 112 too small;
 *   multiplying by 2¹¹² fixes it exactly, for normal values and for subnormals alike (a subnormal half becomes an
 *   f32 subnormal whose product with 2¹¹² is normal and exact; WebAssembly does not flush subnormals);
 * - halves with an all-ones exponent (infinities, NaNs) come out ≥ 2¹⁶ there, and get the f32 all-ones exponent
 *   ORed in, which keeps a NaN's payload (shifted) and turns 2¹⁶ into infinity;
 * - the sign bit is moved up by 16 last.
 * bfloat16 is the high half of an f32: a shift by 16.
 */
import { assemble, Func, T, type MemoryImport } from '../wasm/encoder.js';

/** Words per step of the kernel's loop (the caller pads to this). */
export const WIDEN_STEP = 8;

function widenFunc(name: string, lane: (f: Func, x: number, tmp: number) => void): Func {
  const f = new Func(name, [T.i32, T.i32, T.i32]);
  const [src, dst, n] = [0, 1, 2];
  const end = f.local(T.i32);
  const x = f.local(T.v128);
  const tmp = f.local(T.v128);
  f.get(src).get(n).i32(2).op('i32.mul').op('i32.add').set(end);
  f.while(
    () => f.get(src).get(end).op('i32.lt_s'),
    () => {
      for (let u = 0; u < WIDEN_STEP / 4; u++) {
        f.get(dst);
        f.get(src).load16x4U(8 * u).set(x);
        lane(f, x, tmp);
        f.v128Store(16 * u);
      }
      f.inc(src, 2 * WIDEN_STEP);
      f.inc(dst, 4 * WIDEN_STEP);
    },
  );
  return f;
}

/** Pushes the f32 bits of the four halves (zero-extended u16 lanes) in local `x`; `v` is scratch. */
function f16Lanes(f: Func, x: number, v: number): void {
  // (h & 0x7fff) << 13, times 2^112.
  f.get(x).i32x4(0x7fff).v('v128.and').i32(13).v('i32x4.shl');
  f.f32x4(2 ** 112).v('f32x4.mul').set(v);
  // Infinity / NaN: the all-ones exponent.
  f.get(v);
  f.get(v).f32x4(65536).v('f32x4.ge').i32x4(0x7f800000).v('v128.and');
  f.v('v128.or');
  // Sign.
  f.get(x).i32x4(0x8000).v('v128.and').i32(16).v('i32x4.shl');
  f.v('v128.or');
}

function bf16Lanes(f: Func, x: number): void {
  f.get(x).i32(16).v('i32x4.shl');
}

export function buildHalfModule(memory: MemoryImport): Uint8Array<ArrayBuffer> {
  return assemble(memory, [widenFunc('widen_f16', f16Lanes), widenFunc('widen_bf16', bf16Lanes)]);
}
