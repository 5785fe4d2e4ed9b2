/**
 * The CPU backend: f32 compute over host arrays, matrix products through the accelerated matmul path, RMSNorm, RoPE
 * and SwiGLU through WebAssembly SIMD kernels where the runtime has them, and outputs drawn from a buffer pool inside
 * scopes (buffer-pool.ts).
 */
import type { AttentionOptions, Backend } from '../backend.js';
import type { LayerCache } from '../../cache/kv-cache.js';
import { HostBackend } from '../host.js';
import { Tensor } from '../../tensor/tensor.js';
import { swiglu } from './activation/swiglu.js';
import { BufferPool } from './buffer-pool.js';
import { attention, type CpuPaths } from './attention.js';
import { wasmSoftmaxError } from './attention/softmax.js';
import { check } from '../../errors.js';
import * as ew from './elementwise.js';
import { matmulPathError, matmulTransB } from './matmul.js';
import { addRmsNorm, rmsNorm } from './norm/rms-norm.js';
import { rope } from './rope/rope.js';

export class CpuBackend extends HostBackend implements Backend {
  readonly name = 'cpu';
  private readonly pool = new BufferPool();

  /**
   * `paths`: this backend's own kernel paths (matmul 'openblas' | 'wasm-simd' | 'js', softmax 'wasm' | 'js'), so two
   * backends in one process can run different paths (a benchmark or a test against another path); absent ones
   * follow the process default (ATTEND_MATMUL, ATTEND_SOFTMAX). An unavailable path fails here, in one line.
   */
  constructor(readonly paths: CpuPaths = {}) {
    super();
    if (paths.matmul) check(matmulPathError(paths.matmul) === undefined, () => `matmul path '${paths.matmul}' is not available: ${matmulPathError(paths.matmul!)}`);
    if (paths.softmax === 'wasm') check(wasmSoftmaxError() === undefined, () => `softmax path 'wasm' is not available: ${wasmSoftmaxError()}`);
  }

  scope<R extends Tensor | Tensor[] | void>(fn: () => R): R {
    return this.pool.scope(fn);
  }

  linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
    const [outDim, inDim] = weight.shape;
    const rows = x.size / inDim;
    const y = this.pool.alloc(rows * outDim);
    matmulTransB(x.f32, weight.f32, y, rows, outDim, inDim, { path: this.paths.matmul });
    if (bias) {
      const b = bias.f32;
      for (let r = 0; r < rows; r++) for (let i = 0; i < outDim; i++) y[r * outDim + i] += b[i];
    }
    return new Tensor([rows, outDim], y);
  }

  embedding(table: Tensor, ids: ArrayLike<number>): Tensor {
    const dim = table.cols;
    const out = this.pool.alloc(ids.length * dim);
    ew.embedding(table.f32, dim, ids, out);
    return new Tensor([ids.length, dim], out);
  }

  rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
    const out = this.pool.alloc(x.size);
    rmsNorm(x.f32, weight.f32, eps, out);
    return new Tensor(x.shape, out);
  }

  addRmsNorm(x: Tensor, delta: Tensor, weight: Tensor, eps: number, out?: Tensor): Tensor {
    const result = out ?? new Tensor(x.shape, this.pool.alloc(x.size));
    addRmsNorm(x.f32, delta.f32, weight.f32, eps, result.f32);
    return result;
  }

  layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor {
    const out = this.pool.alloc(x.size);
    ew.layerNorm(x.f32, weight.f32, bias.f32, eps, out);
    return new Tensor(x.shape, out);
  }

  rope(x: Tensor, heads: number, headDim: number, tables: { cos: Float32Array; sin: Float32Array }): void {
    rope(x.f32, x.size / (heads * headDim), heads, headDim, tables);
  }

  swiglu(gateUp: Tensor, inner: number): Tensor {
    const rows = gateUp.size / (2 * inner);
    const out = this.pool.alloc(rows * inner);
    swiglu(gateUp.f32, rows, inner, out);
    return new Tensor([rows, inner], out);
  }

  gelu(x: Tensor, kind: 'gelu_new' | 'gelu'): void {
    ew.gelu(x.f32, kind);
  }

  add(a: Tensor, b: Tensor): void {
    const x = a.f32;
    const y = b.f32;
    for (let i = 0; i < x.length; i++) x[i] += y[i];
  }

  fillColumns(x: Tensor, start: number, end: number, value: number): void {
    const cols = x.cols;
    const data = x.f32;
    for (let r = 0; r < x.rows; r++) data.fill(value, r * cols + start, r * cols + end);
  }

  copy(dst: Tensor, src: Tensor): void {
    if (dst.size !== src.size) throw new Error(`copy: ${src.size} elements into ${dst.size}`);
    dst.f32.set(src.f32);
  }

  splitColumns(x: Tensor, widths: number[]): Tensor[] {
    const rows = x.rows;
    const cols = x.cols;
    const src = x.f32;
    let offset = 0;
    return widths.map((w) => {
      const out = this.pool.alloc(rows * w);
      for (let r = 0; r < rows; r++) out.set(src.subarray(r * cols + offset, r * cols + offset + w), r * w);
      offset += w;
      return new Tensor([rows, w], out);
    });
  }

  concatRows(parts: Tensor[]): Tensor {
    const cols = parts[0].cols;
    const out = this.pool.alloc(parts.reduce((n, p) => n + p.size, 0));
    let offset = 0;
    for (const p of parts) {
      out.set(p.f32, offset);
      offset += p.size;
    }
    return new Tensor([out.length / cols, cols], out);
  }

  sliceRows(x: Tensor, start: number, end: number): Tensor {
    const cols = x.cols;
    const out = this.pool.alloc((end - start) * cols);
    out.set(x.f32.subarray(start * cols, end * cols));
    return new Tensor([end - start, cols], out);
  }

  attention(q: Tensor, layer: LayerCache, positions: Int32Array, opts: AttentionOptions): Tensor {
    const rows = positions.length;
    const numHeads = q.size / rows / layer.heads[0].headDim;
    const out = this.pool.alloc(q.size);
    attention(q.f32, rows, numHeads, layer, positions, opts, out, this.paths);
    return new Tensor(q.shape, out);
  }
}

export const cpuBackend = new CpuBackend();
