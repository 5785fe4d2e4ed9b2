/**
 * RMSNorm as a WebAssembly SIMD kernel, emitted from TypeScript at load time (../wasm/encoder.ts). Pointers are byte
 * offsets of f32 arrays; `rows` rows of `n` floats each.
 *
 * rmsNorm(x, weight, out, rows, n, eps) and addRmsNorm(x, delta, weight, out, rows, n, eps), the second first adding
 * delta into x in place (one f32 rounding, as a separate add stores it). Per row, the arithmetic of the JavaScript
 * reference in ../elementwise.ts: squares (exact in f64) summed in f64, scale = 1 / sqrt(sum / n + eps) in f64, and
 * out = f32(x · scale) · weight. The sum runs as four interleaved partial sums, so it may differ from the
 * reference's single running sum in its last bits, and an output by one f32 rounding.
 */
import { assemble, Func, T, type MemoryImport } from '../wasm/encoder.js';
import { HIGH_HALF, LOW_HALVES } from '../wasm/lanes.js';

function normFunc(withDelta: boolean): Func {
  const params = withDelta ? [T.i32, T.i32, T.i32, T.i32, T.i32, T.i32, T.f64] : [T.i32, T.i32, T.i32, T.i32, T.i32, T.f64];
  const f = new Func(withDelta ? 'addRmsNorm' : 'rmsNorm', params);
  // Parameters: x, delta (addRmsNorm only), weight, out, rows, n, eps.
  const [x, delta] = [0, 1];
  const [weight, out, rows, n, eps] = withDelta ? [2, 3, 4, 5, 6] : [1, 2, 3, 4, 5];
  const r = f.local(T.i32);
  const end = f.local(T.i32);
  const i = f.local(T.i32);
  const w = f.local(T.i32);
  const s = f.local(T.f32);
  const sum = f.local(T.f64);
  const scale = f.local(T.f64);
  const v = f.local(T.v128);
  const acc0 = f.local(T.v128);
  const acc1 = f.local(T.v128);
  const sq = f.local(T.v128);
  const vscale = f.local(T.v128);

  /** acc += (the two f64 lanes promoted from the f32x4 on the stack)². */
  const accumulate = (acc: number) => {
    f.v('f64x2.promote_low_f32x4').tee(sq);
    f.get(sq).v('f64x2.mul').get(acc).v('f64x2.add').set(acc);
  };
  /** Pushes f32(x · scale) for the two low f32 lanes of the vector on the stack, in the low half. */
  const scaleHalf = () => {
    f.v('f64x2.promote_low_f32x4').get(vscale).v('f64x2.mul').v('f32x4.demote_f64x2_zero');
  };

  f.i32(0).set(r);
  f.while(
    () => f.get(r).get(rows).op('i32.lt_s'),
    () => {
      f.get(x).get(n).i32(4).op('i32.mul').op('i32.add').set(end);
      // Σ x², adding delta into x first where there is one.
      f.f64(0).v('f64x2.splat').tee(acc0).set(acc1);
      f.get(x).set(i);
      f.while(
        () => f.get(i).i32(16).op('i32.add').get(end).op('i32.le_s'),
        () => {
          f.get(i).v128Load();
          if (withDelta) {
            f.get(delta).v128Load().v('f32x4.add').set(v);
            f.get(i).get(v).v128Store();
            f.inc(delta, 16);
          } else {
            f.set(v);
          }
          f.get(v);
          accumulate(acc0);
          f.get(v).get(v).shuffle(HIGH_HALF);
          accumulate(acc1);
          f.inc(i, 16);
        },
      );
      f.get(acc0).f64x2Extract(0).get(acc0).f64x2Extract(1).op('f64.add');
      f.get(acc1).f64x2Extract(0).get(acc1).f64x2Extract(1).op('f64.add').op('f64.add').set(sum);
      f.while(
        () => f.get(i).get(end).op('i32.lt_s'),
        () => {
          f.get(i).f32Load();
          if (withDelta) {
            f.get(delta).f32Load().op('f32.add').set(s);
            f.get(i).get(s).f32Store();
            f.inc(delta, 4);
          } else {
            f.set(s);
          }
          f.get(sum).get(s).op('f64.promote_f32').get(s).op('f64.promote_f32').op('f64.mul').op('f64.add').set(sum);
          f.inc(i, 4);
        },
      );
      // scale = 1 / sqrt(sum / n + eps)
      f.f64(1).get(sum).get(n).op('f64.convert_i32_s').op('f64.div').get(eps).op('f64.add').op('f64.sqrt').op('f64.div');
      f.tee(scale).v('f64x2.splat').set(vscale);
      // out = f32(x · scale) · weight
      f.get(x).set(i);
      f.get(weight).set(w);
      f.while(
        () => f.get(i).i32(16).op('i32.add').get(end).op('i32.le_s'),
        () => {
          f.get(i).v128Load().set(v);
          f.get(out);
          f.get(v);
          scaleHalf();
          f.get(v).get(v).shuffle(HIGH_HALF);
          scaleHalf();
          f.shuffle(LOW_HALVES).get(w).v128Load().v('f32x4.mul').v128Store();
          f.inc(i, 16).inc(w, 16).inc(out, 16);
        },
      );
      f.while(
        () => f.get(i).get(end).op('i32.lt_s'),
        () => {
          f.get(out);
          f.get(i).f32Load().op('f64.promote_f32').get(scale).op('f64.mul').op('f32.demote_f64');
          f.get(w).f32Load().op('f32.mul').f32Store();
          f.inc(i, 4).inc(w, 4).inc(out, 4);
        },
      );
      f.get(end).set(x);
      f.inc(r, 1);
    },
  );
  return f;
}

export function buildRmsNormModule(memory: MemoryImport): Uint8Array<ArrayBuffer> {
  return assemble(memory, [normFunc(false), normFunc(true)]);
}
