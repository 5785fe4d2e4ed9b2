/**
 * One CUDA device as the backend uses it: the driver and its stream, the allocator, cuBLAS, and the kernels of
 * kernels/, compiled per variant (a model's head size, group and cache type) on first use and kept loaded. Also the
 * small data movements the KV memory needs (rows read back, gathered, scattered), so head-memory.ts stays about
 * bookkeeping.
 */
import { AttendError } from '../../errors.js';
import type { DType } from '../../tensor/dtype.js';
import { Cublas } from './cublas.js';
import { type Args, CudaDriver } from './driver.js';
import { type Block, DeviceAllocator } from './memory.js';
import { kernelSource, Nvrtc } from './nvrtc.js';

/** Storage types as the kernel sources number them (STORE_T / KV_T / the _0 _1 _2 suffixes). */
export const STORE: Record<DType, number> = { f32: 0, bf16: 1, f16: 2 };

const THREADS = 256;
const NO_DEFINES: Record<string, number> = {};
/** Defines objects by storage type, shared so that lookups by identity hit. */
export const KV_DEFINES: Record<DType, Record<string, number>> = { f32: { KV_T: 0 }, bf16: { KV_T: 1 }, f16: { KV_T: 2 } };

export class CudaContext {
  readonly driver: CudaDriver;
  readonly alloc: DeviceAllocator;
  readonly cublas: Cublas;
  readonly nvrtc: Nvrtc;
  /** Frees a garbage-collected KV head's blocks (head-memory.ts registers each head). */
  readonly heads: FinalizationRegistry<{ k: Block | null; v: Block | null; p: Block | null }>;
  private readonly modules = new Map<string, unknown>();
  private readonly functions = new Map<string, unknown>();
  /** Seconds spent compiling (cache misses) and the kernels loaded from the cache, for `attend info`. */
  compileSeconds = 0;
  cachedKernels = 0;

  constructor(ordinal = 0) {
    this.driver = new CudaDriver(ordinal);
    this.alloc = new DeviceAllocator(this.driver);
    this.nvrtc = new Nvrtc();
    this.cublas = new Cublas(this.driver);
    this.heads = new FinalizationRegistry((own) => {
      for (const b of [own.k, own.v, own.p]) if (b) this.alloc.release(b);
    });
  }

  /** Functions already looked up, by defines object, then file and name (no key is built on the hot path). */
  private readonly byDefines = new WeakMap<object, Map<string, unknown>>();

  /** A kernel of `file` built with `defines` (pass the same defines object again for a cheap lookup). */
  fn(file: string, name: string, defines: Record<string, number> = NO_DEFINES): unknown {
    let named = this.byDefines.get(defines);
    if (!named) this.byDefines.set(defines, (named = new Map()));
    const hit = named.get(file + name);
    if (hit) return hit;
    const f = this.lookup(file, name, defines);
    named.set(file + name, f);
    return f;
  }

  private lookup(file: string, name: string, defines: Record<string, number>): unknown {
    const key = `${file}|${JSON.stringify(defines)}`;
    const fkey = `${key}|${name}`;
    const known = this.functions.get(fkey);
    if (known) return known;
    let module = this.modules.get(key);
    if (!module) {
      const t0 = performance.now();
      const built = this.nvrtc.compile(file, kernelSource(file), this.driver.info.computeCapability, defines);
      if (built.cached) this.cachedKernels++;
      else this.compileSeconds += (performance.now() - t0) / 1000;
      module = this.driver.loadModule(built.image);
      this.modules.set(key, module);
    }
    const f = this.driver.getFunction(module, name);
    this.functions.set(fkey, f);
    this.driver.names.set(f, name);
    return f;
  }

  /** A grid-stride launch over n elements. */
  launch1d(fn: unknown, n: number, args: Args): void {
    const blocks = Math.max(1, Math.min(Math.ceil(n / THREADS), 8 * this.driver.info.smCount));
    this.driver.launch(fn, [blocks, 1, 1], [THREADS, 1, 1], args);
  }

  /**
   * Host data in a fresh block; the caller releases it once the launches that read it are queued (the stream orders
   * any later reuse of the block after them).
   */
  temp(data: Int32Array | Float32Array): Block {
    const b = this.alloc.alloc(Math.max(4, data.byteLength));
    this.driver.upload(b.ptr, data);
    return b;
  }

  /** Rows of 16-bit or f32 storage at `ptr`, out.length elements, widened into `out` on the host. */
  readRows(ptr: number, dtype: DType, out: Float32Array): void {
    if (dtype === 'f32') return this.driver.download(out, ptr);
    const tmp = this.alloc.alloc(out.byteLength);
    try {
      this.launch1d(this.fn('kv.cu', 'kv_widen', KV_DEFINES[dtype]), out.length, this.driver.args().p(ptr).p(tmp.ptr).l(out.length));
      this.driver.download(out, tmp.ptr);
    } finally {
      this.alloc.release(tmp);
    }
  }

  /** Kept rows idx of keys, values and positions into fresh blocks (HeadMemory.keep). */
  gatherRows(dtype: DType, k: number, v: number, p: number, dk: number, dv: number, dp: number, idx: Int32Array, headDim: number): void {
    const i = this.alloc.alloc(idx.byteLength);
    try {
      this.driver.upload(i.ptr, idx);
      const f = this.fn('kv.cu', 'kv_gather', KV_DEFINES[dtype]);
      const n = idx.length;
      this.launch1d(f, n * headDim, this.driver.args().p(k).p(dk).p(i.ptr).i(n).i(headDim).p(p).p(dp));
      this.launch1d(f, n * headDim, this.driver.args().p(v).p(dv).p(i.ptr).i(n).i(headDim).p(0).p(0));
    } finally {
      this.alloc.release(i);
    }
  }

  /** f32 rows written at idx into storage at `dst` (writeValues, writeKeys, rerotated keys). */
  scatterRows(dtype: DType, dst: number, idx: Int32Array, rows: Float32Array, width: number): void {
    const [i, r] = [this.alloc.alloc(idx.byteLength), this.alloc.alloc(rows.byteLength)];
    try {
      this.driver.upload(i.ptr, idx);
      this.driver.upload(r.ptr, rows);
      this.launch1d(this.fn('kv.cu', 'kv_scatter', KV_DEFINES[dtype]), rows.length, this.driver.args().p(r.ptr).p(dst).p(i.ptr).i(idx.length).i(width));
    } finally {
      this.alloc.release(i);
      this.alloc.release(r);
    }
  }
}

let shared: CudaContext | undefined;
let failure: AttendError | undefined;

/** The process's context on device 0, made on first use; a machine without CUDA gets the one-line reason. */
export function cudaContext(): CudaContext {
  if (shared) return shared;
  if (failure) throw failure;
  try {
    shared = new CudaContext(0);
    return shared;
  } catch (e) {
    failure = e instanceof AttendError ? e : new AttendError(`CUDA is not usable here: ${(e as Error).message}`);
    throw failure;
  }
}
