/**
 * Row softmax over a block of attention scores, in one of two implementations:
 *  - 'wasm': the WebAssembly SIMD kernel of softmax-kernel.ts. The scores live in the kernel's own linear memory,
 *    so the score and output matmuls read and write them there and nothing is copied.
 *  - 'js': plain JavaScript with Math.exp (softmaxInPlace of elementwise.ts), the reference.
 * ATTEND_SOFTMAX=wasm|js forces one (default: wasm when WebAssembly SIMD works, else js); selectSoftmax() too.
 *
 * A workspace holds one block: rows × cols scores (row stride cols) and the live range [lo, hi) of each row; run()
 * turns each row into probabilities over its range and sets everything outside it to 0.
 */
import { softmaxInPlace } from '../elementwise.js';
import { buildSoftmaxModule } from './softmax-kernel.js';

export type SoftmaxPath = 'wasm' | 'js';

export interface SoftmaxBlock {
  /** rows × cols scores, row-major: written by the caller, turned into probabilities in place by run(). */
  readonly scores: Float32Array;
  /** Per row: lo at 2r, hi at 2r + 1 (0 ≤ lo ≤ hi ≤ cols). */
  readonly ranges: Int32Array;
  run(): void;
}

const PAGE = 65536;
const MAX_PAGES = 65536;

interface WasmExports {
  exp(src: number, dst: number, n: number): void;
  softmax(base: number, rows: number, cols: number, ranges: number, sums: number, normalize: number): void;
}

let compiled: WebAssembly.Module | undefined;
let compileError: string | undefined;

function wasmModule(): WebAssembly.Module | undefined {
  if (compiled || compileError !== undefined) return compiled;
  try {
    if (typeof WebAssembly !== 'object') throw new Error('no WebAssembly');
    const bytes = buildSoftmaxModule({ initialPages: 1, maximumPages: MAX_PAGES, shared: false });
    if (!WebAssembly.validate(bytes)) throw new Error('WebAssembly SIMD not supported');
    compiled = new WebAssembly.Module(bytes);
  } catch (e) {
    compileError = e instanceof Error ? e.message : String(e);
  }
  return compiled;
}

/** Why the wasm path cannot run here, or undefined when it can. */
export function wasmSoftmaxError(): string | undefined {
  wasmModule();
  return compileError;
}

let selected: SoftmaxPath | undefined;

/** Force a path, or 'auto' (ATTEND_SOFTMAX if set, else wasm when available, else js). */
export function selectSoftmax(path: 'auto' | SoftmaxPath): void {
  if (path === 'auto') {
    const env = globalThis.process?.env?.ATTEND_SOFTMAX;
    if (env === 'js' || env === 'wasm') path = env;
    else if (env) throw new Error(`ATTEND_SOFTMAX must be wasm or js (got '${env}')`);
    else path = wasmSoftmaxError() === undefined ? 'wasm' : 'js';
  }
  if (path === 'wasm' && wasmSoftmaxError() !== undefined) throw new Error(`softmax path 'wasm' is not available: ${compileError}`);
  selected = path;
  pool.length = 0;
}

export function softmaxPath(): SoftmaxPath {
  if (!selected) selectSoftmax('auto');
  return selected!;
}

/** One reusable block of scores; grown on demand, never shrunk. */
export interface Workspace {
  block(rows: number, cols: number): SoftmaxBlock;
}

class WasmWorkspace implements Workspace {
  private readonly memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES });
  private readonly exports = new WebAssembly.Instance(wasmModule()!, { env: { memory: this.memory } }).exports as unknown as WasmExports;

  block(rows: number, cols: number): SoftmaxBlock {
    const sumsAt = rows * 8;
    const scoresAt = Math.ceil((rows * 16) / 64) * 64;
    const bytes = scoresAt + rows * cols * 4;
    const have = this.memory.buffer.byteLength;
    if (bytes > have) this.memory.grow(Math.ceil((bytes - have) / PAGE));
    const buffer = this.memory.buffer;
    const exports = this.exports;
    return {
      scores: new Float32Array(buffer, scoresAt, rows * cols),
      ranges: new Int32Array(buffer, 0, rows * 2),
      run() {
        exports.softmax(scoresAt, rows, cols, 0, sumsAt, 1);
      },
    };
  }

  /** e^x of each element, through the kernel (for tests). */
  exp(x: Float32Array): Float32Array {
    const bytes = x.length * 8;
    const have = this.memory.buffer.byteLength;
    if (bytes > have) this.memory.grow(Math.ceil((bytes - have) / PAGE));
    const f32 = new Float32Array(this.memory.buffer);
    f32.set(x, 0);
    this.exports.exp(0, x.length * 4, x.length);
    return f32.slice(x.length, 2 * x.length);
  }
}

class JsWorkspace implements Workspace {
  private scores = new Float32Array(0);
  private ranges = new Int32Array(0);

  block(rows: number, cols: number): SoftmaxBlock {
    if (this.scores.length < rows * cols) this.scores = new Float32Array(rows * cols);
    if (this.ranges.length < rows * 2) this.ranges = new Int32Array(rows * 2);
    const scores = this.scores.subarray(0, rows * cols);
    const ranges = this.ranges.subarray(0, rows * 2);
    return {
      scores,
      ranges,
      run() {
        for (let r = 0; r < rows; r++) {
          const row = scores.subarray(r * cols, (r + 1) * cols);
          const lo = ranges[2 * r];
          const hi = ranges[2 * r + 1];
          row.fill(0, 0, lo);
          row.fill(0, hi);
          softmaxInPlace(row.subarray(lo, hi));
        }
      },
    };
  }
}

/** Free workspaces of the process default's path (one, unless attention was re-entered from an observer). */
const pool: Workspace[] = [];
/** Free workspaces of paths a backend chose for itself. */
const pools: Record<SoftmaxPath, Workspace[]> = { wasm: [], js: [] };

/** A workspace of `path` (a CpuBackend's own choice), or of the process default. */
export function acquireWorkspace(path?: SoftmaxPath): Workspace {
  if (path !== undefined) {
    if (path === 'wasm' && wasmSoftmaxError() !== undefined) throw new Error(`softmax path 'wasm' is not available: ${compileError}`);
    return pools[path].pop() ?? (path === 'wasm' ? new WasmWorkspace() : new JsWorkspace());
  }
  return pool.pop() ?? (softmaxPath() === 'wasm' ? new WasmWorkspace() : new JsWorkspace());
}

export function releaseWorkspace(w: Workspace, path?: SoftmaxPath): void {
  if (path !== undefined) pools[path].push(w);
  else if ((w instanceof WasmWorkspace) === (softmaxPath() === 'wasm')) pool.push(w);
}

/** e^x elementwise through the wasm kernel (accurate to about 1 ulp for x ≤ 0); for tests. */
export function wasmExp(x: Float32Array): Float32Array {
  if (wasmSoftmaxError() !== undefined) throw new Error(`wasm softmax unavailable: ${compileError}`);
  return new WasmWorkspace().exp(x);
}

/** Softmax of each row of `x` (rows × cols) over its [lo, hi) through the given path; zeros outside (for tests). */
export function softmaxRows(path: SoftmaxPath, x: Float32Array, rows: number, cols: number, ranges: Int32Array): Float32Array {
  const w = path === 'wasm' ? new WasmWorkspace() : new JsWorkspace();
  const b = w.block(rows, cols);
  b.scores.set(x.subarray(0, rows * cols));
  b.ranges.set(ranges.subarray(0, rows * 2));
  b.run();
  return b.scores.slice();
}
