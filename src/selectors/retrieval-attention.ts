/**
 * RetrievalAttention (Liu, Chen, Lu, Jiang, Han, Zhang, Chen, Zhang, Ding, Zhang, Chen, Yang, Yang & Qiu 2024,
 * "RetrievalAttention: Accelerating Long-Context LLM Inference via Vector Retrieval", arXiv 2409.10516;
 * microsoft/RetrievalAttention, which now holds the authors' follow-up RetroInfer only: the RetrievalAttention
 * index code was never published there, so the index follows the paper and the code of RoarGraph, which the paper
 * says it builds on; see selectors/ann/roar-graph.ts). Attention at a decoding step reads, per query head:
 *  - the static pattern, read directly (on the GPU in the paper): the first `sinks` entries of the head (initial
 *    tokens, attention sinks) and its last `window` entries (the recent window, the step's own token included);
 *  - the `budget` = k entries between them with the highest q·k, found by a vector search in an index over those
 *    keys (in CPU memory in the paper; host memory here), one index per KV head searched by each of its query heads.
 * The paper merges the two partial attentions (GPU and CPU) by their softmax sums; that is the same softmax over
 * the union of the entries, which is what one entry list per query head gives here (exact, no approximation).
 *
 * The index is the paper's attention-aware one (§3.2): queries and keys come from different distributions, so an
 * index built on keys alone must scan a large share of them for the top-k of a query; RetrievalAttention builds the
 * graph with the prefill's queries, linking each to its exact nearest keys and projecting those links onto the keys
 * (RoarGraph), so that a decoding query's search reaches its top keys comparing 1–3% of them (at 128K tokens).
 * `baseline` = 1 swaps it for a standard HNSW index on the keys alone from a library (usearch, an optional
 * dependency; selectors/ann/usearch-index.ts), the paper's kind of off-the-shelf comparison.
 *
 * Defaults: sinks 128 and window 512 (the paper's static pattern of 640 tokens, §4.1) and k = 100 retrieved tokens
 * (§4.1, "640 + 100" tokens per step; the paper's body was not at hand when this was written, only its abstract:
 * these numbers are the authors' evaluation setting as remembered, to be checked against the PDF); index nq 100,
 * degree M 35, build list L 500 (RoarGraph's README and scripts:
 * M_sq, M_pjbp, L_pjpq); search list 100 (= k: neither paper fixes it; RoarGraph sweeps L_pq ≥ k; the measured
 * recall at other lists is in docs/selectors.md); training queries: every prefill query of the KV head's query heads
 * (the paper uses the prefill's query vectors; `trainQueries` caps them, keeping the most recent rows).
 * Rules, and choices where the paper is vague, written down:
 *  - only decoding steps (one query row) are sparse; a multi-row call (prefill chunk) runs full attention, and its
 *    queries become training queries of the index. The selector must see the prefill for that (a forward with
 *    `select`, e.g. the prefill through SelectionSession.select); if it did not, the index is built without
 *    training queries (RoarGraph's enhancement step alone, a key-only graph), and its statistics say so;
 *  - every layer is sparse (the paper keeps no dense layers; `denseLayers` can);
 *  - the index is built at the first decoding step over the entries the head holds then (so it follows a press that
 *    compressed during prefill), and entries that leave the recent window afterwards are inserted into it (the
 *    paper leaves decoded tokens out of its study); a head changed under the index (a press keeping other entries,
 *    a rollback into the indexed range) has its index rebuilt, from the training queries the first build used;
 *  - exact when the budget covers the cache: when sinks + window + k reach every entry, the list is null (all);
 *  - sinks and window count the head's own entries, so a per-head compressed cache works too.
 */
import type { HeadMemory } from '../cache/head-memory.js';
import { AttendError } from '../errors.js';
import type { KeyIndex } from './ann/key-index.js';
import { ROAR_GRAPH_DEFAULTS, RoarGraphIndex } from './ann/roar-graph.js';
import { UsearchHnswIndex } from './ann/usearch-index.js';
import type { PrefillSelector, SelectorView } from './selector.js';

export interface RetrievalAttentionOptions {
  /** Entries retrieved from the index per query head and step (the paper's top-k, 100). */
  budget?: number;
  /** First entries of each head always read (128). */
  sinks?: number;
  /** Last entries of each head always read, the current one included (512). */
  window?: number;
  /** 1: a standard HNSW index on the keys alone (usearch) instead of the attention-aware one. */
  baseline?: number;
  /** Attention-aware index: nearest keys linked per training query (100). */
  nq?: number;
  /** Attention-aware index: projection degree M (35). */
  degree?: number;
  /** Attention-aware index: build search list L (500). */
  buildList?: number;
  /** Search list of a decoding query (100; at least the budget is used); for the baseline, HNSW's expansion_search. */
  searchList?: number;
  /** At most this many training queries per KV head, the most recent rows' (0: every prefill query). */
  trainQueries?: number;
  /** First layers at full attention (0). */
  denseLayers?: number;
}

/** What the selector's indexes did, summed over layers and heads. */
export interface RetrievalAttentionStats {
  builds: number;
  buildMs: number;
  /** Training queries the builds used, and nodes they indexed. */
  trainingQueries: number;
  indexed: number;
  /** Entries inserted after a build (they left the recent window). */
  inserts: number;
  searches: number;
  /** Key vectors the searches compared (NaN for the library baseline, which does not say). */
  compared: number;
  /** Nodes the searched indexes held, summed over searches (compared / searched = share of the index scanned). */
  searched: number;
}

interface HeadIndex {
  index: KeyIndex;
  /** Entries [sinks, end) of the head are the index's nodes 0 … end − sinks − 1. */
  end: number;
  /** Positions of the head's entries [0, end) when the index last matched it. */
  positions: Int32Array;
  /** Training queries kept for a rebuild (rows of headDim). */
  training: Float32Array;
}

export class RetrievalAttentionSelector implements PrefillSelector {
  readonly name = 'retrieval-attention';
  /** generate() and attend bench run the prompt through select as well: the index trains on its queries. */
  readonly seesPrefill = true;
  readonly budget: number;
  readonly sinks: number;
  readonly window: number;
  readonly baseline: boolean;
  readonly denseLayers: number;
  readonly trainQueries: number;
  private readonly indexOptions: { nq: number; degree: number; buildList: number; searchList: number };
  readonly stats: RetrievalAttentionStats = { builds: 0, buildMs: 0, trainingQueries: 0, indexed: 0, inserts: 0, searches: 0, compared: 0, searched: 0 };
  private readonly indexes = new WeakMap<HeadMemory, HeadIndex>();
  /** Queries of multi-row calls not yet in an index, per KV head (rows of headDim, the group's query heads). */
  private readonly pending = new WeakMap<HeadMemory, Float32Array[]>();

  constructor(opts: RetrievalAttentionOptions = {}) {
    this.budget = opts.budget ?? 100;
    this.sinks = opts.sinks ?? 128;
    this.window = opts.window ?? 512;
    this.baseline = (opts.baseline ?? 0) === 1;
    this.denseLayers = opts.denseLayers ?? 0;
    this.trainQueries = opts.trainQueries ?? 0;
    this.indexOptions = {
      nq: opts.nq ?? ROAR_GRAPH_DEFAULTS.nq,
      degree: opts.degree ?? ROAR_GRAPH_DEFAULTS.degree,
      buildList: opts.buildList ?? ROAR_GRAPH_DEFAULTS.buildList,
      searchList: opts.searchList ?? ROAR_GRAPH_DEFAULTS.searchList,
    };
    const checks: [string, number, number][] = [
      ['budget', this.budget, 1],
      ['sinks', this.sinks, 0],
      ['window', this.window, 1],
      ['denseLayers', this.denseLayers, 0],
      ['trainQueries', this.trainQueries, 0],
      ...Object.entries(this.indexOptions).map(([k, v]) => [k, v, 1] as [string, number, number]),
    ];
    for (const [name, v, min] of checks) {
      if (!Number.isInteger(v) || v < min) throw new AttendError(`retrieval-attention: ${name} must be a whole number ≥ ${min}, got ${v}`);
    }
    if (opts.baseline !== undefined && opts.baseline !== 0 && opts.baseline !== 1) {
      throw new AttendError(`retrieval-attention: baseline must be 0 (attention-aware index) or 1 (HNSW on keys), got ${opts.baseline}`);
    }
  }

  /** Share of the index the searches compared the query with (NaN for the library baseline). */
  scanShare(): number {
    return this.stats.searched ? this.stats.compared / this.stats.searched : 0;
  }

  select(view: SelectorView): (Int32Array | null)[] | undefined {
    const { layer, config, cache, queries, positions } = view;
    if (layer < this.denseLayers) return undefined;
    const d = config.headDim;
    const group = config.numHeads / config.numKvHeads;
    if (positions.length !== 1) {
      if (!this.baseline) cache.heads.forEach((head, g) => this.record(head, queries, positions.length, g, group, config.numHeads, d));
      return undefined;
    }
    const lists: (Int32Array | null)[] = [];
    for (let g = 0; g < cache.heads.length; g++) {
      const head = cache.heads[g];
      const n = head.length;
      const end = n - this.window;
      if (end - this.sinks <= this.budget) {
        for (let j = 0; j < group; j++) lists.push(null);
        continue;
      }
      const index = this.indexFor(head, end);
      for (let j = 0; j < group; j++) {
        const h = g * group + j;
        const found = index.search(queries.subarray(h * d, (h + 1) * d), this.budget);
        this.stats.searches++;
        this.stats.compared += found.distances;
        this.stats.searched += index.size;
        lists.push(this.entryList(found.ids, n));
      }
    }
    return lists;
  }

  /** Sinks, the retrieved entries (ascending) and the window: ascending entry indices of a head of n entries. */
  private entryList(ids: Int32Array, n: number): Int32Array {
    const retrieved = Int32Array.from(ids, (id) => this.sinks + id).sort();
    const list = new Int32Array(this.sinks + retrieved.length + this.window);
    for (let i = 0; i < this.sinks; i++) list[i] = i;
    list.set(retrieved, this.sinks);
    for (let i = 0; i < this.window; i++) list[this.sinks + retrieved.length + i] = n - this.window + i;
    return list;
  }

  /** Keeps a multi-row call's queries of KV head g's query heads as training queries. */
  private record(head: HeadMemory, queries: Float32Array, rows: number, g: number, group: number, numHeads: number, d: number): void {
    const out = new Float32Array(rows * group * d);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < group; j++) {
        const from = (r * numHeads + g * group + j) * d;
        out.set(queries.subarray(from, from + d), (r * group + j) * d);
      }
    }
    const list = this.pending.get(head) ?? [];
    list.push(out);
    this.pending.set(head, list);
  }

  /** The head's index over entries [sinks, end): extended, or (re)built when missing, stale or given new queries. */
  private indexFor(head: HeadMemory, end: number): KeyIndex {
    const state = this.indexes.get(head);
    const fresh = this.pending.get(head);
    if (state && !fresh && matches(head, state) && end >= state.end) {
      if (end > state.end) {
        const count = end - state.end;
        state.index.add(head.keys(state.end, count), count);
        this.stats.inserts += count;
        state.end = end;
        state.positions = head.positions.slice(0, end);
      }
      return state.index;
    }
    return this.build(head, end, state?.training, fresh);
  }

  private build(head: HeadMemory, end: number, kept: Float32Array | undefined, fresh: Float32Array[] | undefined): KeyIndex {
    const d = head.headDim;
    const t0 = performance.now();
    const count = end - this.sinks;
    const keys = head.keys(this.sinks, count);
    let index: KeyIndex;
    let training: Float32Array = new Float32Array(0);
    if (this.baseline) {
      index = new UsearchHnswIndex(d, { expansionSearch: Math.max(this.indexOptions.searchList, this.budget) });
      index.add(keys, count);
    } else {
      training = this.trainingRows([...(kept ? [kept] : []), ...(fresh ?? [])], d);
      const roar = new RoarGraphIndex(d, this.indexOptions);
      roar.build(keys, count, training, training.length / d);
      this.stats.trainingQueries += roar.buildStats.trainingQueries;
      // Keep only the queries the projection used: a rebuild needs no others (roar-graph.ts, choice (4)).
      const used = new Float32Array(roar.targetQueries.length * d);
      roar.targetQueries.forEach((q, i) => used.set(training.subarray(q * d, (q + 1) * d), i * d));
      training = used;
      index = roar;
    }
    this.pending.delete(head);
    this.indexes.set(head, { index, end, positions: head.positions.slice(0, end), training });
    this.stats.builds++;
    this.stats.indexed += count;
    this.stats.buildMs += performance.now() - t0;
    return index;
  }

  /** The training rows, concatenated and capped to the most recent `trainQueries`. */
  private trainingRows(chunks: Float32Array[], d: number): Float32Array {
    const total = chunks.reduce((s, c) => s + c.length, 0);
    const keep = this.trainQueries > 0 ? Math.min(total, this.trainQueries * d) : total;
    const out = new Float32Array(keep);
    let at = keep;
    for (let i = chunks.length - 1; i >= 0 && at > 0; i--) {
      const c = chunks[i];
      const take = Math.min(at, c.length);
      out.set(c.subarray(c.length - take), at - take);
      at -= take;
    }
    return out;
  }
}

/** Whether the head still holds the entries the index was built over (same positions from its first entry). */
function matches(head: HeadMemory, state: HeadIndex): boolean {
  if (head.length < state.end) return false;
  const p = head.positions;
  for (let i = 0; i < state.end; i++) if (p[i] !== state.positions[i]) return false;
  return true;
}
