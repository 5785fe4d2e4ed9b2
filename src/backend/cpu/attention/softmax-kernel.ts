/**
 * The attention softmax as a WebAssembly SIMD kernel, emitted from TypeScript at load time (../wasm/encoder.ts).
 *
 * exp: the f32x4 e^x of ../wasm/exp.ts (about 1 ulp for x ≤ 0, exactly 0 below −87.33, never a subnormal).
 *
 * softmax(base, rows, cols, ranges, sums, normalize): for each row r of a rows × cols f32 matrix at byte `base`, with
 * live range [lo, hi) = Int32 pairs at `ranges`: zeroes the columns outside it, takes the max over it, writes
 * e^(x − max) there — x − max taken exactly (TwoSum) so that small probabilities keep their relative accuracy — and
 * sums them (pairs of lanes in f32, then in f64), stores 1/sum as an f64 at `sums` + 8r (0 for an empty range), and
 * when `normalize` ≠ 0 multiplies the live entries by it. Terms with x − max < −87.33 + ln 2·⌈log2 len⌉ (e^(x − max)
 * below about 1.2e-38·len, so that the normalised probability would be subnormal) are set to 0: subnormal arithmetic
 * costs x86 cores a hundred cycles or more, here and in the P·V product, and such a term is below 2^-126 of the sum.
 */
import { assemble, Func, T, type MemoryImport } from '../wasm/encoder.js';
import { emitExp, EXP_MIN, expLocals, type ExpLocals } from '../wasm/exp.js';
import { emitLoadPartial, emitStorePartial } from '../wasm/lanes.js';

/**
 * l.x = a + nm rounded and l.err = its rounding error (Knuth's TwoSum, branch-free), for the f32x4 in local `a` and
 * `nm` = −max: x − max is then exact as l.x + l.err, and so are the small probabilities far below the max.
 */
function emitDiff(f: Func, l: ExpLocals, a: number, nm: number): void {
  f.get(a).get(nm).v('f32x4.add').tee(l.x);
  f.get(a).v('f32x4.sub').set(l.t); // bb = s − a
  f.get(a).get(l.x).get(l.t).v('f32x4.sub').v('f32x4.sub'); // a − (s − bb)
  f.get(nm).get(l.t).v('f32x4.sub').v('f32x4.add').set(l.err); // + (b − bb)
}

/** exp(src, dst, n): dst[i] = e^src[i] for n f32 (byte offsets); for tests of the exp itself. */
function expFunc(): Func {
  const f = new Func('exp', [T.i32, T.i32, T.i32]);
  const [src, dst, n] = [0, 1, 2];
  const l = expLocals(f);
  f.while(
    () => f.get(n).i32(4).op('i32.ge_s'),
    () => {
      f.get(src).v128Load().set(l.x);
      f.get(dst);
      emitExp(f, l);
      f.v128Store();
      f.inc(src, 16).inc(dst, 16).inc(n, -4);
    },
  );
  f.get(n).i32(0).op('i32.gt_s').if(() => {
    emitLoadPartial(f, src, n, 0, l.x);
    emitExp(f, l);
    f.set(l.y);
    emitStorePartial(f, dst, n, l.y);
  });
  return f;
}

/** f64x2 accumulators += the four lanes of the f32x4 in local `v` (low pair into a0, high pair into a1). */
function emitAccumulate(f: Func, v: number, a0: number, a1: number): void {
  f.get(a0).get(v).v('f64x2.promote_low_f32x4').v('f64x2.add').set(a0);
  f.get(a1).get(v).get(v).shuffle([8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]).v('f64x2.promote_low_f32x4').v('f64x2.add').set(a1);
}

/** Zeroes f32 from byte `from` to byte `to` (locals; `from` is clobbered). */
function emitZero(f: Func, from: number, to: number): void {
  f.while(
    () => f.get(from).i32(16).op('i32.add').get(to).op('i32.le_s'),
    () => {
      f.get(from).v128Zero().v128Store();
      f.inc(from, 16);
    },
  );
  f.while(
    () => f.get(from).get(to).op('i32.lt_s'),
    () => {
      f.get(from).f32(0).f32Store();
      f.inc(from, 4);
    },
  );
}

function softmaxFunc(): Func {
  const f = new Func('softmax', [T.i32, T.i32, T.i32, T.i32, T.i32, T.i32]);
  const [base, rows, cols, ranges, sums, normalize] = [0, 1, 2, 3, 4, 5];
  const row = f.local(T.i32); // byte offset of the row
  const rowBytes = f.local(T.i32);
  const r = f.local(T.i32);
  const a = f.local(T.i32); // live start (bytes)
  const e = f.local(T.i32); // live end (bytes)
  const i = f.local(T.i32);
  const z = f.local(T.i32);
  const rem = f.local(T.i32);
  const mx = f.local(T.f32);
  const inv = f.local(T.f64);
  const m0 = f.local(T.v128);
  const m1 = f.local(T.v128);
  const vm = f.local(T.v128);
  const acc0 = f.local(T.v128);
  const acc1 = f.local(T.v128);
  const y0 = f.local(T.v128);
  const y1 = f.local(T.v128);
  const l = expLocals(f);

  f.get(cols).i32(4).op('i32.mul').set(rowBytes);
  f.get(base).set(row);
  f.i32(0).set(r);
  f.while(
    () => f.get(r).get(rows).op('i32.lt_s'),
    () => {
      f.get(ranges).i32Load(0).i32(4).op('i32.mul').get(row).op('i32.add').set(a);
      f.get(ranges).i32Load(4).i32(4).op('i32.mul').get(row).op('i32.add').set(e);
      // zero [row, a) and [e, row + rowBytes)
      f.get(row).set(z);
      emitZero(f, z, a);
      f.get(e).set(z);
      f.get(row).get(rowBytes).op('i32.add').set(i);
      emitZero(f, z, i);
      f.get(e).get(a).op('i32.gt_s').if(
        () => {
          // max
          f.f32x4(-Infinity).tee(m0).set(m1);
          f.get(a).set(i);
          f.while(
            () => f.get(i).i32(32).op('i32.add').get(e).op('i32.le_s'),
            () => {
              f.get(m0).get(i).v128Load(0).v('f32x4.pmax').set(m0);
              f.get(m1).get(i).v128Load(16).v('f32x4.pmax').set(m1);
              f.inc(i, 32);
            },
          );
          f.get(i).i32(16).op('i32.add').get(e).op('i32.le_s').if(() => {
            f.get(m0).get(i).v128Load(0).v('f32x4.pmax').set(m0);
            f.inc(i, 16);
          });
          f.get(m0).get(m1).v('f32x4.pmax').set(m0);
          f.get(m0).f32x4Extract(0).get(m0).f32x4Extract(1).op('f32.max');
          f.get(m0).f32x4Extract(2).get(m0).f32x4Extract(3).op('f32.max').op('f32.max').set(mx);
          f.while(
            () => f.get(i).get(e).op('i32.lt_s'),
            () => {
              f.get(mx).get(i).f32Load().op('f32.max').set(mx);
              f.inc(i, 4);
            },
          );
          f.get(mx).f32(-1).op('f32.mul').v('f32x4.splat').set(vm); // −max
          // Flush to 0 what would become subnormal once divided by Σ ≤ len: x − max < EXP_MIN + ln 2·⌈log2 len⌉.
          f.i32(32).get(e).get(a).op('i32.sub').i32(2).op('i32.shr_u').i32(1).op('i32.sub').op('i32.clz').op('i32.sub');
          f.op('f32.convert_i32_s').f32(Math.LN2).op('f32.mul').f32(EXP_MIN).op('f32.add').v('f32x4.splat').set(l.k.min);
          // exp and sum
          f.f64(0).v('f64x2.splat').tee(acc0).set(acc1);
          f.get(a).set(i);
          f.while(
            () => f.get(i).i32(32).op('i32.add').get(e).op('i32.le_s'),
            () => {
              f.get(i).v128Load(0).set(y0);
              emitDiff(f, l, y0, vm);
              emitExp(f, l, true);
              f.set(y0);
              f.get(i).v128Load(16).set(y1);
              emitDiff(f, l, y1, vm);
              emitExp(f, l, true);
              f.set(y1);
              f.get(i).get(y0).v128Store(0);
              f.get(i).get(y1).v128Store(16);
              f.get(y0).get(y1).v('f32x4.add').set(y0);
              emitAccumulate(f, y0, acc0, acc1);
              f.inc(i, 32);
            },
          );
          f.get(i).i32(16).op('i32.add').get(e).op('i32.le_s').if(() => {
            f.get(i).v128Load(0).set(y0);
            emitDiff(f, l, y0, vm);
            emitExp(f, l, true);
            f.set(y0);
            f.get(i).get(y0).v128Store(0);
            emitAccumulate(f, y0, acc0, acc1);
            f.inc(i, 16);
          });
          f.get(e).get(i).op('i32.sub').i32(2).op('i32.shr_u').set(rem);
          f.get(rem).if(() => {
            emitLoadPartial(f, i, rem, -Infinity, y1);
            emitDiff(f, l, y1, vm);
            emitExp(f, l, true);
            f.set(y0);
            emitStorePartial(f, i, rem, y0);
            emitAccumulate(f, y0, acc0, acc1);
          });
          f.get(acc0).get(acc1).v('f64x2.add').tee(acc0).f64x2Extract(0).get(acc0).f64x2Extract(1).op('f64.add');
          f.set(inv);
          f.f64(1).get(inv).op('f64.div').set(inv);
          f.get(sums).get(inv).f64Store();
          f.get(normalize).if(() => {
            f.get(inv).op('f32.demote_f64').v('f32x4.splat').set(vm);
            f.get(a).set(i);
            f.while(
              () => f.get(i).i32(16).op('i32.add').get(e).op('i32.le_s'),
              () => {
                f.get(i).get(i).v128Load().get(vm).v('f32x4.mul').v128Store();
                f.inc(i, 16);
              },
            );
            f.while(
              () => f.get(i).get(e).op('i32.lt_s'),
              () => {
                f.get(i).get(i).f32Load().get(vm).f32x4Extract(0).op('f32.mul').f32Store();
                f.inc(i, 4);
              },
            );
          });
        },
        () => {
          f.get(sums).f64(0).f64Store();
        },
      );
      f.inc(r, 1).inc(ranges, 8).inc(sums, 8);
      f.get(row).get(rowBytes).op('i32.add').set(row);
    },
  );
  return f;
}

export function buildSoftmaxModule(memory: MemoryImport): Uint8Array<ArrayBuffer> {
  return assemble(memory, [expFunc(), softmaxFunc()]);
}
