/**
 * e^x on f32x4 lanes, emitted into a kernel's function body; shared by the attention softmax
 * (../attention/softmax-kernel.ts) and SwiGLU (../activation/swiglu-kernel.ts).
 *
 * Cody–Waite range reduction (n = round(x·log2 e) by the 1.5·2²³ trick, r = x − n·ln2 in two parts so n·C1 is exact),
 * a degree-7 polynomial for e^r on |r| ≤ ln2/2 (Cephes expf coefficients), then ·2ⁿ built in the exponent bits. For
 * x ≤ 0 its relative error to the exact e^x is below 2e-7 (about 1 ulp); below −87.33 (just above ln(FLT_MIN),
 * −Infinity included) it returns exactly 0, never a subnormal; NaN stays NaN. Valid for x ≤ 88.
 */
import { T, type Func } from './encoder.js';

const LOG2E = 1.4426950408889634;
const MAGIC = 12582912; // 1.5·2²³: adding it rounds an f32 of magnitude < 2²² to an integer, kept in the low bits
const MAGIC_BITS = 0x4b400000;
const C1 = 0.693359375; // ln 2, high part (9 significant bits: n·C1 is exact)
const C2 = -2.12194440e-4; // ln 2 − C1
const P = [1.98756915e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1];
/**
 * Just above ln(FLT_MIN) ≈ −87.3365: below it e^x would be subnormal and is returned as 0. The margin keeps the
 * computed value of a clamped argument normal too (subnormal arithmetic is many times slower on x86).
 */
export const EXP_MIN = -87.33;

export interface ExpLocals {
  x: number;
  t: number;
  n: number;
  r: number;
  y: number;
  /** The rounding error of x (x + err is the exact argument), used when `exact` is passed to emitExp. */
  err: number;
  /** Constants, loaded once per call into locals (V8 rebuilds a v128.const at each use). */
  k: Record<'min' | 'log2e' | 'magic' | 'c1' | 'c2' | 'one' | 'bias', number>;
  p: number[];
}

export function expLocals(f: Func): ExpLocals {
  const l: ExpLocals = {
    x: f.local(T.v128),
    t: f.local(T.v128),
    n: f.local(T.v128),
    r: f.local(T.v128),
    y: f.local(T.v128),
    err: f.local(T.v128),
    k: { min: f.local(T.v128), log2e: f.local(T.v128), magic: f.local(T.v128), c1: f.local(T.v128), c2: f.local(T.v128), one: f.local(T.v128), bias: f.local(T.v128) },
    p: P.map(() => f.local(T.v128)),
  };
  f.f32x4(EXP_MIN).set(l.k.min);
  f.f32x4(LOG2E).set(l.k.log2e);
  f.f32x4(MAGIC).set(l.k.magic);
  f.f32x4(C1).set(l.k.c1);
  f.f32x4(C2).set(l.k.c2);
  f.f32x4(1).set(l.k.one);
  f.i32x4(127 - MAGIC_BITS).set(l.k.bias);
  P.forEach((c, i) => f.f32x4(c).set(l.p[i]!));
  return l;
}

/** Pushes e^x for the f32x4 in local `l.x` (clobbers the other locals of `l`). */
export function emitExp(f: Func, l: ExpLocals, exact = false): void {
  const k = l.k;
  // xc = max(x, min) (pmax keeps NaN), t = xc·log2e + MAGIC, n = t − MAGIC
  f.get(l.x).get(k.min).v('f32x4.pmax').tee(l.r);
  f.get(k.log2e).v('f32x4.mul').get(k.magic).v('f32x4.add').tee(l.t);
  f.get(k.magic).v('f32x4.sub').set(l.n);
  // r = (xc − n·C1) − n·C2
  f.get(l.r).get(l.n).get(k.c1).v('f32x4.mul').v('f32x4.sub');
  if (exact) f.get(l.err).v('f32x4.add');
  f.get(l.n).get(k.c2).v('f32x4.mul').v('f32x4.sub').set(l.r);
  // y = poly(r)·r² + r + 1
  f.get(l.p[0]!).get(l.r).v('f32x4.mul');
  for (let i = 1; i < P.length; i++) {
    f.get(l.p[i]!).v('f32x4.add');
    if (i < P.length - 1) f.get(l.r).v('f32x4.mul');
  }
  f.get(l.r).get(l.r).v('f32x4.mul').v('f32x4.mul');
  f.get(l.r).v('f32x4.add').get(k.one).v('f32x4.add');
  // · 2ⁿ: the low bits of t hold n + MAGIC_BITS
  f.get(l.t).get(k.bias).v('i32x4.add').i32(23).v('i32x4.shl').v('f32x4.mul');
  // 0 where x < min (−Infinity included)
  f.get(l.x).get(k.min).v('f32x4.lt').v('v128.andnot');
}
