/**
 * Emits the WebAssembly SIMD GEMM module: C[M, N] = A[M, K] · B[N, K]ᵀ with B pre-packed into column panels of NR
 * features (panel p holds, for each k, the NR values B[p·NR .. p·NR+NR-1][k] contiguously, zero-padded), so the
 * micro-kernel streams B linearly and keeps an MR×NR block of C in f32x4 registers (wasm SIMD has no FMA: mul+add).
 */
import { assemble, Func, T, type MemoryImport } from '../wasm/encoder.js';

/** Panel width (output features per packed panel): two f32x4 vectors. */
export const NR = 8;
/** Rows of A per micro-kernel call. */
export const MR = 4;

/** Micro-kernel for `rows` rows of A: C[rows, NR] = A[rows, 0:k] · panel, with `unroll` independent accumulator sets. */
function microKernel(rows: number, unroll: number): Func {
  // params: pa, lda (bytes), pb, pc, ldc (bytes), k
  const f = new Func(`k${rows}`, [T.i32, T.i32, T.i32, T.i32, T.i32, T.i32], null, false);
  const [pa, lda, pb, pc, ldc, k] = [0, 1, 2, 3, 4, 5];
  const V = NR / 4;
  const rowOff: number[] = [];
  for (let r = 1; r < rows; r++) rowOff[r] = f.local(T.i32);
  const acc: number[][][] = [];
  for (let u = 0; u < unroll; u++) {
    acc.push([]);
    for (let r = 0; r < rows; r++) acc[u]!.push(Array.from({ length: V }, () => f.local(T.v128)));
  }
  const bv = Array.from({ length: V }, () => f.local(T.v128));
  const t = f.local(T.v128);
  for (let r = 1; r < rows; r++) f.get(lda).i32(r).op('i32.mul').set(rowOff[r]!);

  const step = (u: number, accSet: number[][]) => {
    for (let v = 0; v < V; v++) f.get(pb).v128Load((u * NR + v * 4) * 4, 4).set(bv[v]!);
    for (let r = 0; r < rows; r++) {
      f.get(pa);
      if (r > 0) f.get(rowOff[r]!).op('i32.add');
      f.load32Splat(u * 4).set(t);
      for (let v = 0; v < V; v++) {
        f.get(accSet[r]![v]!).get(t).get(bv[v]!).v('f32x4.mul').v('f32x4.add').set(accSet[r]![v]!);
      }
    }
  };
  if (unroll > 1) {
    f.while(
      () => f.get(k).i32(unroll).op('i32.ge_s'),
      () => {
        for (let u = 0; u < unroll; u++) step(u, acc[u]!);
        f.inc(pa, 4 * unroll).inc(pb, NR * 4 * unroll).inc(k, -unroll);
      },
    );
  }
  f.while(
    () => f.get(k).i32(0).op('i32.gt_s'),
    () => {
      step(0, acc[0]!);
      f.inc(pa, 4).inc(pb, NR * 4).inc(k, -1);
    },
  );
  for (let r = 0; r < rows; r++) {
    for (let v = 0; v < V; v++) {
      for (let u = 1; u < unroll; u++) f.get(acc[0]![r]![v]!).get(acc[u]![r]![v]!).v('f32x4.add').set(acc[0]![r]![v]!);
      f.get(pc).get(acc[0]![r]![v]!).v128Store(v * 16, 4);
    }
    if (r + 1 < rows) f.get(pc).get(ldc).op('i32.add').set(pc); // pc += ldc
  }
  return f;
}

/**
 * gemm(pa, lda, pb, pc, ldc, m, k, p0, p1, mc): panels [p0, p1) of the packed B, all m rows, in row blocks of mc rows
 * (the A block stays in cache while the panels stream). lda/ldc are byte strides; C's row stride must cover whole panels.
 */
function driver(kernels: number[]): Func {
  const f = new Func('gemm', [T.i32, T.i32, T.i32, T.i32, T.i32, T.i32, T.i32, T.i32, T.i32, T.i32]);
  const [pa, lda, pb, pc, ldc, m, k, p0, p1, mc] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const panelBytes = f.local(T.i32);
  const i0 = f.local(T.i32);
  const iEnd = f.local(T.i32);
  const p = f.local(T.i32);
  const i = f.local(T.i32);
  const aRow = f.local(T.i32);
  const cRow = f.local(T.i32);
  const bp = f.local(T.i32);
  const rem = f.local(T.i32);
  f.get(k).i32(NR * 4).op('i32.mul').set(panelBytes);
  f.i32(0).set(i0);
  f.while(
    () => f.get(i0).get(m).op('i32.lt_s'),
    () => {
      f.get(i0).get(mc).op('i32.add').set(iEnd);
      f.get(iEnd).get(m).op('i32.gt_s').if(() => f.get(m).set(iEnd));
      f.get(p0).set(p);
      f.while(
        () => f.get(p).get(p1).op('i32.lt_s'),
        () => {
          f.get(pb).get(p).get(panelBytes).op('i32.mul').op('i32.add').set(bp);
          f.get(pa).get(i0).get(lda).op('i32.mul').op('i32.add').set(aRow);
          f.get(pc).get(i0).get(ldc).op('i32.mul').op('i32.add');
          f.get(p).i32(NR * 4).op('i32.mul').op('i32.add').set(cRow);
          f.get(i0).set(i);
          f.while(
            () => f.get(i).i32(MR).op('i32.add').get(iEnd).op('i32.gt_s').i32(0).op('i32.eq'),
            () => {
              f.get(aRow).get(lda).get(bp).get(cRow).get(ldc).get(k).call(kernels[MR - 1]!);
              f.get(aRow).get(lda).i32(MR).op('i32.mul').op('i32.add').set(aRow);
              f.get(cRow).get(ldc).i32(MR).op('i32.mul').op('i32.add').set(cRow);
              f.inc(i, MR);
            },
          );
          f.get(iEnd).get(i).op('i32.sub').set(rem);
          for (let r = 1; r < MR; r++) {
            f.get(rem).i32(r).op('i32.eq');
            f.if(() => f.get(aRow).get(lda).get(bp).get(cRow).get(ldc).get(k).call(kernels[r - 1]!));
          }
          f.inc(p, 1);
        },
      );
      f.get(iEnd).set(i0);
    },
  );
  return f;
}

/**
 * pack(src, dst, rows, k, j0): rows j0 .. j0+rows−1 of B[N, K], given row-major at src, into the panel layout at dst
 * (byte offsets). Scalar copies, four per iteration: it runs once per weight matrix.
 */
function packer(): Func {
  const f = new Func('pack', [T.i32, T.i32, T.i32, T.i32, T.i32]);
  const [src, dst, rows, k, j0] = [0, 1, 2, 3, 4];
  const j = f.local(T.i32);
  const d = f.local(T.i32);
  const kk = f.local(T.i32);
  f.get(j0).set(j);
  f.get(j0).get(rows).op('i32.add').set(rows); // rows now holds the end row
  f.while(
    () => f.get(j).get(rows).op('i32.lt_s'),
    () => {
      // d = dst + ((j / NR) · NR · k + j % NR) · 4
      f.get(dst).get(j).i32(Math.log2(NR)).op('i32.shr_u').get(k).op('i32.mul').i32(NR * 4).op('i32.mul').op('i32.add');
      f.get(j).i32(NR - 1).op('i32.and').i32(4).op('i32.mul').op('i32.add').set(d);
      f.get(k).set(kk);
      f.while(
        () => f.get(kk).i32(4).op('i32.ge_s'),
        () => {
          for (let u = 0; u < 4; u++) f.get(d).get(src).f32Load(u * 4).f32Store(u * NR * 4);
          f.inc(src, 16).inc(d, NR * 16).inc(kk, -4);
        },
      );
      f.while(
        () => f.get(kk).i32(0).op('i32.gt_s'),
        () => {
          f.get(d).get(src).f32Load(0).f32Store(0);
          f.inc(src, 4).inc(d, NR * 4).inc(kk, -1);
        },
      );
      f.inc(j, 1);
    },
  );
  return f;
}

/** The module bytes; exports `gemm` and `pack`. */
export function buildGemmModule(memory: MemoryImport): Uint8Array<ArrayBuffer> {
  const unrollFor = (rows: number) => (rows === 1 ? 4 : rows === 2 ? 2 : 1);
  const kernels: Func[] = [];
  for (let r = 1; r <= MR; r++) kernels.push(microKernel(r, unrollFor(r)));
  const gemm = driver(kernels.map((_, i) => i));
  return assemble(memory, [...kernels, gemm, packer()]);
}
