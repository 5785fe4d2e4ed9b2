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
 */
import type { AttentionOptions } from '../backend.js';
import type { LayerCache } from '../../cache/kv-cache.js';
import { matmulNN, matmulTransB, onCallingThread } from './matmul.js';
import { acquireWorkspace, releaseWorkspace } from './attention/softmax.js';
import { widenHalf } from './convert/half.js';
import type { DType } from '../../tensor/dtype.js';

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
 * cache lines across (docs/performance.md). OpenBLAS gives the same bits on one thread as on two at these sizes (it
 * splits N between threads; every output is the same kernel's sum over the same k order): test/attention checks it
 * on whichever matmul path runs the tests. Larger M (prefill) stays on every thread.
 */
const SMALL_M = 8;

/** Reusable scratch (queries, outputs, widened keys/values, per-token visible ranges). */
class Scratch {
  private data = new Float32Array(0);
  get(n: number): Float32Array {
    if (this.data.length < n) this.data = new Float32Array(Math.max(n, Math.ceil(this.data.length * 1.25)));
    return this.data.subarray(0, n);
  }
}

class IntScratch {
  private data = new Int32Array(0);
  get(n: number): Int32Array {
    if (this.data.length < n) this.data = new Int32Array(Math.max(n, Math.ceil(this.data.length * 1.25)));
    return this.data;
  }
}

interface Buffers {
  q: Scratch;
  o: Scratch;
  k: Scratch;
  v: Scratch;
  lo: IntScratch;
  hi: IntScratch;
}

const free: Buffers[] = [];

/** Stored KV rows as f32: f32 storage as it is, 16-bit storage widened (exactly) into `scratch`. */
function asF32(dtype: DType, rows: Float32Array | Uint16Array, scratch: Scratch): Float32Array {
  if (rows instanceof Float32Array) return rows;
  return widenHalf(dtype as 'f16' | 'bf16', rows, scratch.get(rows.length));
}

export function attention(
  q: Float32Array,
  rows: number,
  numHeads: number,
  layer: LayerCache,
  positions: Int32Array,
  opts: AttentionOptions,
  out: Float32Array,
): void {
  if (rows === 0) return;
  // Re-entry (an observer calling attention) gets its own buffers.
  const buf = free.pop() ?? { q: new Scratch(), o: new Scratch(), k: new Scratch(), v: new Scratch(), lo: new IntScratch(), hi: new IntScratch() };
  const ws = acquireWorkspace();
  try {
    const go = () => run(q, rows, numHeads, layer, positions, opts, out, buf, ws);
    // Decode-sized calls over a 16-bit cache multiply the scratch this thread has just widened: keep OpenBLAS on it.
    const m = rows * (numHeads / Math.max(1, layer.heads.length));
    if (layer.heads[0]?.dtype !== 'f32' && m <= SMALL_M) onCallingThread(go);
    else go();
  } finally {
    free.push(buf);
    releaseWorkspace(ws);
  }
}

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
): void {
  const numKvHeads = layer.heads.length;
  const group = numHeads / numKvHeads;
  const d = layer.heads[0].headDim;
  const width = numHeads * d;
  const gd = group * d;
  const scale = opts.scale;
  const window = opts.window;
  const observer = opts.observer;
  const observe = observer?.observe !== undefined;
  const los = buf.lo.get(rows);
  const his = buf.hi.get(rows);
  for (let g = 0; g < numKvHeads; g++) {
    const head = layer.heads[g];
    // Entries [lo, hi) of the head that each query token sees (positions need not be sorted).
    let maxVisible = 0;
    for (let t = 0; t < rows; t++) {
      const hi = head.visibleUpTo(positions[t]);
      his[t] = hi;
      los[t] = window === null ? 0 : Math.min(hi, head.visibleUpTo(positions[t] - window));
      if (hi > maxVisible) maxVisible = hi;
    }
    // Widened once per head and call, with SIMD (a view, no copy, for f32 storage).
    const keys = asF32(head.dtype, head.storedKeys(0, maxVisible), buf.k);
    const values = asF32(head.dtype, head.storedValues(0, maxVisible), buf.v);
    const maxBlockRows = Math.max(1, Math.min(rows, Math.floor(BLOCK_SCORES / Math.max(1, maxVisible * group))));
    for (let t0 = 0; t0 < rows; ) {
      const blockRows = Math.min(maxBlockRows, Math.max(MIN_BLOCK_TOKENS, Math.floor(his[t0] / TRIANGLE_SHARE)));
      const t1 = Math.min(rows, t0 + blockRows);
      const n = (t1 - t0) * group;
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
        const src = t * width + g * gd;
        for (let i = 0; i < gd; i++) qb[o++] = q[src + i] * scale;
      }
      const block = ws.block(n, w);
      const ranges = block.ranges;
      for (let t = t0, r = 0; t < t1; t++) {
        for (let j = 0; j < group; j++, r += 2) {
          ranges[r] = los[t] - c0;
          ranges[r + 1] = his[t] - c0;
        }
      }
      const scores = block.scores;
      if (w > 0) matmulTransB(qb, keys.subarray(c0 * d, cols * d), scores, n, w, d, { reuseB: false });
      block.run();
      if (observe) {
        const probs = new Float32Array(n * cols);
        if (c0 === 0) probs.set(scores);
        else for (let r = 0; r < n; r++) probs.set(scores.subarray(r * w, (r + 1) * w), r * cols + c0);
        observer!.observe!({
          layer: opts.layer,
          kvHead: g,
          groupSize: group,
          queryPositions: positions.subarray(t0, t1),
          probs,
          cols,
        });
      }
      const ob = buf.o.get(n * d);
      matmulNN(scores, values.subarray(c0 * d, cols * d), ob, n, d, w);
      // The group's heads of a token are contiguous in `out` as in `ob`.
      for (let t = t0; t < t1; t++) out.set(ob.subarray((t - t0) * gd, (t - t0 + 1) * gd), t * width + g * gd);
      t0 = t1;
    }
  }
}
