/**
 * LongHeads (Lu, Zhou, He, Zhao, Ji, Gui, Zhang & Huang 2024, "LongHeads: Multi-Head Attention is Secretly a Long
 * Context Processor", arXiv 2402.10685; official code LuLuLuyi/LongHeads, modeling_longheads/modeling_llama.py,
 * LlamaAttention.forward). Past the trained length no head reads the whole context: each head picks chunks of it by
 * how its query meets a summary of each chunk, always with the first chunk and the last ones, and reads them as if
 * they sat side by side inside the trained window, so every head stays in distribution while the heads together
 * cover the context.
 *
 * The rule, as the official decoding branch (`elif sequence_length >= begin_selective_length`) applies it, for a
 * query at position p (S = p + 1 tokens, chunks of w positions, K = L / w chunks per head):
 *  - S < B: full attention, nothing remapped (so a context inside the trained length is exact);
 *  - else, with G = ⌊S / w⌋ whole chunks: chunk 0, chunk G − 1 and the K − 3 of chunks 1 … G − 2 whose
 *    representation scores highest against the head's query without its rotary embedding (`global_qk`: the
 *    pre-RoPE query · chunk key, `torch.topk(…, k=atten_chunk_num - 3)` over chunks [1:-1]), in chunk order, then
 *    the partial chunk the query is in (positions G·w … p, `last_keys`): (K − 1)·w + S mod w ≤ L entries;
 *  - positions (`relative_position_ids`): the read chunks are numbered side by side from 0 — the entry at original
 *    position e of the chunk in slot j reads at j·w + (e mod w) — and the query reads at its own entry's new place,
 *    (K − 1)·w + (S mod w) − 1 (`current_query_position_ids`, the last of them): every distance < L.
 *  - chunk representations (the `chunk_features` of both branches), per query head, for each whole chunk: its w
 *    queries attend non-causally to its w keys with rotary positions local to the chunk (0 … w − 1) and the
 *    outputs are averaged (`chunk_features_value`); that mean attends, as a query, over the chunk's local-RoPE keys
 *    with the keys themselves as values (`F.scaled_dot_product_attention(…, key=rf_w_k, value=rf_w_k)`): the chunk
 *    key that the pre-RoPE queries are scored against.
 * Defaults: w = 256 (`window_size`), L = `atten_length` and B = `begin_selective_length`, both 4096 for the 4K
 * Llama-2 in README.md / example.py, i.e. the trained length (the README: atten_length at most the pretrained
 * length); here the model's trained length (its rope originalMaxPositions, 8192 for attend-mini), rounded down to a
 * multiple of w; B defaults to L. Every layer and head selects (the code has no dense layers).
 * test/selectors/longheads-oracle.test.ts checks the decoding rule against the official code itself
 * (tools/fixtures/make_longheads_oracle.py: its LlamaForCausalLM in float32 on a multi-head checkpoint): the same
 * chunks, remapped positions, chunk keys and logits.
 *
 * Where Attend follows the decoding rule for the prefill too, and other choices, written down:
 *  1. Prefill. The official prefill branch selects per query row as well, with two small differences from its
 *     decoding branch: a row there does not read its own key (its keys stop at `relative_position` = (K − 1)·w +
 *     p mod w, one short of itself, while the query sits at that position) and always reads the chunk before its
 *     own. Attend applies the decoding rule to every row, prefill or not: a token reads itself, as in training.
 *  2. Grouped-query attention (the code is for multi-head Llama-2): each query head scores, picks and remaps on its
 *     own, over its KV head's entries (per-query-head spans), and its chunk summaries use its own queries.
 *  3. Chunks are by original position (as the code's are by sequence index), so a compressed cache works: a chunk
 *     reads the entries its KV head still holds in its positions, summarised when it became whole; a chunk with
 *     none is never picked.
 *  4. Post-RoPE keys are kept in the cache (Attend rotates keys when they enter it), so positions are remapped in
 *     the attention, not by re-rotating the cache: the selector gives per-span position shifts (attention/remap.ts)
 *     and the backend turns each reading row's query by the shift difference once per chunk (the cheapest exact
 *     way: a head's worth of multiplies per chunk and row, none per key). The code instead keeps keys without RoPE
 *     and applies it at the new positions; the scores are the same up to rounding. The summaries turn the stored
 *     keys and queries back to local positions the same way.
 *  5. The selector builds each chunk's summary from the queries of that chunk, so it must see every forward of the
 *     sequence from its first token, prefill included (ForwardOptions.select on every chunk); a chunk whose queries
 *     it did not see fails in one line when a step would need to score it. Ties in the top-k go to the earlier chunk.
 *  6. Rotary embeddings only (remapping needs them); with dynamic NTK scaling the step's frequencies turn the keys.
 */
import { inverseFrequencies } from '../attention/rope.js';
import type { RemappedReads } from '../attention/remap.js';
import { matmulNN, matmulTransB } from '../backend/cpu/matmul.js';
import type { LayerCache } from '../cache/kv-cache.js';
import { AttendError } from '../errors.js';
import type { ModelConfig } from '../models/config.js';
import type { PrefillSelector, SelectorView } from './selector.js';

export interface LongHeadsOptions {
  /** Positions per chunk, w (`window_size`, 256). */
  window?: number;
  /** Tokens each head reads, L (`atten_length`; default the model's trained length, rounded down to whole chunks). */
  budget?: number;
  /** First sequence length S that selects, B (`begin_selective_length`; default L). */
  begin?: number;
}

/** One layer's chunk summaries and the queries of the chunk not yet whole. */
interface LayerState {
  /** Chunks summarised: [0, chunks); the queries of positions chunks·w … next − 1 wait in `pending`. */
  chunks: number;
  /** Chunks before this one were never seen (the selector joined late); they cannot be scored. */
  unseen: number;
  /** Per query head, chunk keys [capacity × headDim]. */
  keys: Float32Array[];
  /** Per query head and chunk: 1 when its KV head held no entry of the chunk. */
  empty: Uint8Array[];
  /** Post-RoPE queries [rows × numHeads·headDim] of positions chunks·w … next − 1. */
  pending: Float32Array;
  next: number;
}

export class LongHeadsSelector implements PrefillSelector {
  readonly name = 'longheads';
  /** generate() and attend bench run the prompt through select as well: chunk representations need its queries. */
  readonly seesPrefill = true;
  readonly window: number;
  private readonly budgetOpt?: number;
  private readonly beginOpt?: number;
  private readonly states = new WeakMap<LayerCache, LayerState>();

  constructor(opts: LongHeadsOptions = {}) {
    this.window = opts.window ?? 256;
    this.budgetOpt = opts.budget;
    this.beginOpt = opts.begin;
    for (const [name, v] of [['window', this.window], ['budget', this.budgetOpt], ['begin', this.beginOpt]] as const) {
      if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new AttendError(`longheads: ${name} must be a whole number ≥ 1, got ${v}`);
    }
  }

  /** L for this model: the option, or the trained length in whole chunks. */
  budgetFor(config: ModelConfig): number {
    const trained = config.rope?.originalMaxPositions ?? config.maxPositions;
    const L = this.budgetOpt ?? Math.floor(trained / this.window) * this.window;
    if (L % this.window !== 0 || L < 3 * this.window) {
      throw new AttendError(`longheads: budget (atten_length) must be a multiple of the window ${this.window} and at least 3 chunks, got ${L}`);
    }
    return L;
  }

  /** B for this model: the option, or L. */
  beginFor(config: ModelConfig): number {
    const B = this.beginOpt ?? this.budgetFor(config);
    if (B < 2 * this.window) throw new AttendError(`longheads: begin must be at least two chunks (${2 * this.window}), got ${B}`);
    return B;
  }

  /** Chunk `chunk`'s key for query head `queryHead` in this layer of a sequence, once summarised (for tests and probes). */
  chunkKey(cache: LayerCache, queryHead: number, chunk: number): Float32Array | undefined {
    const st = this.states.get(cache);
    if (!st || chunk < st.unseen || chunk >= st.chunks || st.empty[queryHead][chunk]) return undefined;
    const d = st.keys[queryHead].length / (st.empty[queryHead].length || 1);
    return st.keys[queryHead].slice(chunk * d, (chunk + 1) * d);
  }

  select(view: SelectorView): RemappedReads | undefined {
    const { config, positions } = view;
    if (!config.rope) throw new AttendError('longheads: the model has no rotary embeddings, so positions cannot be remapped');
    const w = this.window;
    const L = this.budgetFor(config);
    const B = this.beginFor(config);
    const rows = positions.length;
    const st = this.record(view);
    while ((st.chunks + 1) * w <= st.next) this.summarise(st, view, st.chunks++);
    if (positions[rows - 1] + 1 < B) return undefined;
    return this.reads(st, view, L / w, B, inverseFrequencies(config.rope, positions[rows - 1] + 1));
  }

  /** The layer's state with this call's queries added to the pending ones. */
  private record(view: SelectorView): LayerState {
    const { layer, config, cache, queries, positions } = view;
    const w = this.window;
    const width = config.numHeads * config.headDim;
    const rows = positions.length;
    const first = positions[0];
    for (let r = 1; r < rows; r++) {
      if (positions[r] !== first + r) throw new AttendError('longheads: a call\'s positions must follow one another (no tree or batch rows)');
    }
    let st = this.states.get(cache);
    if (!st) {
      // Joined after the first token: the chunks begun before `first` were never seen whole and cannot be scored.
      const unseen = Math.ceil(first / w);
      st = { chunks: unseen, unseen, keys: [], empty: [], pending: new Float32Array(0), next: first };
      this.states.set(cache, st);
    }
    if (first !== st.next) {
      // A rollback (cache.trim) is fine while it stays inside the chunk not yet summarised.
      const back = first < st.next && (first >= st.chunks * w || st.chunks === st.unseen);
      if (!back) {
        throw new AttendError(`longheads: layer ${layer} saw positions up to ${st.next - 1} and then ${first}: it must see every forward in order`);
      }
      st.next = first;
    }
    // Pending queries are those of positions base … next − 1; rows before base are not needed.
    const base = st.chunks * w;
    const have = Math.max(0, first - base);
    const skip = Math.max(0, base - first);
    if (skip < rows) {
      const need = (have + rows - skip) * width;
      if (st.pending.length < need) {
        const grown = new Float32Array(Math.max(need, 2 * st.pending.length, (w + 1) * width));
        grown.set(st.pending.subarray(0, have * width));
        st.pending = grown;
      }
      st.pending.set(queries.subarray(skip * width, rows * width), have * width);
    }
    st.next = first + rows;
    return st;
  }

  /**
   * Chunk `c`'s key per query head (the official `chunk_features_key`): its queries attend non-causally over its
   * keys (local positions: the stored post-RoPE queries and keys differ only by c·w on both sides, which cancels in
   * their products), the outputs averaged; that mean attends over the chunk's keys turned to local positions
   * (by −c·w), whose weighted sum is the chunk key.
   */
  private summarise(st: LayerState, view: SelectorView, c: number): void {
    const { config, cache } = view;
    const w = this.window;
    const d = config.headDim;
    const heads = config.numHeads;
    const group = heads / config.numKvHeads;
    const width = heads * d;
    const scale = 1 / Math.sqrt(d);
    const inv = inverseFrequencies(config.rope!, (c + 1) * w);
    if (st.keys.length === 0) {
      for (let h = 0; h < heads; h++) {
        st.keys.push(new Float32Array(0));
        st.empty.push(new Uint8Array(0));
      }
    }
    if (st.keys[0].length < (c + 1) * d) {
      const capacity = Math.max(c + 1, 2 * (st.keys[0].length / d), 16);
      for (let h = 0; h < heads; h++) {
        const k = new Float32Array(capacity * d);
        k.set(st.keys[h]);
        st.keys[h] = k;
        const e = new Uint8Array(capacity);
        e.set(st.empty[h]);
        st.empty[h] = e;
      }
    }
    const q = new Float32Array(w * d);
    for (let g = 0; g < config.numKvHeads; g++) {
      const head = cache.heads[g];
      const lo = head.visibleUpTo(c * w - 1);
      const n = head.visibleUpTo((c + 1) * w - 1) - lo;
      if (n === 0) {
        for (let h = g * group; h < (g + 1) * group; h++) st.empty[h][c] = 1;
        continue;
      }
      const keys = head.keys(lo, n);
      const values = head.values(lo, n);
      const local = new Float32Array(n * d);
      for (let e = 0; e < n; e++) turnInto(keys, e * d, -c * w, inv, local, e * d, d);
      const probs = new Float32Array(w * n);
      const outs = new Float32Array(w * d);
      for (let h = g * group; h < (g + 1) * group; h++) {
        for (let t = 0; t < w; t++) q.set(st.pending.subarray(t * width + h * d, t * width + (h + 1) * d), t * d);
        matmulTransB(q, keys, probs, w, n, d, { reuseB: false });
        for (let t = 0; t < w; t++) softmaxRow(probs, t * n, n, scale);
        matmulNN(probs, values, outs, w, d, n);
        const mean = new Float64Array(d);
        for (let t = 0; t < w; t++) for (let i = 0; i < d; i++) mean[i] += outs[t * d + i];
        for (let i = 0; i < d; i++) mean[i] /= w;
        const s = new Float64Array(n);
        let max = -Infinity;
        for (let e = 0; e < n; e++) {
          let dot = 0;
          for (let i = 0; i < d; i++) dot += mean[i] * local[e * d + i];
          s[e] = dot * scale;
          if (s[e] > max) max = s[e];
        }
        let sum = 0;
        for (let e = 0; e < n; e++) sum += s[e] = Math.exp(s[e] - max);
        const key = st.keys[h].subarray(c * d, (c + 1) * d);
        key.fill(0);
        for (let e = 0; e < n; e++) for (let i = 0; i < d; i++) key[i] += (s[e] / sum) * local[e * d + i];
        st.empty[h][c] = 0;
      }
    }
    st.pending.copyWithin(0, w * width, (st.next - c * w) * width);
  }

  /** The call's remapped reads: per row and query head, the chunks it reads and where it reads them. */
  private reads(st: LayerState, view: SelectorView, K: number, B: number, inv: Float32Array): RemappedReads {
    const { layer, config, cache, queries, positions } = view;
    const w = this.window;
    const d = config.headDim;
    const heads = config.numHeads;
    const group = heads / config.numKvHeads;
    const rows = positions.length;
    const units = rows * heads;
    const offsets = new Int32Array(units + 1);
    const starts = new Int32Array(units * (K + 1));
    const ends = new Int32Array(units * (K + 1));
    const keyShifts = new Int32Array(units * (K + 1));
    const queryShifts = new Int32Array(units);
    const pre = new Float32Array(d);
    const chunkBounds = (g: number, c: number): [number, number] => [cache.heads[g].visibleUpTo(c * w - 1), cache.heads[g].visibleUpTo((c + 1) * w - 1)];
    let at = 0;
    for (let r = 0; r < rows; r++) {
      const p = positions[r];
      const S = p + 1;
      const G = Math.floor(S / w);
      for (let h = 0; h < heads; h++) {
        const u = r * heads + h;
        const g = Math.floor(h / group);
        offsets[u] = at;
        if (S < B) {
          // Before B: everything, where it is (one span, causality clips it).
          starts[at] = 0;
          ends[at] = cache.heads[g].length;
          keyShifts[at++] = 0;
          continue;
        }
        if (G - 2 >= 1 && st.unseen > 1) {
          throw new AttendError(`longheads: layer ${layer} needs chunks 1…${G - 2} but never saw the queries of chunks before ${st.unseen}: pass the selector to every forward from the first token (the prefill too)`);
        }
        turnInto(queries, (r * heads + h) * d, -p, inv, pre, 0, d);
        const chosen = topChunks(pre, st.keys[h], st.empty[h], G - 2, Math.min(K - 3, Math.max(0, G - 2)), d);
        const read = [0, ...chosen, ...(G >= 2 ? [G - 1] : []), ...(S % w !== 0 ? [G] : [])];
        const own = Math.floor(p / w);
        read.forEach((c, slot) => {
          const [lo, hi] = chunkBounds(g, c);
          if (c === own) queryShifts[u] = (slot - c) * w;
          if (hi === lo) return;
          starts[at] = lo;
          ends[at] = hi;
          keyShifts[at++] = (slot - c) * w;
        });
      }
    }
    offsets[units] = at;
    return { offsets, starts, ends, keyShifts, queryShifts, inverseFrequencies: inv };
  }
}

/**
 * The k of chunks 1 … last whose keys score highest against `q` (chunks whose KV head held nothing score −∞),
 * ascending; ties to the earlier chunk.
 */
export function topChunks(q: Float32Array, keys: Float32Array, empty: Uint8Array, last: number, k: number, d: number): number[] {
  if (k <= 0) return [];
  const n = last;
  const scores = new Float32Array(n);
  for (let c = 1; c <= last; c++) {
    let s = 0;
    for (let i = 0; i < d; i++) s += q[i] * keys[c * d + i];
    scores[c - 1] = empty[c] ? -Infinity : s;
  }
  if (k >= n) return Array.from({ length: n }, (_, i) => i + 1);
  // The k-th highest score; those above it, then those equal to it from the earliest, make k.
  const threshold = Float32Array.from(scores).sort()[n - k];
  const out: number[] = [];
  let ties = k - scores.reduce((m, s) => m + (s > threshold ? 1 : 0), 0);
  for (let i = 0; i < n; i++) {
    if (scores[i] > threshold || (scores[i] === threshold && ties-- > 0)) out.push(i + 1);
  }
  return out;
}

/** x[from … from + d) turned by RoPE through `shift` positions (rotate-half layout, angles in f64) into out[to …]. */
function turnInto(x: Float32Array, from: number, shift: number, inv: Float32Array, out: Float32Array, to: number, d: number): void {
  const half = inv.length;
  for (let i = 2 * half; i < d; i++) out[to + i] = x[from + i];
  for (let i = 0; i < half; i++) {
    const c = Math.cos(shift * inv[i]);
    const s = Math.sin(shift * inv[i]);
    const a = x[from + i];
    const b = x[from + i + half];
    out[to + i] = a * c - b * s;
    out[to + i + half] = b * c + a * s;
  }
}

/** Softmax in place of row[at … at + n) times `scale`. */
function softmaxRow(x: Float32Array, at: number, n: number, scale: number): void {
  let max = -Infinity;
  for (let i = at; i < at + n; i++) if (x[i] * scale > max) max = x[i] * scale;
  let sum = 0;
  for (let i = at; i < at + n; i++) sum += x[i] = Math.exp(x[i] * scale - max);
  for (let i = at; i < at + n; i++) x[i] /= sum;
}
