/**
 * Matrix multiply of the CPU backend: C[M,N] = A[M,K] · B[N,K]ᵀ (B in Hugging Face Linear layout), f32 row-major,
 * synchronous. Three paths, picked once: OpenBLAS through koffi (fastest; needs libopenblas), WebAssembly SIMD with
 * worker threads (portable fallback), and plain JavaScript loops (the reference). ATTEND_MATMUL=openblas|wasm-simd|js
 * forces one; ATTEND_MATMUL_THREADS sets the thread count of the first two.
 */
import { check } from '../../errors.js';
import { matmulNNOpenBlas, matmulTransBOpenBlas, openBlas, openBlasError } from './matmul/openblas.js';
import { matmulNNJs, matmulTransBJs } from './matmul/reference.js';
import { matmulNNWasm, matmulTransBWasm, wasmSimdError, wasmSimdInfo, wasmSimdReady } from './matmul/wasm-simd.js';

export type MatmulPath = 'openblas' | 'wasm-simd' | 'js';

export interface MatmulOptions {
  /**
   * B holds the same values on every call with this Float32Array object, as weights do (default true). Only the
   * wasm-simd path uses it: from the second call it caches a packed copy of B. Pass false when the same array's
   * contents change between calls (fresh views, like a KV cache's subarray per call, are never cached anyway).
   */
  reuseB?: boolean;
  /** This path instead of the process default (a CpuBackend chooses its own: new CpuBackend({ matmul })). */
  path?: MatmulPath;
}

type Impl = (a: Float32Array, b: Float32Array, c: Float32Array, m: number, n: number, k: number, reuseB: boolean) => void;

const PATHS: readonly MatmulPath[] = ['openblas', 'wasm-simd', 'js'];

type ImplNN = (a: Float32Array, b: Float32Array, c: Float32Array, m: number, n: number, k: number) => void;

let active: { name: MatmulPath; impl: Impl; nn: ImplNN } | undefined;

/** Why `name` cannot run here, or undefined when it can (loads the library / compiles the module on first ask). */
/** Why a path cannot run here, or undefined when it can. */
export function matmulPathError(name: MatmulPath): string | undefined {
  if (!PATHS.includes(name)) return `unknown path (known: ${PATHS.join(', ')})`;
  if (name === 'openblas') return openBlasError();
  if (name === 'wasm-simd') return wasmSimdError();
  return undefined;
}

function implFor(name: MatmulPath): { impl: Impl; nn: ImplNN } {
  switch (name) {
    case 'openblas': {
      const ob = openBlas()!;
      return {
        impl: (a, b, c, m, n, k) => matmulTransBOpenBlas(ob, a, b, c, m, n, k),
        nn: (a, b, c, m, n, k) => matmulNNOpenBlas(ob, a, b, c, m, n, k),
      };
    }
    case 'wasm-simd':
      return { impl: matmulTransBWasm, nn: matmulNNWasm };
    case 'js':
      return { impl: matmulTransBJs, nn: matmulNNJs };
  }
}

/** Force one path, or 'auto': ATTEND_MATMUL if set, else the first that works of openblas, wasm-simd, js. */
export function selectMatmul(name: 'auto' | MatmulPath): void {
  if (name === 'auto') {
    const env = globalThis.process?.env?.ATTEND_MATMUL;
    if (env) {
      check((PATHS as readonly string[]).includes(env), `ATTEND_MATMUL must be one of ${PATHS.join(', ')} (got '${env}')`);
      name = env as MatmulPath;
    } else {
      name = PATHS.find((p) => matmulPathError(p) === undefined)!;
    }
  }
  const err = matmulPathError(name);
  check(err === undefined, () => `matmul path '${name}' is not available: ${err}`);
  active = { name, ...implFor(name) };
}

function current(): NonNullable<typeof active> {
  if (!active) selectMatmul('auto');
  return active!;
}

const byPath = new Map<MatmulPath, { impl: Impl; nn: ImplNN }>();

/** The given path's implementation (checked available once), or the process default. */
function chosen(path: MatmulPath | undefined): { impl: Impl; nn: ImplNN } {
  if (path === undefined) return current();
  let found = byPath.get(path);
  if (!found) {
    const err = matmulPathError(path);
    check(err === undefined, () => `matmul path '${path}' is not available: ${err}`);
    found = implFor(path);
    byPath.set(path, found);
  }
  return found;
}

/** Checks sizes; false when there is nothing to multiply (C is then zeroed). */
function prepare(what: string, a: Float32Array, b: Float32Array, c: Float32Array, m: number, n: number, k: number): boolean {
  if (!(a.length >= m * k && b.length >= n * k && c.length >= m * n && m >= 0 && n >= 0 && k >= 0)) {
    throw new RangeError(`${what}: arrays too short for m=${m} n=${n} k=${k} (a ${a.length}, b ${b.length}, c ${c.length})`);
  }
  if (m === 0 || n === 0 || k === 0) {
    c.fill(0, 0, m * n);
    return false;
  }
  return true;
}

/** C[M,N] = A[M,K] · B[N,K]ᵀ (B in Hugging Face Linear layout: one row per output feature), all f32 row-major. */
export function matmulTransB(a: Float32Array, b: Float32Array, c: Float32Array, m: number, n: number, k: number, options?: MatmulOptions): void {
  if (prepare('matmulTransB', a, b, c, m, n, k)) chosen(options?.path).impl(a, b, c, m, n, k, options?.reuseB ?? true);
}

/** C[M,N] = A[M,K] · B[K,N], all f32 row-major (e.g. attention probabilities times values); B is never cached. */
export function matmulNN(a: Float32Array, b: Float32Array, c: Float32Array, m: number, n: number, k: number, path?: MatmulPath): void {
  if (prepare('matmulNN', a, b, c, m, n, k)) chosen(path).nn(a, b, c, m, n, k);
}

/** Which implementation is active: 'openblas' | 'wasm-simd' | 'js' (+ thread count), for `attend info` and the bench. */
export function matmulBackendInfo(): { name: string; threads: number; detail: string } {
  const { name } = current();
  if (name === 'openblas') {
    const ob = openBlas()!;
    return { name, threads: ob.threads, detail: `${ob.config}; kernels ${ob.core}; ${ob.file} via koffi` };
  }
  if (name === 'wasm-simd') return { name, ...wasmSimdInfo() };
  return { name, threads: 1, detail: 'reference JavaScript loops' };
}

/** Resolves when the active path's threads are up (the wasm workers start asynchronously; earlier calls still work). */
export async function matmulReady(): Promise<void> {
  if (current().name === 'wasm-simd') await wasmSimdReady();
}

/**
 * Runs `fn` with the OpenBLAS path held to the calling thread (other paths: as they are). For products over arrays
 * this thread has just written, as the attention's widened 16-bit KV scratch: a second OpenBLAS thread on another
 * core would first pull each freshly written cache line across from this core, which costs more than it gains
 * (see docs/performance.md, "KV cache in f16 or bf16").
 */
export function onCallingThread<T>(fn: () => T): T {
  const ob = current().name === 'openblas' ? openBlas() : undefined;
  if (!ob || ob.threads <= 1) return fn();
  const threads = ob.threads;
  ob.setThreads(1);
  try {
    return fn();
  } finally {
    ob.setThreads(threads);
  }
}
