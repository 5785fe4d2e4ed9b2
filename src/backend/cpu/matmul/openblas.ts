/**
 * The accelerated path: OpenBLAS's cblas_sgemm / cblas_sgemv called through koffi. Typed arrays (views with a
 * byteOffset included) are passed as pointers without copying; one call costs about 0.2 µs of FFI overhead.
 * The library is loaded lazily and its thread pool set to the core count (ATTEND_MATMUL_THREADS, else
 * OPENBLAS_NUM_THREADS when set, else all cores).
 */
import { defaultThreads, requireErrors, tryRequire } from './node.js';

type Koffi = typeof import('koffi');

const CblasRowMajor = 101;
const CblasNoTrans = 111;
const CblasTrans = 112;

export interface OpenBlas {
  sgemm(order: number, ta: number, tb: number, m: number, n: number, k: number, alpha: number, a: Float32Array, lda: number, b: Float32Array, ldb: number, beta: number, c: Float32Array, ldc: number): void;
  sgemv(order: number, ta: number, m: number, n: number, alpha: number, a: Float32Array, lda: number, x: Float32Array, incx: number, beta: number, y: Float32Array, incy: number): void;
  sdot(n: number, x: Float32Array, incx: number, y: Float32Array, incy: number): number;
  sasum(n: number, x: Float32Array, incx: number): number;
  scopy(n: number, x: Float32Array, incx: number, y: Float32Array, incy: number): void;
  setThreads(n: number): void;
  threads: number;
  /** Library file, version/config string and the kernel family it picked (OPENBLAS_CORETYPE overrides it). */
  file: string;
  config: string;
  core: string;
}

/** Candidate library names: ATTEND_OPENBLAS first, then the usual names per OS. */
function candidates(): string[] {
  const env = globalThis.process?.env?.ATTEND_OPENBLAS;
  const list = env ? [env] : [];
  switch (globalThis.process?.platform) {
    case 'darwin':
      list.push('libopenblas.dylib', '/opt/homebrew/opt/openblas/lib/libopenblas.dylib', '/usr/local/opt/openblas/lib/libopenblas.dylib');
      break;
    case 'win32':
      list.push('libopenblas.dll', 'openblas.dll');
      break;
    default:
      list.push('libopenblas.so.0', 'libopenblas.so', 'libopenblasp.so.0');
  }
  return list;
}

let loaded: OpenBlas | undefined;
let loadError: string | undefined;

/** The loaded library, or undefined (see openBlasError()) when koffi or OpenBLAS is missing. */
export function openBlas(): OpenBlas | undefined {
  if (loaded || loadError !== undefined) return loaded;
  const koffi = tryRequire<Koffi>('koffi');
  if (!koffi) {
    loadError = `koffi not loadable: ${requireErrors.get('koffi')}`;
    return undefined;
  }
  const failures: string[] = [];
  for (const file of candidates()) {
    let lib: ReturnType<Koffi['load']>;
    try {
      lib = koffi.load(file);
    } catch (e) {
      failures.push(`${file}: ${e instanceof Error ? e.message : String(e)}`);
      continue;
    }
    try {
      loaded = bind(lib, file);
      return loaded;
    } catch (e) {
      failures.push(`${file}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  loadError = `OpenBLAS not found (${failures.join('; ')})`;
  return undefined;
}

export function openBlasError(): string | undefined {
  openBlas();
  return loadError;
}

function bind(lib: ReturnType<Koffi['load']>, file: string): OpenBlas {
  const sgemm = lib.func('void cblas_sgemm(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int)');
  const sgemv = lib.func('void cblas_sgemv(int, int, int, int, float, const float *, int, const float *, int, float, float *, int)');
  const sdot = lib.func('float cblas_sdot(int, const float *, int, const float *, int)');
  const scopy = lib.func('void cblas_scopy(int, const float *, int, float *, int)');
  const sasum = lib.func('float cblas_sasum(int, const float *, int)');
  const optional = (decl: string) => {
    try {
      return lib.func(decl);
    } catch {
      return undefined;
    }
  };
  const setNum = optional('void openblas_set_num_threads(int)');
  const getNum = optional('int openblas_get_num_threads()');
  const getConfig = optional('const char *openblas_get_config()');
  const getCore = optional('const char *openblas_get_corename()');
  const api: OpenBlas = {
    sgemm: sgemm as OpenBlas['sgemm'],
    sgemv: sgemv as OpenBlas['sgemv'],
    sdot: sdot as OpenBlas['sdot'],
    scopy: scopy as OpenBlas['scopy'],
    sasum: sasum as OpenBlas['sasum'],
    setThreads(n: number) {
      setNum?.(n);
      api.threads = (getNum?.() as number | undefined) ?? n;
    },
    threads: 1,
    file,
    config: ((getConfig?.() as string | undefined) ?? 'OpenBLAS').trim(),
    core: (getCore?.() as string | undefined) ?? '?',
  };
  const env = globalThis.process?.env ?? {};
  if (env.OPENBLAS_NUM_THREADS && !env.ATTEND_MATMUL_THREADS) api.threads = (getNum?.() as number | undefined) ?? 1;
  else api.setThreads(defaultThreads());
  return api;
}

/** C = A·Bᵀ through OpenBLAS: sgemv for one row (much faster than sgemm with M = 1), sgemm otherwise. */
export function matmulTransBOpenBlas(ob: OpenBlas, a: Float32Array, b: Float32Array, c: Float32Array, m: number, n: number, k: number): void {
  if (m === 1) ob.sgemv(CblasRowMajor, CblasNoTrans, n, k, 1, b, k, a, 1, 0, c, 1);
  else ob.sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, a, k, b, k, 0, c, n);
}

/** C = A·B with B[K,N] through OpenBLAS (sgemv on Bᵀ for one row). */
export function matmulNNOpenBlas(ob: OpenBlas, a: Float32Array, b: Float32Array, c: Float32Array, m: number, n: number, k: number): void {
  if (m === 1) ob.sgemv(CblasRowMajor, CblasTrans, k, n, 1, b, n, a, 1, 0, c, 1);
  else ob.sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, c, n);
}
