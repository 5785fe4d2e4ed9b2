/**
 * The kernel set every device implements. Models are written against this interface only, so a CUDA or
 * WebGPU backend adds files rather than touching models; each backend is checked against the CPU one.
 * Kernels take and return f32 activations; weights may be stored in f16/bf16 where a backend supports it.
 * Kernels that return a Tensor allocate it; those documented "in place" overwrite their first argument.
 * Inside `scope`, that allocation may recycle memory: a tensor made there is only valid until the scope ends,
 * unless the scope returns it.
 */
import type { AttentionKernelSpec } from '../attention/kernels/index.js';
import type { Visibility } from '../attention/visibility.js';
import type { HeadMemory } from '../cache/head-memory.js';
import type { CacheShape, KVCache, LayerCache } from '../cache/kv-cache.js';
import type { RecurrentState, StateShape } from '../cache/recurrent-state.js';

export interface DeviceMemoryReport {
  device: string;
  weightBytes: number;
  usedBytes: number;
  peakUsedBytes: number;
  reservedBytes: number;
  freeBytes: number;
  totalBytes: number;
}

/** A layer of any backend's KV memory. */
type Layer = LayerCache<HeadMemory>;
import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';

/** A view of attention probabilities that a press may need (recorded by presses/observe.ts). */
export interface AttentionBlock {
  layer: number;
  kvHead: number;
  /** Query heads of this KV head's group, in order; rows of `probs` cycle through them fastest. */
  groupSize: number;
  /** Original positions of the query tokens in this block. */
  queryPositions: Int32Array;
  /**
   * [queryPositions.length × groupSize rows] × `cols` probabilities over entries [0, cols) of the head (by the head's
   * entry index; with an entry list, the entries not listed are 0).
   */
  probs: Float32Array;
  cols: number;
}

/** Sees attention as it runs, so that presses never need a tokens × tokens matrix kept around. */
export interface AttentionObserver {
  /**
   * The token ids a forward runs for this sequence and their positions, once per forward before its first layer
   * (presses that re-read the text they compressed: KVzip, KVCompose).
   */
  tokens?(ids: ArrayLike<number>, positions: Int32Array): void;
  /** Post-RoPE queries [rows × heads·headDim] about to attend at `positions` in `layer` (valid during the call only). */
  queries?(layer: number, q: Float32Array, positions: Int32Array): void;
  /**
   * The normed input of `layer`'s attention, what its q/k/v projections read (kvpress's `hidden_states`): this
   * sequence's rows [rows × hiddenSize] at `positions` (valid during the call only; read only when defined). Presses
   * with trained scorers over hidden states (KVzap, Fast KVzip) record what they need from it.
   */
  attentionInput?(layer: number, h: Float32Array, positions: Int32Array): void;
  /** Attention probabilities, block by block (computed only for observers that define this). */
  observe?(block: AttentionBlock): void;
  /**
   * Asks the backend to add, where the probabilities are computed, each entry's received attention (summed over the
   * query rows, every head of the group) into the head statistic `sum`, and into `count` the number of query rows
   * that could see it causally: the statistics H2O-style presses score by, with no block leaving the device.
   */
  accumulate?: { sum: string; count: string };
}

/**
 * One attention call: which entries each query row reads (Visibility: causal by original position, a sliding
 * window, per-head entry lists, a tree mask; attention/visibility.ts states the rule) and the kernel that weighs them
 * (attention/kernels/; softmax when absent).
 */
export interface AttentionOptions extends Visibility {
  layer: number;
  scale: number;
  kernel?: AttentionKernelSpec;
  /** Reads probabilities block by block: only with a kernel that has them (kernel.probabilities). */
  observer?: AttentionObserver;
}

export interface Backend {
  readonly name: string;
  /**
   * Runs `fn`, recycling the activations that ops allocate inside it once it returns: afterwards only the tensors
   * it returns (and tensors made outside it) are still valid. Scopes nest; a model opens one per forward and one
   * per layer, so that each layer reuses the previous layer's buffers. Outside any scope every op allocates anew.
   */
  scope<R extends Tensor | Tensor[] | void>(fn: () => R): R;
  /**
   * A weight handed over in its stored dtype (f32, f16 or bf16, host memory, as the checkpoint holds it), returned
   * as this backend computes with it: the CPU widens 16-bit weights to f32 once here; a device backend uploads them.
   * Models pass every weight through this once, at load.
   */
  weight(stored: Tensor): Tensor;
  /** The f32 values of a tensor this backend made, on the host (a view on host backends; a copy from a device). */
  read(t: Tensor): Float32Array;
  /**
   * Gives a device tensor's memory back now instead of when the tensor is garbage-collected: for tensors made outside
   * scopes (a forward's logits) that the caller has read and will not use again. Host backends have nothing to do.
   */
  release?(t: Tensor): void;
  /** A tensor of this backend holding `data` ([shape], f32). */
  upload(shape: readonly number[], data: Float32Array): Tensor;
  /** y = x · weightᵀ (+ bias): x [rows × in], weight [out × in] as Hugging Face stores Linear layers. */
  linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor;
  /** Rows of `table` picked by id. */
  embedding(table: Tensor, ids: ArrayLike<number>): Tensor;
  /** RMSNorm over the last dimension: x / rms(x) · weight. */
  rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor;
  /**
   * In place x += delta, then RMSNorm of the sum: a residual add fused into the norm that follows it. The norm goes
   * into `out` when given (same shape as x, aliasing neither input), else into a new tensor; either is returned.
   */
  addRmsNorm(x: Tensor, delta: Tensor, weight: Tensor, eps: number, out?: Tensor): Tensor;
  layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor;
  /** In place: rotary embedding of `heads` heads per row with precomputed cos/sin tables. */
  rope(x: Tensor, heads: number, headDim: number, tables: { cos: Float32Array; sin: Float32Array }): void;
  /** silu(gate) · up, from a fused [rows × 2·inner] projection holding gate then up. */
  swiglu(gateUp: Tensor, inner: number): Tensor;
  /** In place. */
  gelu(x: Tensor, kind: 'gelu_new' | 'gelu'): void;
  /** In place: a += b. */
  add(a: Tensor, b: Tensor): void;
  /** In place: columns [start, end) of every row of a 2-D tensor set to `value` (head ablation). */
  fillColumns(x: Tensor, start: number, end: number, value: number): void;
  /** In place: dst's elements replaced by src's (same size). */
  copy(dst: Tensor, src: Tensor): void;
  /** Splits [rows × Σwidths] into column blocks of the given widths. */
  splitColumns(x: Tensor, widths: number[]): Tensor[];
  /** Stacks 2-D tensors of equal width. */
  concatRows(parts: Tensor[]): Tensor;
  /** Rows [start, end) of a 2-D tensor. */
  sliceRows(x: Tensor, start: number, end: number): Tensor;
  /**
   * A new, empty KV cache in this backend's memory (per layer, per KV head, entries with their original positions).
   * Models ask for one through CausalLM.makeCache; nothing outside the backend touches its storage except through
   * the ops here and the cache's own append / keep / trim / clone / bytes.
   */
  createCache(shape: CacheShape, dtype: DType): KVCache<HeadMemory>;
  /**
   * The KV storage type a model of `modelDtype` gets when the caller names none (absent: f32, as on the CPU, which
   * computes in f32 whatever the checkpoint stores). A device computing in the checkpoint's 16-bit type stores its
   * keys and values so too.
   */
  preferredKvDtype?(modelDtype: DType): DType;
  /**
   * A device backend's own memory, for `--stats` and `attend info --device`: the device, its weights, what is in use
   * now and at peak (KV memory and workspace included), what the allocator holds from the driver, and what is free.
   */
  memory?(): DeviceMemoryReport;
  /**
   * The other kind of layer memory: a recurrent state (linear and recurrent attention kernels keep a fixed-size
   * summary per head instead of entries; cache/recurrent-state.ts).
   */
  createState(shape: StateShape): RecurrentState;
  /** Per KV head of the layer, the L2 norm of every entry's key (key-norm presses). */
  keyNorms(layer: Layer): Float32Array[];
  /**
   * The softmax attention of q ([rows × heads·headDim] at `positions`) over the layer, as weights: per KV head,
   * [rows × groupSize rows (head fastest) × head.length]. What presses that score by a window of recent queries
   * read (SnapKV, TOVA); a device backend computes it where the cache lives and returns only these weights.
   */
  attentionWeights(q: Tensor, layer: Layer, positions: Int32Array, opts: AttentionOptions): Float32Array[];
  /** Appends the rows' keys and values ([rows × kvHeads·headDim]) to the layer's heads at `positions`. */
  appendKv(layer: Layer, k: Tensor, v: Tensor, positions: Int32Array): void;
  /**
   * Grouped-query attention of q ([rows × heads·headDim], rows at `positions`) over the layer's heads: each row reads
   * the entries `opts` makes visible to it (by default, those whose original position is ≤ its own) and weighs them
   * with `opts.kernel`. attention/reference.ts is the same computation in plain loops, the oracle of every backend.
   */
  attention(q: Tensor, layer: Layer, positions: Int32Array, opts: AttentionOptions): Tensor;
}

/**
 * A forward's output, read to the host and its device memory given back at once (Backend.release): what a generation
 * loop does with each step's logits, so that a long generation on a device does not wait for the garbage collector.
 */
export function readOnce(b: Backend, t: Tensor): Float32Array {
  const out = b.read(t);
  b.release?.(t);
  return out;
}
