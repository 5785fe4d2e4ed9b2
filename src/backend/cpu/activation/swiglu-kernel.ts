/**
 * SwiGLU as a WebAssembly SIMD kernel, emitted from TypeScript at load time (../wasm/encoder.ts).
 *
 * swiglu(src, dst, rows, inner): for each row of a fused [rows × 2·inner] f32 projection at byte `src` (gate, then
 * up), writes silu(gate) · up to row r of the [rows × inner] f32 matrix at byte `dst`. silu(g) = g · σ(g) with
 * σ(g) = (g ≥ 0 ? 1 : e) / (1 + e), e = e^−|g|: the exp of ../wasm/exp.ts then only sees arguments ≤ 0, where it is
 * accurate to about 1 ulp and never returns a subnormal, and nothing overflows for large |g|.
 */
import { assemble, Func, T, type MemoryImport } from '../wasm/encoder.js';
import { emitExp, expLocals, type ExpLocals } from '../wasm/exp.js';
import { emitLoadPartial, emitStorePartial } from '../wasm/lanes.js';

/** Pushes silu(g) · u for the f32x4 locals g and u (clobbers `e` and the exp locals). */
function emitSwiglu(f: Func, l: ExpLocals, g: number, u: number, e: number, zero: number): void {
  f.get(g).v('f32x4.abs').v('f32x4.neg').set(l.x);
  emitExp(f, l);
  f.set(e);
  f.get(l.k.one).get(e).get(g).get(zero).v('f32x4.ge').v('v128.bitselect');
  f.get(l.k.one).get(e).v('f32x4.add').v('f32x4.div');
  f.get(g).v('f32x4.mul').get(u).v('f32x4.mul');
}

function swigluFunc(): Func {
  const f = new Func('swiglu', [T.i32, T.i32, T.i32, T.i32]);
  const [src, dst, rows, inner] = [0, 1, 2, 3];
  const half = f.local(T.i32); // bytes of one half-row
  const gate = f.local(T.i32);
  const end = f.local(T.i32); // end of the row's gate half = start of its up half
  const out = f.local(T.i32);
  const r = f.local(T.i32);
  const rem = f.local(T.i32);
  const g = f.local(T.v128);
  const u = f.local(T.v128);
  const e = f.local(T.v128);
  const zero = f.local(T.v128);
  const l = expLocals(f);
  f.v128Zero().set(zero);
  f.get(inner).i32(4).op('i32.mul').set(half);
  f.get(src).set(gate);
  f.get(dst).set(out);
  f.i32(0).set(r);
  f.while(
    () => f.get(r).get(rows).op('i32.lt_s'),
    () => {
      f.get(gate).get(half).op('i32.add').set(end);
      f.while(
        () => f.get(gate).i32(16).op('i32.add').get(end).op('i32.le_s'),
        () => {
          f.get(gate).v128Load().set(g);
          f.get(gate).get(half).op('i32.add').v128Load().set(u);
          f.get(out);
          emitSwiglu(f, l, g, u, e, zero);
          f.v128Store();
          f.inc(gate, 16).inc(out, 16);
        },
      );
      f.get(end).get(gate).op('i32.sub').i32(2).op('i32.shr_u').set(rem);
      f.get(rem).if(() => {
        emitLoadPartial(f, gate, rem, 0, g);
        f.get(gate).get(half).op('i32.add').set(gate);
        emitLoadPartial(f, gate, rem, 0, u);
        emitSwiglu(f, l, g, u, e, zero);
        f.set(g);
        emitStorePartial(f, out, rem, g);
        f.get(out).get(rem).i32(4).op('i32.mul').op('i32.add').set(out);
      });
      // Skip the up half: the next row's gate starts after it.
      f.get(end).get(half).op('i32.add').set(gate);
      f.inc(r, 1);
    },
  );
  return f;
}

export function buildSwigluModule(memory: MemoryImport): Uint8Array<ArrayBuffer> {
  return assemble(memory, [swigluFunc()]);
}
