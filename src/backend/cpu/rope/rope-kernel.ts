/**
 * Rotary position embedding as a WebAssembly SIMD kernel, emitted from TypeScript at load time (../wasm/encoder.ts).
 *
 * rope(x, cos, sin, rows, heads, headDim, half): in place over x ([rows × heads·headDim] f32 at byte `x`), with
 * cos/sin tables [rows × half]: in each head, dimension i < half and its partner i + half become
 * a·cos − b·sin and b·cos + a·sin. The arithmetic is the JavaScript reference's (../../../attention/rope.ts): f32
 * inputs, products and sum in f64, one rounding to f32, so the results are the same bit for bit.
 */
import { assemble, Func, T, type MemoryImport } from '../wasm/encoder.js';
import { HIGH_HALF, LOW_HALVES } from '../wasm/lanes.js';

function ropeFunc(): Func {
  const f = new Func('rope', [T.i32, T.i32, T.i32, T.i32, T.i32, T.i32, T.i32]);
  const [x, cos, sin, rows, heads, headDim, half] = [0, 1, 2, 3, 4, 5, 6];
  const r = f.local(T.i32);
  const h = f.local(T.i32);
  const head = f.local(T.i32); // byte offset of the head's first dimension
  const partner = f.local(T.i32); // bytes from a dimension to its partner (half · 4)
  const i = f.local(T.i32); // bytes into the head
  const end = f.local(T.i32); // bytes of the rotated half
  const [a, b, c, s] = [f.local(T.v128), f.local(T.v128), f.local(T.v128), f.local(T.v128)];
  const [A, B, C, S] = [f.local(T.v128), f.local(T.v128), f.local(T.v128), f.local(T.v128)];
  const [aLow, bLow] = [f.local(T.v128), f.local(T.v128)];
  const [sa, sb, sc, ss] = [f.local(T.f64), f.local(T.f64), f.local(T.f64), f.local(T.f64)];

  /** A, B, C, S = the low or high two lanes of a, b, c, s as f64x2. */
  const promote = (high: boolean) => {
    for (const [from, to] of [[a, A], [b, B], [c, C], [s, S]]) {
      f.get(from);
      if (high) f.get(from).shuffle(HIGH_HALF);
      f.v('f64x2.promote_low_f32x4').set(to);
    }
  };
  /** Pushes a·c − b·s and b·c + a·s (f32, in the low two lanes) for the promoted lanes. */
  const rotate = () => {
    f.get(A).get(C).v('f64x2.mul').get(B).get(S).v('f64x2.mul').v('f64x2.sub').v('f32x4.demote_f64x2_zero');
    f.get(B).get(C).v('f64x2.mul').get(A).get(S).v('f64x2.mul').v('f64x2.add').v('f32x4.demote_f64x2_zero');
  };

  f.get(half).i32(4).op('i32.mul').tee(partner).set(end);
  f.get(x).set(head);
  f.i32(0).set(r);
  f.while(
    () => f.get(r).get(rows).op('i32.lt_s'),
    () => {
      f.i32(0).set(h);
      f.while(
        () => f.get(h).get(heads).op('i32.lt_s'),
        () => {
          f.i32(0).set(i);
          f.while(
            () => f.get(i).i32(16).op('i32.add').get(end).op('i32.le_s'),
            () => {
              f.get(head).get(i).op('i32.add').v128Load().set(a);
              f.get(head).get(i).op('i32.add').get(partner).op('i32.add').v128Load().set(b);
              f.get(cos).get(i).op('i32.add').v128Load().set(c);
              f.get(sin).get(i).op('i32.add').v128Load().set(s);
              promote(false);
              rotate();
              f.set(bLow).set(aLow);
              promote(true);
              rotate();
              // Stack: a′ high, b′ high; joined with the low halves.
              f.set(b);
              f.set(a);
              f.get(head).get(i).op('i32.add').get(aLow).get(a).shuffle(LOW_HALVES).v128Store();
              f.get(head).get(i).op('i32.add').get(partner).op('i32.add').get(bLow).get(b).shuffle(LOW_HALVES).v128Store();
              f.inc(i, 16);
            },
          );
          f.while(
            () => f.get(i).get(end).op('i32.lt_s'),
            () => {
              f.get(head).get(i).op('i32.add').f32Load().op('f64.promote_f32').set(sa);
              f.get(head).get(i).op('i32.add').get(partner).op('i32.add').f32Load().op('f64.promote_f32').set(sb);
              f.get(cos).get(i).op('i32.add').f32Load().op('f64.promote_f32').set(sc);
              f.get(sin).get(i).op('i32.add').f32Load().op('f64.promote_f32').set(ss);
              f.get(head).get(i).op('i32.add');
              f.get(sa).get(sc).op('f64.mul').get(sb).get(ss).op('f64.mul').op('f64.sub').op('f32.demote_f64').f32Store();
              f.get(head).get(i).op('i32.add').get(partner).op('i32.add');
              f.get(sb).get(sc).op('f64.mul').get(sa).get(ss).op('f64.mul').op('f64.add').op('f32.demote_f64').f32Store();
              f.inc(i, 4);
            },
          );
          f.get(head).get(headDim).i32(4).op('i32.mul').op('i32.add').set(head);
          f.inc(h, 1);
        },
      );
      f.get(cos).get(partner).op('i32.add').set(cos);
      f.get(sin).get(partner).op('i32.add').set(sin);
      f.inc(r, 1);
    },
  );
  return f;
}

export function buildRopeModule(memory: MemoryImport): Uint8Array<ArrayBuffer> {
  return assemble(memory, [ropeFunc()]);
}
