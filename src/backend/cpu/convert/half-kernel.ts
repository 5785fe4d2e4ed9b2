/**
 * Widening of 16-bit floats (IEEE binary16 and bfloat16) to f32 as a WebAssembly SIMD kernel, emitted from
 * TypeScript at load time (../wasm/encoder.ts). Both conversions are exact: every 16-bit value is an f32 value.
 *
 * widen_f16(src, dst, n) and widen_bf16(src, dst, n): the u16 words at byte `src` become f32 at byte `dst`, eight
 * per step, so up to seven words past `n` are read and converted too (the caller leaves room and ignores them).
 *
 * binary16, four lanes at a time, without branches and in integer operations but for one exact f32 subtraction (see
 * f16Func). The familiar trick of multiplying (h & 0x7fff) << 13 by 2^112 is a little shorter but gives a
 * subnormal f32 operand for every subnormal half, and x86 takes a microcode assist of ~100 cycles on each: a 16-bit
 * cache with 1 subnormal in 31 widened twice as slowly that way.
 * bfloat16 is the high half of an f32: a shift by 16.
 */
import { assemble, Func, T, type MemoryImport } from '../wasm/encoder.js';

/** Words per step of the kernel's loop (the caller pads to this). */
export const WIDEN_STEP = 8;

/**
 * The loop over words, eight per step. `prologue` runs first (constants into locals, outside the loop, so that V8
 * keeps them in registers); `lane` then pushes the f32 bits of the four zero-extended u16 lanes in local x.
 */
function widenFunc<C>(name: string, prologue: (f: Func) => C, lane: (f: Func, x: number, c: C) => void): Func {
  const f = new Func(name, [T.i32, T.i32, T.i32]);
  const [src, dst, n] = [0, 1, 2];
  const end = f.local(T.i32);
  const x = f.local(T.v128);
  const c = prologue(f);
  f.get(src).get(n).i32(2).op('i32.mul').op('i32.add').set(end);
  f.while(
    () => f.get(src).get(end).op('i32.lt_s'),
    () => {
      for (let u = 0; u < WIDEN_STEP / 4; u++) {
        f.get(dst);
        f.get(src).load16x4U(8 * u).set(x);
        lane(f, x, c);
        f.v128Store(16 * u);
      }
      f.inc(src, 2 * WIDEN_STEP);
      f.inc(dst, 4 * WIDEN_STEP);
    },
  );
  return f;
}

/** A v128 local set to four i32 lanes of `v`. */
function constant(f: Func, v: number): number {
  const c = f.local(T.v128);
  f.i32x4(v).set(c);
  return c;
}

/**
 * binary16 → f32 in integer operations, with one exact f32 subtraction for subnormals (no subnormal f32 is ever an
 * operand: x86 takes a slow microcode assist on those, which a multiply-by-2^112 trick would hit on every subnormal
 * half):
 *   t = (h & 0x7fff) << 13;  o = t + (112 << 23)                       exponent rebiased, right for normal halves
 *   all-ones exponent (inf, NaN): o += 112 << 23                        the f32 all-ones exponent, payload kept
 *   zero exponent (±0, subnormal): o = f32(o + (1 << 23)) − 2^−14        2^−14·(1 + m/1024) − 2^−14 = m·2^−24, exact
 *   o |= (h & 0x8000) << 16
 */
function f16Func(): Func {
  return widenFunc(
    'widen_f16',
    (f) => ({
      mag: constant(f, 0x7fff),
      expMask: constant(f, 0x0f800000),
      bias: constant(f, 112 << 23),
      one: constant(f, 1 << 23),
      min: constant(f, 113 << 23), // 2^-14 as f32 bits
      sign: constant(f, 0x8000),
      zero: constant(f, 0),
      t: f.local(T.v128),
      e: f.local(T.v128),
      o: f.local(T.v128),
    }),
    (f, x, k) => {
      f.get(x).get(k.mag).v('v128.and').i32(13).v('i32x4.shl').tee(k.t);
      f.get(k.expMask).v('v128.and').set(k.e);
      f.get(k.t).get(k.bias).v('i32x4.add');
      f.get(k.e).get(k.expMask).v('i32x4.eq').get(k.bias).v('v128.and');
      f.v('i32x4.add').set(k.o);
      // bitselect(subnormal result, o, e == 0)
      f.get(k.o).get(k.one).v('i32x4.add').get(k.min).v('f32x4.sub');
      f.get(k.o);
      f.get(k.e).get(k.zero).v('i32x4.eq');
      f.v('v128.bitselect');
      f.get(x).get(k.sign).v('v128.and').i32(16).v('i32x4.shl');
      f.v('v128.or');
    },
  );
}

function bf16Func(): Func {
  return widenFunc('widen_bf16', () => null, (f, x) => {
    f.get(x).i32(16).v('i32x4.shl');
  });
}

export function buildHalfModule(memory: MemoryImport): Uint8Array<ArrayBuffer> {
  return assemble(memory, [f16Func(), bf16Func()]);
}
