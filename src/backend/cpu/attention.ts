/**
 * Grouped-query attention over a layer's HeadStores on the CPU. Queries are taken in blocks; for each KV head
 * the block's queries of the whole group form one matrix, so scores (Q·Kᵀ) and outputs (P·V) are two matrix
 * products over the entries the block can see. Memory stays bounded by one block of scores, never tokens².
 *
 * Per block: the queries are gathered with the scale folded in (n×d multiplies instead of n×cols); the scores are
 * computed only over the columns some row of the block can see ([c0, cols): with a sliding window, the entries
 * before every row's window are skipped); the softmax (attention/softmax.ts: a WebAssembly SIMD kernel by default,
 * Math.exp with ATTEND_SOFTMAX=js) runs in place where the score matmul wrote, zeroing only each row's masked
 * columns. Blocks early in the sequence are kept short, so the causal triangle that the matmuls compute and then
 * mask stays a small part of each block. Scratch memory (scores included) is reused across blocks, heads and calls;
 * only an observer's probabilities are freshly allocated, one n×cols array per block as before.
 *
 * Visibility and kernels (attention/visibility.ts, attention/kernels/; attention/reference.ts is this computation in
 * plain loops): a head with an entry list reads only the listed entries, gathered into scratch first (so the products
 * stay dense); a tree mask sets the scores of a row's non-ancestor tree rows to a large negative number before the
 * softmax (exactly 0 after it) or to 0 after the sigmoid; the sigmoid kernel replaces the softmax with σ(s + b) over
 * each row's range and refuses observers, having no probabilities.
 *
 * Pruned key channels (ThinK: HeadStore.pruneKeyChannels): a head's entries [0, pruned) store only its kept key
 * channels. Their scores are the block's queries restricted to those channels (gathered once per block) times the
 * pruned keys — the product with the zeroed key, without the zeros; the entries after them score with whole rows,
 * and a block whose columns cross the boundary computes the two products apart and joins their columns.
 */
import type { AttentionOptions } from '../backend.js';
import type { LayerCache } from '../../cache/kv-cache.js';
import { type MatmulPath, matmulNN, matmulTransB, onCallingThread } from './matmul.js';
import { acquireWorkspace, releaseWorkspace, type SoftmaxPath } from './attention/softmax.js';
import { remappedAttention } from './attention/remapped.js';
import { widenHalf } from './convert/half.js';
import type { DType } from '../../tensor/dtype.js';
import { SOFTMAX } from '../../attention/kernels/index.js';
import { checkTree, isAncestor } from '../../attention/visibility.js';
import { ENTRY_LOG_WEIGHT } from '../../cache/head-memory.js';
import { hostHead } from '../../cache/head-store.js';
import { countUpTo, indexIn } from '../../cache/positions.js';

/** Scores held at once per block, in floats (4 MiB). */
const BLOCK_SCORES = 1 << 20;
/**
 * A block of T query tokens whose first sees c entries computes about T/2 masked columns per row (the causal
 * triangle) beside at least c live ones: T is capped at c / TRIANGLE_SHARE, but kept at MIN_BLOCK_TOKENS or more.
 */
const TRIANGLE_SHARE = 4;
const MIN_BLOCK_TOKENS = 16;
/**
 * Query rows per KV head (the products' M) up to which a call over a 16-bit cache keeps OpenBLAS on the calling
 * thread: one decode step of a group of up to 8 query heads. Such products are bound by reading keys and values that
 * this thread has just widened, and a second OpenBLAS thread on another core would first have to pull each of those
 * cache lines across (docs/performance.md). On some CPUs OpenBLAS's one-thread and two-thread sums differ in the
 * last bits at these sizes (AMD EPYC, OpenBLAS 0.3.21), so a 16-bit cache's decode can differ from f32's by rounding;
 * test/attention checks the widening is exact against the f32 result in either threading. Larger M (prefill) stays on
 * every thread.
 */
const SMALL_M = 8;

/** Reusable scratch of one typed-array kind (queries, outputs, widened keys/values, per-token ranges, gathered rows). */
class Scratch<T extends Float32Array | Int32Array | Uint16Array> {
  private data: T;

  constructor(private readonly make: (n: number) => T) {
    this.data = make(0);
  }

  /** A view of n elements, growing the buffer by at least a quarter when it is too small. */
  get(n: number): T {
    if (this.data.length < n) this.data = this.make(Math.max(n, Math.ceil(this.data.length * 1.25)));
    return this.data.subarray(0, n) as T;
  }
}

const f32 = () => new Scratch((n) => new Float32Array(n));
const i32 = () => new Scratch((n) => new Int32Array(n));
const u16 = () => new Scratch((n) => new Uint16Array(n));

type F32 = Scratch<Float32Array>;
type I32 = Scratch<Int32Array>;
type U16 = Scratch<Uint16Array>;

interface Buffers {
  q: F32;
  o: F32;
  k: F32;
  v: F32;
  lo: I32;
  hi: I32;
  /** Gathered entry positions, keys and values of a head read through an entry list; each row's own column (trees). */
  pos: I32;
  gk: F32;
  gv: F32;
  gk16: U16;
  gv16: U16;
  tree: I32;
  /** Keys of pruned entries (widened, gathered), the queries' kept channels, the two halves of a crossing block's scores. */
  pk: F32;
  gpk: F32;
  gpk16: U16;
  qc: F32;
  s1: F32;
  s2: F32;
}

function newBuffers(): Buffers {
  return {
    q: f32(), o: f32(), k: f32(), v: f32(), lo: i32(), hi: i32(), pos: i32(), gk: f32(), gv: f32(), gk16: u16(), gv16: u16(), tree: i32(),
    pk: f32(), gpk: f32(), gpk16: u16(), qc: f32(), s1: f32(), s2: f32(),
  };
}

const free: Buffers[] = [];

/** Stored KV rows as f32: f32 storage as it is, 16-bit storage widened (exactly) into `scratch`. */
function asF32(dtype: DType, rows: Float32Array | Uint16Array, scratch: F32): Float32Array {
  if (rows instanceof Float32Array) return rows;
  return widenHalf(dtype as 'f16' | 'bf16', rows, scratch.get(rows.length));
}

/** Kernel paths of one CpuBackend; absent ones are the process defaults (ATTEND_MATMUL, ATTEND_SOFTMAX). */
export interface CpuPaths {
  matmul?: MatmulPath;
  softmax?: SoftmaxPath;
}

export function attention(
  q: Float32Array,
  rows: number,
  numHeads: number,
  layer: LayerCache,
  positions: Int32Array,
  opts: AttentionOptions,
  out: Float32Array,
  paths: CpuPaths = {},
): void {
  if (rows === 0) return;
  // Re-entry (an observer calling attention) gets its own buffers.
  const buf = free.pop() ?? newBuffers();
  const ws = acquireWorkspace(paths.softmax);
  try {
    const go = () => run(q, rows, numHeads, layer, positions, opts, out, buf, ws, paths.matmul);
    // Decode-sized calls over a 16-bit cache multiply the scratch this thread has just widened: keep OpenBLAS on it.
    const m = rows * (numHeads / Math.max(1, layer.heads.length));
    if (layer.heads[0]?.dtype !== 'f32' && m <= SMALL_M) onCallingThread(go);
    else go();
  } finally {
    free.push(buf);
    releaseWorkspace(ws, paths.softmax);
  }
}

/** Masked score inside a row's range (tree attention): exp flushes it to exactly 0, and it stays finite for TwoSum. */
const MASKED = -1e30;

function run(
  q: Float32Array,
  rows: number,
  numHeads: number,
  layer: LayerCache,
  positions: Int32Array,
  opts: AttentionOptions,
  out: Float32Array,
  buf: Buffers,
  ws: ReturnType<typeof acquireWorkspace>,
  path: MatmulPath | undefined,
): void {
  const numKvHeads = layer.heads.length;
  const group = numHeads / numKvHeads;
  const d = layer.heads[0].headDim;
  const width = numHeads * d;
  const scale = opts.scale;
  const window = opts.window;
  const observer = opts.observer;
  const kernel = opts.kernel ?? SOFTMAX;
  const observe = observer?.observe !== undefined;
  const accumulate = observer?.accumulate;
  if ((observe || accumulate) && kernel.name !== 'softmax') {
    throw new Error(`the ${kernel.name} attention kernel has no probabilities for an observer to read`);
  }
  if (opts.tree) checkTree(opts.tree, rows);
  // Remapped reads (a selector's per-head positions, attention/remap.ts) have their own path.
  if (opts.remap) return remappedAttention(q, rows, numHeads, layer, positions, opts, out, ws, path);
  const los = buf.lo.get(rows);
  const his = buf.hi.get(rows);
  // Units of work: a KV head with its whole group of query heads (one product for the group), or, with per-query-head
  // entry lists, each query head alone over its KV head.
  const perQuery = opts.queryEntries !== undefined;
  if (perQuery && opts.queryEntries!.length !== numHeads) throw new Error(`queryEntries has ${opts.queryEntries!.length} lists for ${numHeads} query heads`);
  if (perQuery && opts.entries) throw new Error('give entries (per KV head) or queryEntries (per query head), not both');
  const units = perQuery ? numHeads : numKvHeads;
  for (let u = 0; u < units; u++) {
    const g = perQuery ? Math.floor(u / group) : u;
    const h0 = perQuery ? u : u * group;
    const count = perQuery ? 1 : group;
    const cd = count * d;
    const head = hostHead(layer.heads[g]);
    const list = (perQuery ? opts.queryEntries![u] : opts.entries?.[g]) ?? null;
    // Entries that stand for several tokens (ENTRY_LOG_WEIGHT: a compensation token) add the log of that count to
    // their scores before the softmax.
    const logWeights = head.hasStat(ENTRY_LOG_WEIGHT) ? head.stat(ENTRY_LOG_WEIGHT) : null;
    if (logWeights && kernel.name !== 'softmax') throw new Error(`entries weighted by a token count (${ENTRY_LOG_WEIGHT}) need the softmax kernel, not ${kernel.name}`);
    // The entries this head reads: a prefix of the head (a view), or the listed ones gathered (a selector's).
    const entryPositions = list ? gatherPositions(head.positions, list, buf.pos) : head.positions;
    // Entries [lo, hi) of that sequence that each query token sees (positions need not be sorted).
    let maxVisible = 0;
    for (let t = 0; t < rows; t++) {
      const hi = countUpTo(entryPositions, positions[t]);
      his[t] = hi;
      los[t] = window === null ? 0 : Math.min(hi, countUpTo(entryPositions, positions[t] - window));
      if (hi > maxVisible) maxVisible = hi;
    }
    // Of the entries read, the first `split` have pruned keys (only the head's kept channels, `m` of them).
    const pruned = head.pruned;
    const channels = head.keyChannels;
    const m = channels?.length ?? 0;
    const split = pruned === 0 ? 0 : list ? countBelow(list, pruned, maxVisible) : Math.min(pruned, maxVisible);
    // Widened once per head and call, with SIMD (a view, no copy, for f32 storage): whole keys of entries [split,
    // maxVisible) of the sequence, pruned keys of entries [0, split).
    const keys = list
      ? asF32(head.dtype, gatherRows(head.storedKeys(pruned, head.length - pruned), list, split, maxVisible, pruned, d, buf.gk, buf.gk16), buf.k)
      : asF32(head.dtype, head.storedKeys(split, maxVisible - split), buf.k);
    const prunedKeys = split === 0 ? null : list
      ? asF32(head.dtype, gatherRows(head.storedKeys(0, pruned), list, 0, split, 0, m, buf.gpk, buf.gpk16), buf.pk)
      : asF32(head.dtype, head.storedKeys(0, split), buf.pk);
    const values = list
      ? asF32(head.dtype, gatherRows(head.storedValues(0, head.length), list, 0, maxVisible, 0, d, buf.gv, buf.gv16), buf.v)
      : asF32(head.dtype, head.storedValues(0, maxVisible), buf.v);
    // Tree attention: the column of each query row's own entry, so that rows off its ancestry can be masked.
    const treeCols = opts.tree ? ownColumns(entryPositions, positions, buf.tree) : null;
    const maxBlockRows = Math.max(1, Math.min(rows, Math.floor(BLOCK_SCORES / Math.max(1, maxVisible * count))));
    for (let t0 = 0; t0 < rows; ) {
      const blockRows = Math.min(maxBlockRows, Math.max(MIN_BLOCK_TOKENS, Math.floor(his[t0] / TRIANGLE_SHARE)));
      const t1 = Math.min(rows, t0 + blockRows);
      const n = (t1 - t0) * count;
      // Columns [c0, cols) are the ones some row of the block sees.
      let cols = 0;
      let c0 = maxVisible;
      for (let t = t0; t < t1; t++) {
        if (his[t] > cols) cols = his[t];
        if (los[t] < c0) c0 = los[t];
      }
      c0 = Math.min(c0, cols);
      const w = cols - c0;
      // Queries of the block, one row per (token, head of the group) — contiguous per token — times the scale.
      const qb = buf.q.get(n * d);
      for (let t = t0, o = 0; t < t1; t++) {
        const src = t * width + h0 * d;
        for (let i = 0; i < cd; i++) qb[o++] = q[src + i] * scale;
      }
      const block = ws.block(n, w);
      const ranges = block.ranges;
      for (let t = t0, r = 0; t < t1; t++) {
        for (let j = 0; j < count; j++, r += 2) {
          ranges[r] = los[t] - c0;
          ranges[r + 1] = his[t] - c0;
        }
      }
      const scores = block.scores;
      // Columns [c0, c0 + wp) are entries with pruned keys, the rest whole ones.
      const wp = Math.max(0, Math.min(cols, split) - c0);
      if (w > 0 && wp === 0) matmulTransB(qb, keys.subarray((c0 - split) * d, (cols - split) * d), scores, n, w, d, { reuseB: false, path });
      else if (w > 0) {
        const qc = keptChannels(qb, n, d, channels!, buf.qc);
        const pk = prunedKeys!.subarray(c0 * m, (c0 + wp) * m);
        if (wp === w) scoreRows(qc, pk, scores, n, w, m, path);
        else {
          // The block crosses from pruned to whole keys: both products, their columns joined row by row.
          const wf = w - wp;
          const s1 = buf.s1.get(n * wp);
          const s2 = buf.s2.get(n * wf);
          scoreRows(qc, pk, s1, n, wp, m, path);
          matmulTransB(qb, keys.subarray(0, wf * d), s2, n, wf, d, { reuseB: false, path });
          for (let r = 0; r < n; r++) {
            scores.set(s1.subarray(r * wp, (r + 1) * wp), r * w);
            scores.set(s2.subarray(r * wf, (r + 1) * wf), r * w + wp);
          }
        }
      }
      if (logWeights) addLogWeights(scores, n, w, c0, list, logWeights);
      if (kernel.name === 'softmax') {
        if (treeCols) maskTree(scores, w, c0, t0, t1, count, los, his, treeCols, opts.tree!.parents, MASKED);
        block.run();
      } else {
        sigmoidRows(scores, w, n, ranges, kernel.bias);
        if (treeCols) maskTree(scores, w, c0, t0, t1, count, los, his, treeCols, opts.tree!.parents, 0);
      }
      if (observe) {
        // By the head's own entry index: a listed entry's probability goes to its place among all the head's.
        const full = list ? head.length : cols;
        const probs = new Float32Array(n * full);
        if (list) {
          for (let r = 0; r < n; r++) for (let c = 0; c < w; c++) probs[r * full + list[c0 + c]] = scores[r * w + c];
        } else if (c0 === 0) probs.set(scores);
        else for (let r = 0; r < n; r++) probs.set(scores.subarray(r * w, (r + 1) * w), r * full + c0);
        observer!.observe!({
          layer: opts.layer,
          kvHead: g,
          groupSize: count,
          queryPositions: positions.subarray(t0, t1),
          probs,
          cols: full,
        });
      }
      if (accumulate) addReceived(head, accumulate, scores, n, w, c0, list, positions, t0, t1, count);
      const ob = buf.o.get(n * d);
      matmulNN(scores, values.subarray(c0 * d, cols * d), ob, n, d, w, path);
      // The unit's heads of a token are contiguous in `out` as in `ob`.
      for (let t = t0; t < t1; t++) out.set(ob.subarray((t - t0) * cd, (t - t0 + 1) * cd), t * width + h0 * d);
      t0 = t1;
    }
  }
}

/**
 * AttentionObserver.accumulate: each entry's probabilities summed over the block's rows (token-major, then the
 * group's heads, as an observer summing the blocks would add them) into the `sum` statistic, and the group size into
 * `count` for every entry each token could see causally.
 */
function addReceived(
  head: LayerCache['heads'][number], names: { sum: string; count: string }, scores: Float32Array, n: number, w: number,
  c0: number, list: Int32Array | null, positions: Int32Array, t0: number, t1: number, group: number,
): void {
  const sum = head.stat(names.sum);
  const count = head.stat(names.count);
  for (let r = 0; r < n; r++) {
    const row = scores.subarray(r * w, (r + 1) * w);
    if (list) for (let c = 0; c < w; c++) sum[list[c0 + c]] += row[c];
    else for (let c = 0; c < w; c++) sum[c0 + c] += row[c];
  }
  for (let t = t0; t < t1; t++) {
    const visible = head.visibleUpTo(positions[t]);
    for (let i = 0; i < visible; i++) count[i] += group;
  }
}

/** Adds each column's entry log weight (ENTRY_LOG_WEIGHT) to every row's score of the block; zero weights add nothing. */
function addLogWeights(scores: Float32Array, n: number, w: number, c0: number, list: Int32Array | null, logWeights: Float32Array): void {
  for (let c = 0; c < w; c++) {
    const lw = logWeights[list ? list[c0 + c] : c0 + c];
    if (lw === 0) continue;
    for (let r = 0; r < n; r++) scores[r * w + c] += lw;
  }
}

function gatherPositions(all: Int32Array, list: Int32Array, scratch: I32): Int32Array {
  const out = scratch.get(list.length);
  for (let i = 0; i < list.length; i++) {
    const j = list[i];
    if (j < 0 || j >= all.length || (i > 0 && j <= list[i - 1])) {
      throw new Error(`attention entry list: indices must be ascending, unique and below ${all.length}`);
    }
    out[i] = all[j];
  }
  return out;
}

/**
 * Rows `list[from…to)` of stored [entries × width] data whose first row is entry `base`, gathered into scratch of
 * the same storage type.
 */
function gatherRows(
  stored: Float32Array | Uint16Array, list: Int32Array, from: number, to: number, base: number, width: number, floats: F32, words: U16,
): Float32Array | Uint16Array {
  const count = to - from;
  const out = stored instanceof Float32Array ? floats.get(count * width) : words.get(count * width);
  for (let i = 0; i < count; i++) {
    const row = list[from + i] - base;
    out.set(stored.subarray(row * width, (row + 1) * width), i * width);
  }
  return out;
}

/** How many of the first `count` entries of ascending `list` are below `limit`. */
function countBelow(list: Int32Array, limit: number, count: number): number {
  return countUpTo(list, limit - 1, count);
}

/** The `channels` columns of each of the n rows of width d of `rows` (the block's queries), [n × channels.length]. */
function keptChannels(rows: Float32Array, n: number, d: number, channels: Int32Array, scratch: F32): Float32Array {
  const m = channels.length;
  const out = scratch.get(n * m);
  for (let r = 0; r < n; r++) for (let j = 0; j < m; j++) out[r * m + j] = rows[r * d + channels[j]];
  return out;
}

/** out = a · bᵀ, [n × w] over k channels (all zeros when every key channel was pruned). */
function scoreRows(a: Float32Array, b: Float32Array, out: Float32Array, n: number, w: number, k: number, path: MatmulPath | undefined): void {
  if (k === 0) out.fill(0, 0, n * w);
  else matmulTransB(a, b, out, n, w, k, { reuseB: false, path });
}

/** Per query row, the column of its own entry among `entryPositions`, or −1 when the head does not read it. */
function ownColumns(entryPositions: Int32Array, positions: Int32Array, scratch: I32): Int32Array {
  const cols = scratch.get(positions.length);
  for (let t = 0; t < positions.length; t++) {
    cols[t] = indexIn(entryPositions, positions[t]);
  }
  return cols;
}

/** Sets `value` where a block row would read the entry of a tree row that is not itself or one of its ancestors. */
function maskTree(
  scores: Float32Array, w: number, c0: number, t0: number, t1: number, group: number,
  los: Int32Array, his: Int32Array, treeCols: Int32Array, parents: Int32Array, value: number,
): void {
  for (let t = t0; t < t1; t++) {
    for (let u = 0; u < parents.length; u++) {
      const c = treeCols[u];
      if (u === t || c < los[t] || c >= his[t] || isAncestor(parents, u, t)) continue;
      for (let j = 0; j < group; j++) scores[((t - t0) * group + j) * w + c - c0] = value;
    }
  }
}

/** Sigmoid attention's weights in place: σ(s + bias) over each row's range [lo, hi), 0 elsewhere. */
function sigmoidRows(scores: Float32Array, w: number, n: number, ranges: Int32Array, bias: number): void {
  for (let r = 0; r < n; r++) {
    const lo = ranges[2 * r];
    const hi = ranges[2 * r + 1];
    const row = scores.subarray(r * w, (r + 1) * w);
    for (let c = 0; c < w; c++) row[c] = c >= lo && c < hi ? 1 / (1 + Math.exp(-(row[c] + bias))) : 0;
  }
}
