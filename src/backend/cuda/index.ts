/**
 * The CUDA backend: the same runtime on an NVIDIA GPU, driven from TypeScript through the driver API (koffi), with
 * kernels compiled at run time by NVRTC (kernels/*.cu) and matrix products by cuBLAS. Weights stay in their stored
 * type on the device (bf16/f16, or f32); activations are f32 device tensors; the KV memory is per-head ragged on the
 * device (head-memory.ts). Work is queued on one stream; the host waits only where data leaves the device
 * (read(), the logits; probabilities for observers; keys read by host-side presses).
 *
 * Host tensors handed to an op (a caller's own data, the conformance suite's inputs) are uploaded first, and an
 * in-place op on one writes the result back, so the backend takes what every other backend takes.
 *
 * Not on the device yet, refused in one line: remapped reads (LongHeads), pruned key channels (ThinK), entries
 * weighted by a token count (RazorAttention's compensation token), and recurrent states run on the host.
 */
import type { AttentionOptions, Backend, DeviceMemoryReport } from '../backend.js';
import { ENTRY_LOG_WEIGHT } from '../../cache/head-memory.js';
import { type CacheShape, KVCache, LayerCache } from '../../cache/kv-cache.js';
import { RecurrentState, type StateShape } from '../../cache/recurrent-state.js';
import type { HeadMemory } from '../../cache/head-memory.js';
import { checkTree } from '../../attention/visibility.js';
import { AttendError } from '../../errors.js';
import type { DType } from '../../tensor/dtype.js';
import { Tensor } from '../../tensor/tensor.js';
import { asF32 } from '../../models/weights.js';
import { type CudaContext, cudaContext, KV_DEFINES, STORE } from './context.js';
import { DeviceHeadMemory } from './head-memory.js';
import { type Block, DeviceMirror } from './memory.js';

type Layer = LayerCache<HeadMemory>;

/** KV heads per attention launch (the kernels' MAXH). */
const MAXH = 32;
/** Rows up to which a product runs as a matrix–vector kernel over the weights (kernels/elementwise.cu gemv). */
const GEMV_ROWS = 8;
/** Query rows from which prefill over a 16-bit cache takes the tensor-core kernel. */
const FLASH_MIN_ROWS = 16;
/** Probabilities computed at once for an observer, in floats (64 MiB). */
const PROBS_AT_ONCE = 1 << 24;

export interface CudaOptions {
  /**
   * 'stored' (default): weights stay in the checkpoint's type and 16-bit weights multiply bf16/f16 activations with
   * f32 accumulation, as PyTorch runs such a model; 'f32': weights widened to f32 at load and every product in f32,
   * for parity with the CPU backend (twice the memory, slower).
   */
  weights?: 'stored' | 'f32';
}

function ascending(p: Int32Array): boolean {
  for (let i = 1; i < p.length; i++) if (p[i] <= p[i - 1]) return false;
  return true;
}

export class CudaBackend implements Backend {
  readonly name = 'cuda';
  readonly ctx: CudaContext;
  readonly weights: 'stored' | 'f32';

  /** A forward's positions (appendKv and attention) and its RoPE tables, uploaded once for all its layers. */
  private readonly positionsOnDevice: DeviceMirror;
  private readonly ropeOnDevice: DeviceMirror;

  constructor(opts: CudaOptions = {}, ctx?: CudaContext) {
    this.ctx = ctx ?? cudaContext();
    this.weights = opts.weights ?? 'stored';
    this.positionsOnDevice = new DeviceMirror(this.ctx.alloc, this.ctx.driver);
    this.ropeOnDevice = new DeviceMirror(this.ctx.alloc, this.ctx.driver);
  }

  private get driver() {
    return this.ctx.driver;
  }

  private get alloc() {
    return this.ctx.alloc;
  }

  scope<R extends Tensor | Tensor[] | void>(fn: () => R): R {
    return this.alloc.scope(fn);
  }

  // ---- tensors in and out ----

  private empty(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    return this.alloc.tensor(shape, dtype);
  }

  /** The device address of t's elements, uploading a host tensor first. */
  private at(t: Tensor): number {
    if (t.device) return t.device.ptr;
    const d = this.empty(t.shape, t.dtype);
    this.driver.upload(d.device!.ptr, t.data);
    return d.device!.ptr;
  }

  /** Runs an in-place op on t's device memory; a host tensor gets the result back. */
  private inPlace(t: Tensor, op: (ptr: number) => void): void {
    const ptr = this.at(t);
    op(ptr);
    if (!t.device) this.driver.download(t.data, ptr);
  }

  private weightBytes = 0;

  memory(): DeviceMemoryReport {
    const [free, total] = this.driver.memInfo();
    const a = this.alloc;
    const i = this.driver.info;
    return { device: `${i.name} (sm_${i.computeCapability}, ${i.smCount} SMs)`, weightBytes: this.weightBytes, usedBytes: a.usedBytes, peakUsedBytes: a.peakUsedBytes, reservedBytes: a.reservedBytes, freeBytes: free, totalBytes: total };
  }

  weight(stored: Tensor): Tensor {
    const wide = this.weights === 'f32' && stored.dtype !== 'f32';
    const t = this.alloc.tensor(stored.shape, wide ? 'f32' : stored.dtype, true);
    this.driver.upload(t.device!.ptr, wide ? asF32(stored) : stored.data);
    this.weightBytes += t.bytes;
    return t;
  }

  read(t: Tensor): Float32Array {
    if (!t.device) return asF32(t);
    const out = new Float32Array(t.size);
    this.ctx.readRows(t.device.ptr, t.dtype, out);
    return out;
  }

  release(t: Tensor): void {
    if (t.device) this.alloc.release(t.device as Block);
  }

  upload(shape: readonly number[], data: Float32Array): Tensor {
    const t = this.empty(shape);
    this.driver.upload(t.device!.ptr, data);
    return t;
  }

  // ---- dense ops ----

  private ew(name: string): unknown {
    return this.ctx.fn('elementwise.cu', name);
  }

  /** A weight-typed kernel (suffix _0 f32, _1 bf16, _2 f16). */
  private typed(name: string, dtype: DType): unknown {
    return this.ctx.fn('elementwise.cu', `${name}_${STORE[dtype]}`);
  }

  linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
    const [outDim, inDim] = weight.shape;
    const rows = x.size / inDim;
    const y = this.empty([rows, outDim]);
    const w = this.at(weight);
    let input = this.at(x);
    if (rows <= GEMV_ROWS && inDim % (weight.dtype === 'f32' ? 4 : 8) === 0) {
      // Decode: one pass over the weights at full width (kernels/elementwise.cu gemv).
      const fused = bias && bias.dtype === weight.dtype;
      this.driver.launch(this.typed('gemv', weight.dtype), [Math.ceil(outDim / 8), 1, 1], [256, 1, 1],
        this.driver.args().p(input).p(w).p(y.device!.ptr).p(fused ? this.at(bias) : 0).i(rows).i(outDim).i(inDim));
      if (bias && !fused) this.ctx.launch1d(this.typed('bias_add', bias.dtype), y.size, this.driver.args().p(y.device!.ptr).p(this.at(bias)).l(y.size).i(outDim));
      return y;
    }
    let narrowed: Block | undefined;
    if (weight.dtype !== 'f32') {
      narrowed = this.alloc.alloc(x.size * 2);
      this.ctx.launch1d(this.typed('narrow', weight.dtype), x.size, this.driver.args().p(input).p(narrowed.ptr).l(x.size));
      input = narrowed.ptr;
    }
    this.ctx.cublas.linear(input, w, y.device!.ptr, rows, outDim, inDim, weight.dtype);
    if (narrowed) this.alloc.release(narrowed);
    if (bias) this.ctx.launch1d(this.typed('bias_add', bias.dtype), y.size, this.driver.args().p(y.device!.ptr).p(this.at(bias)).l(y.size).i(outDim));
    return y;
  }

  embedding(table: Tensor, ids: ArrayLike<number>): Tensor {
    const dim = table.cols;
    const out = this.empty([ids.length, dim]);
    const idBlock = this.ctx.temp(Int32Array.from(ids));
    this.driver.launch(this.typed('embedding', table.dtype), [ids.length, 1, 1], [128, 1, 1], this.driver.args().p(this.at(table)).p(idBlock.ptr).p(out.device!.ptr).i(dim));
    this.alloc.release(idBlock);
    return out;
  }

  rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
    const out = this.empty(x.shape);
    this.driver.launch(this.typed('rms_norm', weight.dtype), [x.rows, 1, 1], [256, 1, 1], this.driver.args().p(this.at(x)).p(this.at(weight)).p(out.device!.ptr).i(x.cols).f(eps));
    return out;
  }

  addRmsNorm(x: Tensor, delta: Tensor, weight: Tensor, eps: number, out?: Tensor): Tensor {
    const result = out ?? this.empty(x.shape);
    const o = this.at(result);
    this.inPlace(x, (px) =>
      this.driver.launch(this.typed('add_rms_norm', weight.dtype), [x.rows, 1, 1], [256, 1, 1], this.driver.args().p(px).p(this.at(delta)).p(this.at(weight)).p(o).i(x.cols).f(eps)));
    if (!result.device) this.driver.download(result.data, o);
    return result;
  }

  layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor {
    const out = this.empty(x.shape);
    this.driver.launch(this.typed('layer_norm', weight.dtype), [x.rows, 1, 1], [256, 1, 1], this.driver.args().p(this.at(x)).p(this.at(weight)).p(this.at(bias)).p(out.device!.ptr).i(x.cols).f(eps));
    return out;
  }

  rope(x: Tensor, heads: number, headDim: number, tables: { cos: Float32Array; sin: Float32Array }): void {
    const rows = x.size / (heads * headDim);
    const half = tables.cos.length / rows;
    const n = tables.cos.length;
    const b = this.ropeOnDevice.of(tables.cos, tables.sin);
    this.inPlace(x, (px) =>
      this.ctx.launch1d(this.ew('rope'), rows * heads * half, this.driver.args().p(px).p(b).p(b + 4 * n).i(rows).i(heads).i(headDim).i(half)));
  }

  swiglu(gateUp: Tensor, inner: number): Tensor {
    const rows = gateUp.size / (2 * inner);
    const out = this.empty([rows, inner]);
    this.ctx.launch1d(this.ew('swiglu'), rows * inner, this.driver.args().p(this.at(gateUp)).p(out.device!.ptr).i(rows).i(inner));
    return out;
  }

  gelu(x: Tensor, kind: 'gelu_new' | 'gelu'): void {
    this.inPlace(x, (px) => this.ctx.launch1d(this.ew('gelu'), x.size, this.driver.args().p(px).l(x.size).i(kind === 'gelu_new' ? 0 : 1)));
  }

  add(a: Tensor, b: Tensor): void {
    this.inPlace(a, (pa) => this.ctx.launch1d(this.ew('add'), a.size, this.driver.args().p(pa).p(this.at(b)).l(a.size)));
  }

  fillColumns(x: Tensor, start: number, end: number, value: number): void {
    if (end <= start) return;
    this.inPlace(x, (px) => this.ctx.launch1d(this.ew('fill_columns'), x.rows * (end - start), this.driver.args().p(px).i(x.rows).i(x.cols).i(start).i(end).f(value)));
  }

  copy(dst: Tensor, src: Tensor): void {
    if (dst.size !== src.size) throw new Error(`copy: ${src.size} elements into ${dst.size}`);
    this.inPlace(dst, (pd) => this.driver.copy(pd, this.at(src), 4 * src.size));
  }

  private copyBlock(src: number, srcStride: number, srcOff: number, dst: number, dstStride: number, dstOff: number, rows: number, width: number): void {
    this.ctx.launch1d(this.ew('copy_block'), rows * width, this.driver.args().p(src).l(srcStride).l(srcOff).p(dst).l(dstStride).l(dstOff).i(rows).i(width));
  }

  splitColumns(x: Tensor, widths: number[]): Tensor[] {
    const rows = x.rows;
    const src = this.at(x);
    let offset = 0;
    return widths.map((w) => {
      const out = this.empty([rows, w]);
      this.copyBlock(src, x.cols, offset, out.device!.ptr, w, 0, rows, w);
      offset += w;
      return out;
    });
  }

  concatRows(parts: Tensor[]): Tensor {
    const cols = parts[0].cols;
    const total = parts.reduce((n, p) => n + p.size, 0);
    const out = this.empty([total / cols, cols]);
    let offset = 0;
    for (const p of parts) {
      this.driver.copy(out.device!.ptr + 4 * offset, this.at(p), 4 * p.size);
      offset += p.size;
    }
    return out;
  }

  sliceRows(x: Tensor, start: number, end: number): Tensor {
    const cols = x.cols;
    const out = this.empty([end - start, cols]);
    this.driver.copy(out.device!.ptr, this.at(x) + 4 * start * cols, 4 * (end - start) * cols);
    return out;
  }

  // ---- KV memory ----

  /** With weights in their stored 16-bit type, keys and values are kept in that type too (half the memory of f32). */
  preferredKvDtype(modelDtype: DType): DType {
    return this.weights === 'stored' ? modelDtype : 'f32';
  }

  createCache(shape: CacheShape, dtype: DType): KVCache<HeadMemory> {
    const layers = Array.from({ length: shape.numLayers }, () => new LayerCache<HeadMemory>(Array.from({ length: shape.numKvHeads }, () => new DeviceHeadMemory(this.ctx, shape.headDim, dtype))));
    return new KVCache(shape, dtype, layers);
  }

  createState(shape: StateShape): RecurrentState {
    return new RecurrentState(shape);
  }

  /** A layer's heads as device memory (a host layer, e.g. LayerCache.empty, is refused in one line). */
  private heads(layer: Layer): DeviceHeadMemory[] {
    return layer.heads.map((h) => {
      if (!(h instanceof DeviceHeadMemory)) throw new AttendError('the cuda backend attends over its own cache: make it with backend.createCache (model.makeCache)');
      return h;
    });
  }

  appendKv(layer: Layer, k: Tensor, v: Tensor, positions: Int32Array): void {
    const heads = this.heads(layer);
    const rows = positions.length;
    if (rows === 0) return;
    const d = heads[0].headDim;
    const width = heads.length * d;
    for (const h of heads) {
      if (h.length > 0 && positions[0] <= h.positions[h.length - 1]) throw new Error('cache entries must be appended in increasing position order');
      h.reserve(h.length + rows);
    }
    const pos = this.positionsOnDevice.of(positions);
    const [pk, pv] = [this.at(k), this.at(v)];
    for (let base = 0; base < heads.length; base += MAXH) {
      const group = heads.slice(base, base + MAXH);
      const t = new ArrayBuffer(MAXH * 8 * 3 + MAXH * 4);
      const u64 = new BigUint64Array(t, 0, MAXH * 3);
      const i32 = new Int32Array(t, MAXH * 24, MAXH);
      group.forEach((h, i) => {
        u64[i] = BigInt(h.keyPtr);
        u64[MAXH + i] = BigInt(h.valuePtr);
        u64[2 * MAXH + i] = BigInt(h.positionPtr);
        i32[i] = h.length;
      });
      this.driver.launch(this.ctx.fn('kv.cu', 'kv_append', KV_DEFINES[group[0].dtype]), [rows, group.length, 1], [Math.min(128, d), 1, 1],
        this.driver.args().p(pk).p(pv).p(pos).i(rows).i(d).i(width).i(base).bytes(new Uint8Array(t)));
    }
    for (const h of heads) h.appended(positions);
  }

  keyNorms(layer: Layer): Float32Array[] {
    return this.heads(layer).map((h) => {
      const out = new Float32Array(h.length);
      if (h.length === 0) return out;
      const o = this.alloc.alloc(4 * h.length);
      this.driver.launch(this.ctx.fn('kv.cu', 'key_norms', KV_DEFINES[h.dtype]), [Math.ceil(h.length / 4), 1, 1], [128, 1, 1], this.driver.args().p(h.keyPtr).p(o.ptr).i(h.length).i(h.headDim));
      this.driver.download(out, o.ptr);
      this.alloc.release(o);
      return out;
    });
  }

  // ---- attention ----

  /** What one attention call launches with: the per-launch head tables and entry lists on the device. */
  private prepare(q: Tensor, layer: Layer, positions: Int32Array, opts: AttentionOptions) {
    const heads = this.heads(layer);
    const rows = positions.length;
    const d = heads[0].headDim;
    const numHeads = q.size / rows / d;
    const group = numHeads / heads.length;
    if (opts.remap) throw new AttendError('the cuda backend has no remapped reads yet (LongHeads): run it with --device cpu');
    for (const h of layer.heads) {
      if (h.pruned) throw new AttendError('the cuda backend has no pruned key channels yet (ThinK): run it with --device cpu');
      if (h.hasStat?.(ENTRY_LOG_WEIGHT)) throw new AttendError('the cuda backend does not weigh entries by a token count yet (RazorAttention): run it with --device cpu');
    }
    if (opts.entries && opts.queryEntries) throw new Error('attention: entries and queryEntries together');
    if (opts.tree) checkTree(opts.tree, rows);
    if (group * d > 3072) throw new AttendError(`the cuda attention kernel holds up to 3072 query-head dimensions per KV head (${group} × ${d} asked)`);
    const blocks: Block[] = [];
    const temp = (data: Int32Array) => {
      const b = this.ctx.temp(data);
      blocks.push(b);
      return b.ptr;
    };
    const qpos = this.positionsOnDevice.of(positions);
    const parents = opts.tree ? temp(opts.tree.parents) : 0;
    let qlist = 0;
    let qlistData = 0;
    if (opts.queryEntries) {
      const lists = opts.queryEntries;
      const table = new Int32Array(2 * numHeads);
      const flat: number[] = [];
      for (let h = 0; h < numHeads; h++) {
        const l = lists[h];
        table[2 * h] = flat.length;
        table[2 * h + 1] = l ? l.length : -1;
        if (l) for (const j of l) flat.push(j);
      }
      qlist = temp(table);
      qlistData = temp(Int32Array.from(flat.length ? flat : [0]));
    }
    const entryLists = opts.entries ? opts.entries.map((l) => (l ? temp(l.length ? l : new Int32Array(1)) : 0)) : [];
    const tables = [];
    for (let base = 0; base < heads.length; base += MAXH) {
      const part = heads.slice(base, base + MAXH);
      const t = new ArrayBuffer(MAXH * 8 * 4 + MAXH * 4 * 2);
      const u64 = new BigUint64Array(t, 0, MAXH * 4);
      const i32 = new Int32Array(t, MAXH * 32, MAXH * 2);
      part.forEach((h, i) => {
        u64[i] = BigInt(h.keyPtr);
        u64[MAXH + i] = BigInt(h.valuePtr);
        u64[2 * MAXH + i] = BigInt(h.positionPtr);
        const list = opts.entries?.[base + i];
        u64[3 * MAXH + i] = BigInt(list ? entryLists[base + i] : 0);
        i32[i] = h.length;
        i32[MAXH + i] = list ? list.length : 0;
      });
      tables.push({ base, count: part.length, bytes: new Uint8Array(t) });
    }
    const kernel = opts.kernel ?? { name: 'softmax' as const };
    const defines = this.attentionDefines(d, group, heads[0].dtype, kernel.name === 'sigmoid');
    const bias = kernel.name === 'sigmoid' ? kernel.bias : 0;
    const maxLen = heads.reduce((m, h) => Math.max(m, h.length), 0);
    return { heads, rows, d, numHeads, group, positions, qpos, parents, qlist, qlistData, tables, defines, bias, maxLen, release: () => blocks.forEach((b) => this.alloc.release(b)) };
  }

  private readonly defineSets = new Map<string, Record<string, number>>();

  /** The build options of an attention variant, one object per variant (context.ts looks kernels up by identity). */
  private attentionDefines(d: number, group: number, dtype: DType, sigmoid: boolean): Record<string, number> {
    const key = `${d},${group},${dtype},${sigmoid}`;
    let defs = this.defineSets.get(key);
    if (!defs) this.defineSets.set(key, (defs = { HEAD_DIM: d, GROUP: group, KV_T: STORE[dtype], SIGMOID: sigmoid ? 1 : 0 }));
    return defs;
  }

  private flashDefines(p: { d: number; group: number; defines: Record<string, number> }): Record<string, number> {
    const key = `flash,${p.d},${p.group},${p.defines.KV_T}`;
    let defs = this.defineSets.get(key);
    if (!defs) this.defineSets.set(key, (defs = { HEAD_DIM: p.d, GROUP: p.group, KV_T: p.defines.KV_T }));
    return defs;
  }

  attention(q: Tensor, layer: Layer, positions: Int32Array, opts: AttentionOptions): Tensor {
    const observer = opts.observer;
    if ((observer?.observe || observer?.accumulate) && opts.kernel && opts.kernel.name !== 'softmax') {
      throw new Error(`the ${opts.kernel.name} attention kernel has no probabilities for an observer to read`);
    }
    const p = this.prepare(q, layer, positions, opts);
    const out = this.empty(q.shape);
    const pq = this.at(q);
    try {
      if (this.flashFits(p, opts)) {
        this.flash(pq, out.device!.ptr, p, opts);
        if (observer?.observe || observer?.accumulate) this.observe(pq, layer, positions, opts, p);
        return out;
      }
      const perQuery = p.qlist !== 0;
      const perBlock = perQuery ? p.group : 1;
      const wide = this.decodeFits(p, opts);
      // Splits (flash-decoding's split-K): enough blocks to fill the GPU (8 per SM for the full-width decode kernel,
      // 2 for the general one), each split reading at least 256 (64) entries.
      const blocksBase = p.rows * p.numHeads / (perQuery ? 1 : p.group);
      const [perSm, least, most] = wide ? [8, 256, 256] : [2, 64, 64];
      const splits = Math.max(1, Math.min(most, Math.ceil((perSm * this.driver.info.smCount) / blocksBase), Math.ceil(p.maxLen / least)));
      const part = this.alloc.alloc(4 * p.rows * p.numHeads * splits * (2 + p.d));
      const attend = this.ctx.fn('attention.cu', wide ? 'attend_decode' : 'attend', p.defines);
      const combine = this.ctx.fn('attention.cu', 'attend_combine', p.defines);
      for (const t of p.tables) {
        if (wide) this.driver.launch(attend, [p.rows, t.count, splits], [128, 1, 1], this.driver.args()
          .p(pq).p(p.qpos).i(p.numHeads).i(t.base).bytes(t.bytes).f(opts.scale).i(opts.window ?? 0).i(splits).p(part.ptr));
        else this.driver.launch(attend, [p.rows, t.count * perBlock, splits], [128, 1, 1], this.driver.args().p(pq).p(p.qpos).i(p.rows).i(p.numHeads).i(t.base).bytes(t.bytes).f(opts.scale).i(opts.window ?? 0).f(p.bias).p(p.parents).p(p.qlist).p(p.qlistData).i(splits).p(part.ptr));
        this.driver.launch(combine, [p.rows, t.count * p.group, 1], [Math.min(p.d, 128), 1, 1],
          this.driver.args().p(part.ptr).p(out.device!.ptr).i(p.numHeads).i(t.base * p.group).i(t.count * p.group).i(splits));
      }
      this.alloc.release(part);
      if (observer?.observe || observer?.accumulate) this.observe(pq, layer, positions, opts, p);
    } finally {
      p.release();
    }
    return out;
  }

  /**
   * Prefill over a 16-bit cache runs on tensor cores (kernels/flash.cu): products in the cache's type with f32
   * accumulation, the precision the user chose by storing keys and values in 16 bits. Plain causal and windowed
   * attention only; entry lists, trees, other kernels and f32 caches take the exact kernel.
   */
  private flashFits(p: ReturnType<CudaBackend['prepare']>, opts: AttentionOptions): boolean {
    const kernel = opts.kernel?.name ?? 'softmax';
    const dtype = p.heads[0].dtype;
    return p.rows >= FLASH_MIN_ROWS && dtype !== 'f32' && kernel === 'softmax' && !opts.entries && !opts.queryEntries && !opts.tree && p.d % 16 === 0 && p.d <= 256
      && ascending(p.positions);
  }

  /** A decode step over a 16-bit cache, causal or windowed, head size 64/128/256: the full-width kernel. */
  private decodeFits(p: ReturnType<CudaBackend['prepare']>, opts: AttentionOptions): boolean {
    const kernel = opts.kernel?.name ?? 'softmax';
    return p.heads[0].dtype !== 'f32' && kernel === 'softmax' && !opts.entries && !opts.queryEntries && !opts.tree && (p.d === 64 || p.d === 128 || p.d === 256);
  }

  private flash(pq: number, po: number, p: ReturnType<CudaBackend['prepare']>, opts: AttentionOptions): void {
    const n = p.heads.length;
    const table = new ArrayBuffer(n * 28);
    const u64 = new BigUint64Array(table, 0, 3 * n);
    const i32 = new Int32Array(table, 24 * n, n);
    p.heads.forEach((h, i) => {
      u64[i] = BigInt(h.keyPtr);
      u64[n + i] = BigInt(h.valuePtr);
      u64[2 * n + i] = BigInt(h.positionPtr);
      i32[i] = h.length;
    });
    const t = this.alloc.alloc(table.byteLength);
    this.driver.upload(t.ptr, new Uint8Array(table));
    const fn = this.ctx.fn('flash.cu', 'flash_prefill', this.flashDefines(p));
    // kernels/flash.cu: 128 rows per block of 8 warps; two buffers of keys and values of KT rows of d + 8.
    const kt = p.d <= 128 ? 64 : 32;
    const shared = 2 * 2 * kt * (p.d + 8) * 2;
    this.driver.allowSharedMemory(fn, shared);
    this.driver.launch(fn, [Math.ceil(p.rows / 128), p.numHeads, 1], [256, 1, 1], this.driver.args().p(pq).p(po).p(p.qpos).i(p.rows).i(p.numHeads).p(t.ptr).p(t.ptr + 8 * n).p(t.ptr + 16 * n).p(t.ptr + 24 * n).f(opts.scale).i(opts.window ?? 0), shared);
    this.alloc.release(t);
  }

  /**
   * The probabilities, for observers: computed on the device in blocks of query rows, copied out, and handed to
   * `observe` block by block (as the CPU backend does) or summed into the heads' statistics (`accumulate`).
   */
  private observe(pq: number, layer: Layer, positions: Int32Array, opts: AttentionOptions, p: ReturnType<CudaBackend['prepare']>): void {
    const observer = opts.observer!;
    const cols = Math.max(1, p.maxLen);
    const blockRows = Math.max(1, Math.min(p.rows, Math.floor(PROBS_AT_ONCE / (cols * p.group * Math.min(p.heads.length, MAXH)))));
    const perQuery = p.qlist !== 0;
    for (let r0 = 0; r0 < p.rows; r0 += blockRows) {
      const n = Math.min(blockRows, p.rows - r0);
      const qpos = this.ctx.temp(positions.subarray(r0, r0 + n));
      for (const t of p.tables) {
        const probs = this.alloc.alloc(4 * t.count * n * p.group * cols);
        this.driver.launch(this.ctx.fn('attention.cu', 'attend_probs', p.defines), [n, t.count * (perQuery ? p.group : 1), 1], [128, 1, 1], this.driver.args().p(pq + 4 * r0 * p.numHeads * p.d).p(qpos.ptr).i(n).i(p.numHeads).i(t.base).bytes(t.bytes).f(opts.scale).i(opts.window ?? 0).p(p.parents).p(p.qlist).p(p.qlistData).p(probs.ptr).i(cols));
        const host = new Float32Array(t.count * n * p.group * cols);
        this.driver.download(host, probs.ptr);
        this.alloc.release(probs);
        for (let i = 0; i < t.count; i++) {
          const h = t.base + i;
          const head = layer.heads[h];
          const len = head.length;
          // [n × group × cols] → [n·group × len] (the block's columns are the head's entries)
          const block = new Float32Array(n * p.group * len);
          for (let r = 0; r < n * p.group; r++) block.set(host.subarray((i * n * p.group + r) * cols, (i * n * p.group + r) * cols + len), r * len);
          if (opts.tree && r0 > 0) throw new AttendError('the cuda backend observes tree attention in one block of rows only');
          observer.observe?.({ layer: opts.layer, kvHead: h, groupSize: p.group, queryPositions: positions.slice(r0, r0 + n), probs: block, cols: len });
          if (observer.accumulate) this.accumulate(head, observer.accumulate, block, n, len, positions.subarray(r0, r0 + n), p.group);
        }
      }
      this.alloc.release(qpos);
    }
  }

  /** AttentionObserver.accumulate on the host from a block of probabilities: sums, and each causally visible entry's count. */
  private accumulate(head: HeadMemory, names: { sum: string; count: string }, probs: Float32Array, rows: number, len: number, qpos: Int32Array, group: number): void {
    const sum = head.stat(names.sum);
    const count = head.stat(names.count);
    for (let r = 0; r < rows * group; r++) for (let j = 0; j < len; j++) sum[j] += probs[r * len + j];
    for (let r = 0; r < rows; r++) {
      const visible = head.visibleUpTo(qpos[r]);
      for (let j = 0; j < visible; j++) count[j] += group;
    }
  }

  attentionWeights(q: Tensor, layer: Layer, positions: Int32Array, opts: AttentionOptions): Float32Array[] {
    const out = layer.heads.map((h) => new Float32Array(positions.length * (q.size / positions.length / h.headDim / layer.heads.length) * h.length));
    const p = this.prepare(q, layer, positions, opts);
    try {
      const group = p.group;
      this.observe(this.at(q), layer, positions, {
        ...opts,
        observer: {
          observe(block) {
            const first = positions.indexOf(block.queryPositions[0]);
            out[block.kvHead].set(block.probs, first * group * block.cols);
          },
        },
      }, p);
    } finally {
      p.release();
    }
    return out;
  }
}
