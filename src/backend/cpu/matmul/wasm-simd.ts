/**
 * The portable path: the WebAssembly SIMD kernel of wasm-kernel.ts over one (shared, when possible) linear memory,
 * with the call split across worker threads by panel ranges and made synchronous with Atomics.wait.
 *
 * Weights: B is packed into wasm memory, and from the second call with the same Float32Array object on, that packed
 * copy is cached (WeakMap keyed on the array object). Fresh views, such as a KV cache's per-call subarrays, are thus
 * never cached, and pass the same object for weights. The cache costs as much memory as the f32 weights themselves
 * (plus < NR−1 padding rows per matrix), all in the one wasm memory (4 GiB at most); least recently used entries are
 * evicted when it is full, and entries are freed when their array is collected. A cached B must not change unless
 * the call says `reuseB: false` (a few sampled values are rechecked, as a safety net only).
 */
import { defaultThreads, tryRequire } from './node.js';
import { buildGemmModule, MR, NR } from './wasm-kernel.js';

type WorkerThreads = typeof import('node:worker_threads');
type Gemm = (pa: number, lda: number, pb: number, pc: number, ldc: number, m: number, k: number, p0: number, p1: number, mc: number) => void;

const PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB, the wasm32 limit
const INITIAL_PAGES = 256;
/** Control block words (Int32 at byte 0 of the memory), shared with the workers. */
const C = { SEQ: 0, STATE: 1, DONE: 2, CHUNKS: 3, PER_CHUNK: 4, ERR: 5, READY: 6, ARGS: 8 } as const;
/** Control words: the fields above plus 10 gemm arguments. */
const CTL_WORDS = 32;
const HEAP_START = 1024;
/** Rows of A per cache block in the driver. */
const MC = 64;
/** Below this many multiply-adds a call runs on the calling thread only (waking a worker costs ~10 µs). */
const PARALLEL_MIN_WORK = 1 << 18;
/** Spin iterations before sleeping in Atomics.wait (keeps back-to-back calls from paying the futex wake-up). */
const SPIN = 20000;

const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, spin } = workerData;
const C = ${JSON.stringify(C)}, CTL_WORDS = ${CTL_WORDS};
const gemm = new WebAssembly.Instance(module, { env: { memory } }).exports.gemm;
const ctl = new Int32Array(memory.buffer, 0, CTL_WORDS);
let seen = Atomics.load(ctl, C.SEQ);
Atomics.add(ctl, C.READY, 1);
Atomics.notify(ctl, C.READY);
for (;;) {
  let s = Atomics.load(ctl, C.SEQ);
  for (let i = 0; s === seen && i < spin; i++) s = Atomics.load(ctl, C.SEQ);
  if (s === seen) { Atomics.wait(ctl, C.SEQ, seen); continue; }
  seen = s;
  const tag = (s & 0x7fff) << 16;
  const a = ctl.slice(C.ARGS, C.ARGS + 10);
  const chunks = Atomics.load(ctl, C.CHUNKS), per = Atomics.load(ctl, C.PER_CHUNK);
  for (;;) {
    const st = Atomics.load(ctl, C.STATE);
    if ((st & 0x7fff0000) !== tag || (st & 0xffff) >= chunks) break;
    if (Atomics.compareExchange(ctl, C.STATE, st, st + 1) !== st) continue;
    const p0 = (st & 0xffff) * per;
    try { gemm(a[0], a[1], a[2], a[3], a[4], a[5], a[6], p0, Math.min(p0 + per, a[7]), a[9]); }
    catch (e) { Atomics.store(ctl, C.ERR, 1); }
    if (Atomics.add(ctl, C.DONE, 1) + 1 === chunks) Atomics.notify(ctl, C.DONE);
  }
}
`;

/** First-fit allocator over the wasm memory, growing it on demand; 64-byte aligned blocks. */
class Heap {
  private free: { off: number; size: number }[] = [];
  end: number;

  constructor(private readonly memory: WebAssembly.Memory) {
    this.end = memory.buffer.byteLength;
    this.free.push({ off: HEAP_START, size: this.end - HEAP_START });
  }

  /** Byte offset of a new block, or -1 when the memory cannot grow enough. */
  alloc(bytes: number): number {
    const size = Math.max(64, Math.ceil(bytes / 64) * 64);
    for (let i = 0; i < this.free.length; i++) {
      const blk = this.free[i]!;
      if (blk.size < size) continue;
      const off = blk.off;
      blk.off += size;
      blk.size -= size;
      if (blk.size === 0) this.free.splice(i, 1);
      return off;
    }
    const last = this.free[this.free.length - 1];
    const tail = last && last.off + last.size === this.end ? last.size : 0;
    const have = this.end / PAGE;
    const need = Math.ceil((size - tail) / PAGE);
    const pages = Math.min(MAX_PAGES - have, Math.max(need, Math.ceil(have / 8)));
    if (pages < need) return -1;
    try {
      this.memory.grow(pages);
    } catch {
      return -1;
    }
    this.release(this.end, pages * PAGE);
    this.end += pages * PAGE;
    return this.alloc(size);
  }

  release(off: number, bytes: number): void {
    const size = Math.max(64, Math.ceil(bytes / 64) * 64);
    let i = 0;
    while (i < this.free.length && this.free[i]!.off < off) i++;
    this.free.splice(i, 0, { off, size });
    const next = this.free[i + 1];
    if (next && off + size === next.off) {
      this.free[i]!.size += next.size;
      this.free.splice(i + 1, 1);
    }
    const prev = this.free[i - 1];
    if (prev && prev.off + prev.size === off) {
      prev.size += this.free[i]!.size;
      this.free.splice(i, 1);
    }
  }
}

interface Packed {
  off: number;
  bytes: number;
  n: number;
  k: number;
  /** Sampled B values at pack time, rechecked on every hit. */
  sample: Float32Array;
  lastUse: number;
}

interface State {
  memory: WebAssembly.Memory;
  module: WebAssembly.Module;
  gemm: Gemm;
  pack: (src: number, dst: number, rows: number, k: number, j0: number) => void;
  heap: Heap;
  f32: Float32Array;
  ctl: Int32Array;
  threads: number;
  workers: import('node:worker_threads').Worker[];
  /** False once a worker has failed or exited: calls then stay on the calling thread. */
  alive: boolean;
  failures: number;
  seq: number;
  scratch: Record<'ac' | 'b' | 'stage', { off: number; bytes: number }>;
  tick: number;
  cachedBytes: number;
  entries: Set<Packed>;
}

let state: State | undefined;
let initError: string | undefined;
const cache = new WeakMap<Float32Array, Packed>();
/** Arrays seen once: cached on their second call only, so per-call views never fill the cache. */
const seen = new WeakSet<Float32Array>();
const registry = new FinalizationRegistry<Packed>((e) => dropEntry(e));

function dropEntry(e: Packed): void {
  if (!state || !state.entries.delete(e)) return;
  state.heap.release(e.off, e.bytes);
  state.cachedBytes -= e.bytes;
}

/** Why the path is unavailable, or undefined when it works. */
export function wasmSimdError(): string | undefined {
  init();
  return initError;
}

function init(): State | undefined {
  if (state || initError !== undefined) return state;
  try {
    if (typeof WebAssembly !== 'object') throw new Error('no WebAssembly');
    const wanted = defaultThreads();
    const wt = wanted > 1 && typeof SharedArrayBuffer === 'function' ? tryRequire<WorkerThreads>('node:worker_threads') : undefined;
    const shared = wt !== undefined;
    const bytes = buildGemmModule({ initialPages: INITIAL_PAGES, maximumPages: MAX_PAGES, shared });
    if (!WebAssembly.validate(bytes)) throw new Error('WebAssembly SIMD not supported');
    const memory = new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum: MAX_PAGES, shared });
    const module = new WebAssembly.Module(bytes);
    const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
    const workers: State['workers'] = [];
    if (wt) {
      for (let i = 1; i < wanted; i++) {
        const w = new wt.Worker(WORKER_SOURCE, { eval: true, workerData: { module, memory, spin: SPIN }, execArgv: [], stdout: false });
        w.unref();
        w.once('error', () => (state!.alive = false));
        w.once('exit', () => (state!.alive = false));
        workers.push(w);
      }
    }
    const ctl = new Int32Array(memory.buffer, 0, CTL_WORDS);
    state = {
      memory,
      module,
      gemm: exports.gemm as Gemm,
      pack: exports.pack as State['pack'],
      heap: new Heap(memory),
      f32: new Float32Array(memory.buffer),
      ctl,
      threads: workers.length + 1,
      workers,
      alive: true,
      failures: 0,
      seq: 0,
      scratch: { ac: { off: -1, bytes: 0 }, b: { off: -1, bytes: 0 }, stage: { off: -1, bytes: 0 } },
      tick: 0,
      cachedBytes: 0,
      entries: new Set(),
    };
    warmUp(state);
    return state;
  } catch (e) {
    initError = e instanceof Error ? e.message : String(e);
    return undefined;
  }
}

/** A few small calls so V8 tiers the kernels up to optimized code before real work. */
function warmUp(s: State): void {
  const a = new Float32Array(4 * 64).fill(1);
  const b = new Float32Array(8 * 64).fill(1);
  const c = new Float32Array(4 * 8);
  for (let i = 0; i < 200; i++) run(s, a, b, c, 4, 8, 64, true, false, false);
}

/** Resolves once the worker threads are running (calls before that run on the calling thread alone). */
export async function wasmSimdReady(): Promise<void> {
  const s = init();
  if (!s || s.workers.length === 0) return; // (ctl is only valid for shared memory, which never detaches)
  // Polled on a timer: the workers are unref'd, so their 'online' event alone would not keep Node waiting.
  const start = Date.now();
  while (Atomics.load(s.ctl, C.READY) < s.workers.length && s.alive && Date.now() - start < 30_000) {
    await new Promise((r) => setTimeout(r, 1));
  }
}

export function wasmSimdInfo(): { threads: number; detail: string } {
  const s = init();
  if (!s) return { threads: 0, detail: initError ?? '' };
  const mib = (x: number) => `${(x / 2 ** 20).toFixed(1)} MiB`;
  return {
    threads: s.threads,
    detail: `f32x4 ${MR}x${NR} kernel, ${s.workers.length} worker thread(s)${s.workers.length ? ' + caller' : ''}, packed weights ${mib(s.cachedBytes)} in ${s.entries.size} matrices, wasm memory ${mib(s.heap.end)}`,
  };
}

/** Frees the packed copy of `b`, if cached. */
export function releaseWasmWeights(b: Float32Array): void {
  const e = cache.get(b);
  if (e) {
    cache.delete(b);
    registry.unregister(e);
    dropEntry(e);
  }
}

function alloc(s: State, bytes: number, keep?: Packed): number {
  for (;;) {
    const off = s.heap.alloc(bytes);
    if (off >= 0) {
      if (s.f32.buffer.byteLength !== s.heap.end) s.f32 = new Float32Array(s.memory.buffer);
      return off;
    }
    let lru: Packed | undefined;
    for (const e of s.entries) if (e !== keep && (!lru || e.lastUse < lru.lastUse)) lru = e;
    if (!lru) throw new RangeError(`matmul (wasm-simd): cannot allocate ${bytes} bytes of wasm memory (4 GiB limit)`);
    dropEntry(lru);
  }
}

const SAMPLES = 9;

function sampleOf(b: Float32Array, len: number): Float32Array {
  const out = new Float32Array(SAMPLES);
  for (let i = 0; i < SAMPLES; i++) out[i] = b[Math.floor(((len - 1) * i) / (SAMPLES - 1))]!;
  return out;
}

function matchesSample(sample: Float32Array, b: Float32Array, len: number): boolean {
  for (let i = 0; i < SAMPLES; i++) if (!Object.is(sample[i], b[Math.floor(((len - 1) * i) / (SAMPLES - 1))])) return false;
  return true;
}

/** Bytes of B rows staged at a time for the wasm packer. */
const STAGE_BYTES = 256 << 10;

function stageRows(k: number): number {
  return Math.max(1, Math.floor(STAGE_BYTES / (k * 4)));
}

/**
 * Writes B[N,K] (transB) or B[K,N] into panels of NR output features, k-major inside a panel, zero-padded, at byte
 * offset `dst`. B[N,K] is copied in slices to the staging block and transposed there by the wasm `pack`.
 */
function packB(s: State, dst: number, b: Float32Array, n: number, k: number, transB: boolean): void {
  const f32 = s.f32;
  const panels = Math.ceil(n / NR);
  if (!transB) {
    for (let kk = 0; kk < k; kk++) {
      const src = kk * n;
      for (let p = 0, d = dst / 4 + kk * NR; p < panels; p++, d += NR * k) {
        const w = Math.min(NR, n - p * NR);
        for (let jj = 0; jj < w; jj++) f32[d + jj] = b[src + p * NR + jj]!;
        for (let jj = w; jj < NR; jj++) f32[d + jj] = 0;
      }
    }
    return;
  }
  if (n % NR) f32.fill(0, dst / 4 + (panels - 1) * NR * k, dst / 4 + panels * NR * k);
  const stage = s.scratch.stage.off;
  const rows = stageRows(k);
  for (let j0 = 0; j0 < n; j0 += rows) {
    const r = Math.min(rows, n - j0);
    f32.set(b.subarray(j0 * k, (j0 + r) * k), stage / 4);
    s.pack(stage, dst, r, k, j0);
  }
}

function packedBytes(n: number, k: number): number {
  return Math.ceil(n / NR) * NR * k * 4;
}

/** Byte offset of B packed in wasm memory: cached (see the file comment) or packed into the B scratch block. */
function packedB(s: State, b: Float32Array, n: number, k: number, transB: boolean, reuse: boolean): number {
  let e = reuse && transB ? cache.get(b) : undefined;
  if (!e) {
    if (!reuse || !transB || !seen.has(b)) {
      if (reuse && transB) seen.add(b);
      const at = scratch(s, 'b', packedBytes(n, k));
      packB(s, at, b, n, k, transB);
      return at;
    }
    const bytes = packedBytes(n, k);
    e = { off: alloc(s, bytes), bytes, n, k, sample: sampleOf(b, n * k), lastUse: ++s.tick };
    cache.set(b, e);
    registry.register(b, e, e);
    s.entries.add(e);
    s.cachedBytes += bytes;
    packB(s, e.off, b, n, k, true);
  } else if (e.n !== n || e.k !== k) {
    releaseWasmWeights(b);
    return packedB(s, b, n, k, transB, reuse);
  } else {
    if (!matchesSample(e.sample, b, n * k)) {
      e.sample = sampleOf(b, n * k);
      packB(s, e.off, b, n, k, true);
    }
  }
  e.lastUse = ++s.tick;
  return e.off;
}

/** A reusable block per purpose ('ac': A and C, 'b': uncached B, 'stage': B rows to pack), grown on demand. */
function scratch(s: State, which: 'ac' | 'b' | 'stage', bytes: number): number {
  const blk = s.scratch[which];
  if (blk.bytes < bytes) {
    if (blk.off >= 0) s.heap.release(blk.off, blk.bytes);
    s.scratch[which] = { off: -1, bytes: 0 };
    s.scratch[which] = { off: alloc(s, bytes), bytes };
  }
  return s.scratch[which].off;
}

/** C = A·Bᵀ on the wasm path. `reuseB`: B holds weights that do not change (see the file comment). */
export function matmulTransBWasm(a: Float32Array, b: Float32Array, c: Float32Array, m: number, n: number, k: number, reuseB = true): void {
  run(ensure(), a, b, c, m, n, k, true, reuseB, true);
}

/** C = A·B with B[K,N] row-major, on the wasm path (B is packed per call, never cached). */
export function matmulNNWasm(a: Float32Array, b: Float32Array, c: Float32Array, m: number, n: number, k: number): void {
  run(ensure(), a, b, c, m, n, k, false, false, true);
}

function ensure(): State {
  const s = init();
  if (!s) throw new Error(`matmul: wasm-simd unavailable: ${initError}`);
  return s;
}

/** Uncached B scratch above this size is freed after the call rather than kept. */
const KEEP_B_SCRATCH = 64 << 20;

function run(s: State, a: Float32Array, b: Float32Array, c: Float32Array, m: number, n: number, k: number, transB: boolean, reuseB: boolean, parallel: boolean): void {
  const panels = Math.ceil(n / NR);
  const ldc = panels * NR;
  const aBytes = Math.ceil((m * k * 4) / 64) * 64;
  // Scratch first: later allocations may evict cache entries, never the block B was just packed into.
  const pa = scratch(s, 'ac', aBytes + m * ldc * 4);
  const pc = pa + aBytes;
  scratch(s, 'stage', stageRows(k) * k * 4);
  const pb = packedB(s, b, n, k, transB, reuseB);
  const f32 = s.f32;
  f32.set(a.length === m * k ? a : a.subarray(0, m * k), pa / 4);

  const ready = s.alive && s.workers.length > 0 && Atomics.load(s.ctl, C.READY) === s.workers.length;
  if (parallel && ready && panels > 1 && m * n * k >= PARALLEL_MIN_WORK) {
    if (!runParallel(s, [pa, k * 4, pb, pc, ldc * 4, m, k, panels, 0, MC])) {
      // A worker trapped (e.g. it had not yet seen a memory grow): redo it all here; after 3 times stop using them.
      if (++s.failures >= 3) s.alive = false;
      s.gemm(pa, k * 4, pb, pc, ldc * 4, m, k, 0, panels, MC);
    }
  } else {
    s.gemm(pa, k * 4, pb, pc, ldc * 4, m, k, 0, panels, MC);
  }

  if (ldc === n) c.set(f32.subarray(pc / 4, pc / 4 + m * n));
  else for (let i = 0; i < m; i++) c.set(f32.subarray(pc / 4 + i * ldc, pc / 4 + i * ldc + n), i * n);
  const bs = s.scratch.b;
  if (bs.bytes > KEEP_B_SCRATCH) {
    s.heap.release(bs.off, bs.bytes);
    s.scratch.b = { off: -1, bytes: 0 };
  }
}

/**
 * Publishes one job and works on it alongside the workers; chunks (panel ranges) are claimed by CAS on STATE.
 * False when a worker failed its chunk.
 */
function runParallel(s: State, args: number[]): boolean {
  const ctl = s.ctl;
  const panels = args[7]!;
  const per = Math.max(1, Math.ceil(panels / (s.threads * 6)));
  const chunks = Math.ceil(panels / per);
  for (let i = 0; i < args.length; i++) ctl[C.ARGS + i] = args[i]!;
  s.seq = (s.seq + 1) & 0x7fffffff;
  const tag = (s.seq & 0x7fff) << 16;
  Atomics.store(ctl, C.CHUNKS, chunks);
  Atomics.store(ctl, C.PER_CHUNK, per);
  Atomics.store(ctl, C.DONE, 0);
  Atomics.store(ctl, C.STATE, tag);
  Atomics.store(ctl, C.SEQ, s.seq);
  Atomics.notify(ctl, C.SEQ);
  for (;;) {
    const st = Atomics.load(ctl, C.STATE);
    if ((st & 0xffff) >= chunks) break;
    if (Atomics.compareExchange(ctl, C.STATE, st, st + 1) !== st) continue;
    const p0 = (st & 0xffff) * per;
    s.gemm(args[0]!, args[1]!, args[2]!, args[3]!, args[4]!, args[5]!, args[6]!, p0, Math.min(p0 + per, panels), args[9]!);
    Atomics.add(ctl, C.DONE, 1);
  }
  let spins = 0;
  const start = Date.now();
  for (let done = Atomics.load(ctl, C.DONE); done < chunks; done = Atomics.load(ctl, C.DONE)) {
    if (++spins < SPIN) continue;
    Atomics.wait(ctl, C.DONE, done, 100);
    if (Date.now() - start > 60_000) throw new Error('matmul (wasm-simd): worker thread stopped responding');
  }
  return Atomics.exchange(ctl, C.ERR, 0) === 0;
}
