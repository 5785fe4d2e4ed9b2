/**
 * Matrix products through cuBLAS (cublasGemmEx), on the backend's stream. Attend's layout is row-major with Hugging
 * Face's [out × in] Linear weights: y[rows × out] = x[rows × in] · Wᵀ. Read column-major, W is an in × out matrix and
 * x an in × rows one, so y (out × rows, column-major) = op_T(W) · x: m = out, n = rows, k = in, both leading
 * dimensions `in`. 16-bit weights multiply 16-bit inputs of the same type (the activations narrowed by a kernel
 * first, as PyTorch runs a bf16 model) with f32 accumulation and an f32 result; f32 weights run in full f32 (no
 * TF32: cuBLAS's default math mode keeps it off).
 */
import { AttendError } from '../../errors.js';
import type { DType } from '../../tensor/dtype.js';
import type { CudaDriver } from './driver.js';
import { loadLibrary } from './libraries.js';

const CUDA_TYPE: Record<DType, number> = { f32: 0, f16: 2, bf16: 14 };
const COMPUTE_32F = 68;
const OP_N = 0;
const OP_T = 1;
const GEMM_DEFAULT = -1;

export class Cublas {
  readonly path: string;
  private readonly handle: unknown;
  private readonly gemmEx: (...args: unknown[]) => number;
  private readonly one = new Float32Array([1]);
  private readonly zero = new Float32Array([0]);

  constructor(private readonly driver: CudaDriver) {
    const { lib, path } = loadLibrary('cublas');
    this.path = path;
    const create = lib.func('int cublasCreate_v2(_Out_ void **h)') as (h: unknown[]) => number;
    const setStream = lib.func('int cublasSetStream_v2(void *h, void *stream)') as (h: unknown, s: unknown) => number;
    this.gemmEx = lib.func('int cublasGemmEx(void *h, int ta, int tb, int m, int n, int k, const void *alpha, uint64_t A, int At, int lda, uint64_t B, int Bt, int ldb, const void *beta, uint64_t C, int Ct, int ldc, int ct, int algo)') as (...args: unknown[]) => number;
    const h = [null];
    this.check(create(h), 'cublasCreate');
    this.handle = h[0];
    this.check(setStream(this.handle, driver.stream), 'cublasSetStream');
  }

  private check(code: number, what: string): void {
    if (code !== 0) throw new AttendError(`cuBLAS ${what} failed (status ${code})`);
  }

  /** y[rows × out] (f32) = x[rows × in] · W[out × in]ᵀ; x and W of the same storage type. */
  linear(x: number, w: number, y: number, rows: number, outDim: number, inDim: number, dtype: DType): void {
    const t = CUDA_TYPE[dtype];
    const t0 = this.driver.profile ? this.driver.profileStart() : 0;
    this.check(
      this.gemmEx(this.handle, OP_T, OP_N, outDim, rows, inDim, this.one, w, t, inDim, x, t, inDim, this.zero, y, CUDA_TYPE.f32, outDim, COMPUTE_32F, GEMM_DEFAULT),
      `GEMM ${rows}×${inDim}·(${outDim}×${inDim})ᵀ ${dtype}`,
    );
    if (this.driver.profile) this.driver.profileEnd(`cublas ${dtype}`, t0);
  }
}
