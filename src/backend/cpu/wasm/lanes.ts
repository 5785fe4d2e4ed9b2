/** Lane moves shared by the SIMD kernels: partial vectors at the end of a row, and f32 ↔ f64 halves. */
import type { Func } from './encoder.js';

/** Byte shuffle moving the two high f32 lanes to the low half (for f64x2.promote_low_f32x4). */
export const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];
/** Byte shuffle joining the low halves of two vectors (two f32x4.demote_f64x2_zero results). */
export const LOW_HALVES = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];

/**
 * Emits a partial vector from `count` (1..3) f32 at byte `ptr` into local `dst`, the other lanes set to `pad`.
 */
export function emitLoadPartial(f: Func, ptr: number, count: number, pad: number, dst: number): void {
  f.f32x4(pad).set(dst);
  for (let lane = 0; lane < 3; lane++) {
    f.get(count).i32(lane).op('i32.gt_s').if(() => {
      f.get(dst).get(ptr).f32Load(lane * 4).f32x4Replace(lane).set(dst);
    });
  }
}

/** Stores the first `count` (1..3) lanes of local `src` at byte `ptr`. */
export function emitStorePartial(f: Func, ptr: number, count: number, src: number): void {
  for (let lane = 0; lane < 3; lane++) {
    f.get(count).i32(lane).op('i32.gt_s').if(() => {
      f.get(ptr).get(src).f32x4Extract(lane).f32Store(lane * 4);
    });
  }
}
