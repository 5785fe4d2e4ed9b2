/**
 * The attention-aware vector index of RetrievalAttention (Liu et al. 2024, arXiv 2409.10516, §3.2): a graph over
 * one KV head's keys built with the help of the prefill's queries, so that decoding queries, which come from another
 * distribution than the keys (out-of-distribution for an index built on keys alone), still find their top keys while
 * comparing few of them. The paper builds it as RoarGraph does (Chen et al. 2024, "RoarGraph: A Projected Bipartite
 * Graph for Efficient Cross-Modal Approximate Nearest Neighbor Search", VLDB 2024, arXiv 2408.08933; RoarGraph's
 * first author is a RetrievalAttention author; the RetrievalAttention index code is not published, its repository
 * now holds RetroInfer), so this follows RoarGraph's official code, matchyc/RoarGraph `src/index_bipartite.cpp`
 * (`BuildRoarGraph` → `LinkProjection`, search `SearchRoarGraph`), with the inner-product metric:
 *
 *  1. Bipartite edges: each training query (a prefill query) is linked to its exact `nq` nearest keys by q·k (the
 *     paper computes these KNN on the GPU; here one matrix product per block of queries).
 *  2. Projection onto keys: for each training query in turn, its nearest key t gets as neighbours the query's other
 *     KNN keys, pruned by occlusion (a candidate p is dropped when a neighbour r already kept is closer to p than t
 *     is, d(p, r) < d(p, t)) to at most `degree` = M, then filled up to M with the nearest dropped ones
 *     (`PruneBiSearchBaseGetBase`); the list replaces t's list. Each of t's neighbours gets t back (reverse edge),
 *     re-pruned around itself when already at M (`ProjectionAddReverse` / `PruneProjectionReverseCandidates`).
 *     Then every node adds its reverse edges once more.
 *  3. Connectivity enhancement: for every key, a beam search (list `buildList` = L) for the key itself from the
 *     entry point over a second graph (a copy of the projection), whose expanded nodes, pruned by occlusion to M
 *     (skipping the nearest ones the projection already links), become the key's extra links, with reverse edges
 *     up to 2M (`SupplyAddReverse`); lists over M are pruned to M; each node's final list is its projection list
 *     plus its extra links not already in it (degree ≤ 2M).
 *  4. Entry point: the key nearest the mean of the keys (L2, `CalculateProjectionep`).
 *  5. Search: best-first beam search from the entry point with a sorted candidate list of `searchList` entries,
 *     expanding the closest unexpanded candidate until none is left; the first k are the answer.
 * Distances are negated inner products (RoarGraph's `DistanceInnerProduct` returns −q·k).
 * Defaults (RoarGraph README and test scripts, used for the VLDB paper's runs): nq = M_sq = 100, M = M_pjbp = 35,
 * L = L_pjpq = 500. Attend's choices, written down: (1) the code runs the per-query loop in parallel (its order
 * is the thread schedule's); here it runs in query order; (2) a second occlusion pass of the code that can add
 * nothing new is left out; (3) nodes added after the build (keys that leave the recent window while decoding; not
 * in RoarGraph, which is static) are inserted as in the enhancement step, a beam search of list L for the new key,
 * occlusion-pruned to M, with reverse edges up to 2M (re-pruned and filled to 2M when full), so that a long
 * generation stays searchable without a rebuild; (4) a key that is the nearest of several training queries gets
 * its list from the last of them, as in the code (each query's list replaces the one before), but the lists the
 * code computes and then replaces are not computed, so their reverse edges are not added: on attend-mini at 4K
 * (layers 3 and 7) recall@100 moved by at most 0.013 and the build took about 40% less time.
 */
import { AttendError } from '../../errors.js';
import { Adjacency, CandidateList, VisitedMarks } from './graph-parts.js';
import type { KeyIndex, KeySearch } from './key-index.js';
import { dotAt, innerProducts, topK } from './vectors.js';

export interface RoarGraphOptions {
  /** Nearest keys linked to each training query (RoarGraph's M_sq, N_q in its paper; 100). */
  nq?: number;
  /** Out-degree of the projection (M_pjbp, M in the paper; 35); final lists hold up to 2M. */
  degree?: number;
  /** Candidate list of the build's searches (L_pjpq, L in the paper; 500). */
  buildList?: number;
  /** Candidate list of a query's search (L_pq; at least k is used). */
  searchList?: number;
}

export const ROAR_GRAPH_DEFAULTS = { nq: 100, degree: 35, buildList: 500, searchList: 100 } as const;

/** What a build did, for the selector's statistics. */
export interface RoarGraphBuildStats {
  trainingQueries: number;
  /** Mean out-degree after the build. */
  meanDegree: number;
  /** Key-key and key-query products of the build (the training queries' KNN excluded: a matrix product). */
  buildDistances: number;
}

export class RoarGraphIndex implements KeyIndex {
  readonly kind = 'attention-aware';
  readonly nq: number;
  readonly degree: number;
  readonly buildList: number;
  searchList: number;
  buildStats: RoarGraphBuildStats = { trainingQueries: 0, meanDegree: 0, buildDistances: 0 };
  /** The final graph (room 2M). */
  private graph: Adjacency;
  private data = new Float32Array(0);
  private count = 0;
  private entry = -1;
  private readonly visited = new VisitedMarks();
  private list: CandidateList;
  /** Products computed since the counter was last reset. */
  private compared = 0;
  // Pruning scratch: candidates (id, distance to the anchor), their sorted order, the kept ones.
  private poolIds = new Int32Array(64);
  private poolDist = new Float64Array(64);
  private order = new Int32Array(64);
  private kept: Int32Array;
  private readonly byDistance = (a: number, b: number) => this.poolDist[a] - this.poolDist[b] || this.poolIds[a] - this.poolIds[b];

  constructor(readonly headDim: number, opts: RoarGraphOptions = {}) {
    this.nq = opts.nq ?? ROAR_GRAPH_DEFAULTS.nq;
    this.degree = opts.degree ?? ROAR_GRAPH_DEFAULTS.degree;
    this.buildList = opts.buildList ?? ROAR_GRAPH_DEFAULTS.buildList;
    this.searchList = opts.searchList ?? ROAR_GRAPH_DEFAULTS.searchList;
    for (const [name, v] of [['nq', this.nq], ['degree', this.degree], ['buildList', this.buildList], ['searchList', this.searchList]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new AttendError(`retrieval-attention index: ${name} must be a whole number ≥ 1, got ${v}`);
    }
    this.graph = new Adjacency(2 * this.degree);
    this.kept = new Int32Array(2 * this.degree);
    this.list = new CandidateList(Math.max(this.buildList, this.searchList));
  }

  get size(): number {
    return this.count;
  }

  get entryPoint(): number {
    return this.entry;
  }

  bytes(): number {
    return this.data.byteLength + this.graph.ids.byteLength + this.graph.len.byteLength;
  }

  meanDegree(): number {
    return this.count ? this.graph.links(this.count) / this.count : 0;
  }

  /** Out-neighbours of a node (a copy). */
  neighbours(node: number): number[] {
    return Array.from(this.graph.row(node));
  }

  /**
   * Builds the graph over `n` key rows with the help of `m` training query rows (both headDim wide). With no
   * training query the projection is empty and the graph is the enhancement step's alone (a key-only graph).
   */
  build(keys: Float32Array, n: number, queries: Float32Array, m: number): void {
    const d = this.headDim;
    if (keys.length < n * d || queries.length < m * d) throw new AttendError(`retrieval-attention index: ${n} keys or ${m} queries do not fit their arrays`);
    this.compared = 0;
    this.data = keys.slice(0, n * d);
    this.count = n;
    this.graph = new Adjacency(2 * this.degree, n);
    this.entry = n > 0 ? this.centroidNearest() : -1;
    this.targetQueries = new Int32Array(0);
    if (n > 1) {
      // The projection's lists hold at most M; they become the final graph's first M slots.
      const projection = new Adjacency(this.degree, n);
      this.project(projection, queries, m);
      this.enhance(projection);
    }
    this.buildStats = { trainingQueries: m, meanDegree: this.meanDegree(), buildDistances: this.compared };
  }

  add(keys: Float32Array, count: number): void {
    const d = this.headDim;
    this.reserve(this.count + count);
    for (let i = 0; i < count; i++) {
      const node = this.count++;
      this.data.set(keys.subarray(i * d, (i + 1) * d), node * d);
      if (this.entry < 0) this.entry = node;
      else this.insert(node);
    }
  }

  search(query: Float32Array, k: number): KeySearch {
    if (this.count === 0 || k <= 0) return { ids: new Int32Array(0), distances: 0 };
    this.compared = 0;
    const list = this.beam(query, 0, Math.max(k, this.searchList), -1, this.graph);
    return { ids: list.ids.slice(0, Math.min(k, list.size)), distances: this.compared };
  }

  // ——— build ———

  /**
   * Steps 1–2: each training query's KNN projected onto its nearest key, then reverse edges. A key that is several
   * queries' nearest keeps the list of the last of them (RoarGraph overwrites the list query by query); only that
   * query's list is computed (the header's choice (4)).
   */
  private project(graph: Adjacency, queries: Float32Array, m: number): void {
    const d = this.headDim;
    const n = this.count;
    const nq = Math.min(this.nq, n);
    const block = Math.max(1, Math.min(m, Math.floor(4_000_000 / n)));
    const scores = new Float32Array(block * n);
    const knn = new Int32Array(nq);
    // Per key: the last training query whose nearest it is, and that query's KNN.
    const lastQuery = new Int32Array(n).fill(-1);
    const knnOf = new Int32Array(n * nq);
    const knnCount = new Int32Array(n);
    for (let q0 = 0; q0 < m; q0 += block) {
      const rows = Math.min(block, m - q0);
      innerProducts(queries.subarray(q0 * d, (q0 + rows) * d), rows, this.data, n, d, scores);
      for (let r = 0; r < rows; r++) {
        const got = topK(scores, r * n, n, nq, knn);
        const target = knn[0];
        lastQuery[target] = q0 + r;
        knnOf.set(knn.subarray(0, got), target * nq);
        knnCount[target] = got;
      }
    }
    const targets = Array.from(lastQuery.keys()).filter((t) => lastQuery[t] >= 0).sort((a, b) => lastQuery[a] - lastQuery[b]);
    for (const target of targets) {
      const got = knnCount[target];
      if (got < 2) continue;
      this.poolReset(got);
      for (let i = 1; i < got; i++) {
        const id = knnOf[target * nq + i];
        this.poolAdd(id, this.distance(id, target));
      }
      graph.set(target, this.kept, this.prune(this.degree, 'nearest'));
      this.addReverse(graph, target);
    }
    this.targetQueries = Int32Array.from(targets, (t) => lastQuery[t]).sort();
    for (let node = 0; node < n; node++) this.addReverse(graph, node);
  }

  /**
   * The training queries (row indices, ascending) whose KNN lists the last build projected: the last query of each
   * key that is some query's nearest. A rebuild over changed keys can start from these alone.
   */
  targetQueries = new Int32Array(0);

  /** `src`'s neighbours link back to it, each re-pruned around itself when at M (`ProjectionAddReverse`). */
  private addReverse(graph: Adjacency, src: number): void {
    const row = graph.row(src);
    for (let i = 0; i < row.length; i++) {
      const des = row[i];
      if (graph.has(des, src)) continue;
      if (graph.len[des] < this.degree) {
        graph.push(des, src);
        continue;
      }
      this.poolFromRow(graph, des, src);
      graph.set(des, this.kept, this.prune(this.degree, 'given'));
    }
  }

  /** Step 3: each key's own search adds the links the projection lacks (connectivity enhancement). */
  private enhance(projection: Adjacency): void {
    const n = this.count;
    const M = this.degree;
    // The extra links, up to 2M while reverse edges arrive; searched as they grow (the code's `supply_nbrs_`).
    const supply = new Adjacency(2 * M, n);
    for (let node = 0; node < n; node++) supply.set(node, projection.row(node), projection.len[node]);
    const expanded: number[] = [];
    for (let node = 0; node < n; node++) {
      expanded.length = 0;
      this.beam(this.data, node * this.headDim, this.buildList, node, supply, expanded);
      this.poolReset(expanded.length);
      for (const id of expanded) if (id !== node) this.poolAdd(id, this.distance(id, node));
      supply.set(node, this.kept, this.prune(M, 'none', projection, node));
      const row = supply.row(node);
      for (let i = 0; i < row.length; i++) {
        const des = row[i];
        if (supply.has(des, node)) continue;
        if (supply.len[des] < 2 * M) {
          supply.push(des, node);
          continue;
        }
        this.poolFromRow(supply, des, node);
        supply.set(des, this.kept, this.prune(M, 'none'));
      }
    }
    for (let node = 0; node < n; node++) {
      if (supply.len[node] > M) {
        this.poolFromRow(supply, node, -1);
        supply.set(node, this.kept, this.prune(M, 'none', projection, node));
      }
      // Final list: the projection's, then the extra links it lacks.
      this.graph.set(node, projection.row(node), projection.len[node]);
      const extra = supply.row(node);
      for (let i = 0; i < extra.length; i++) if (extra[i] !== node && !this.graph.has(node, extra[i])) this.graph.push(node, extra[i]);
    }
  }

  /** A node added after the build (the header's choice (3)). */
  private insert(node: number): void {
    const M = this.degree;
    const cap = 2 * M;
    this.graph.reserve(node + 1);
    const expanded: number[] = [];
    this.beam(this.data, node * this.headDim, this.buildList, node, this.graph, expanded);
    this.poolReset(expanded.length);
    for (const id of expanded) if (id !== node) this.poolAdd(id, this.distance(id, node));
    this.graph.set(node, this.kept, this.prune(M, 'none'));
    const row = this.graph.row(node);
    for (let i = 0; i < row.length; i++) {
      const des = row[i];
      if (this.graph.has(des, node)) continue;
      if (this.graph.len[des] < cap) {
        this.graph.push(des, node);
        continue;
      }
      this.poolFromRow(this.graph, des, node);
      this.graph.set(des, this.kept, this.prune(cap, 'given'));
    }
  }

  // ——— pruning ———

  private poolReset(room: number): void {
    if (this.poolIds.length < room + 1) {
      const n = Math.max(room + 1, 2 * this.poolIds.length);
      this.poolIds = new Int32Array(n);
      this.poolDist = new Float64Array(n);
      this.order = new Int32Array(n);
    }
    this.poolSize = 0;
  }

  private poolSize = 0;

  private poolAdd(id: number, dist: number): void {
    this.poolIds[this.poolSize] = id;
    this.poolDist[this.poolSize++] = dist;
  }

  /** The pool around `anchor`: its list in `graph`, then `extra` (≥ 0), with their distances to it. */
  private poolFromRow(graph: Adjacency, anchor: number, extra: number): void {
    const row = graph.row(anchor);
    this.poolReset(row.length + 1);
    for (let i = 0; i < row.length; i++) if (row[i] !== anchor) this.poolAdd(row[i], this.distance(row[i], anchor));
    if (extra >= 0 && extra !== anchor) this.poolAdd(extra, this.distance(extra, anchor));
  }

  /**
   * Prunes the pool (distances to one anchor, the anchor itself not in it) into `kept`; returns the count. By
   * distance, a candidate p is kept unless a kept r is closer to it than the anchor is (d(p, r) < d(p, anchor)), up
   * to `max`; with `skipIn`, the nearest candidates already in the anchor's list there are passed over before the
   * first is kept (`PruneProjectionBaseSearchCandidates`). Then filled up to `max`: 'nearest' from the nearest
   * passed over (`PruneBiSearchBaseGetBase`), 'given' in the pool's order (`PruneProjectionReverseCandidates`),
   * 'none' not at all (`PruneProjectionInternalReverseCandidates`).
   */
  private prune(max: number, fill: 'nearest' | 'given' | 'none', skipIn?: Adjacency, anchor = -1): number {
    const n = this.poolSize;
    const order = this.order.subarray(0, n);
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort(this.byDistance);
    const d = this.headDim;
    const data = this.data;
    let start = 0;
    if (skipIn) while (start < n && skipIn.has(anchor, this.poolIds[order[start]])) start++;
    let kept = 0;
    for (let i = start; i < n && kept < max; i++) {
      const p = this.poolIds[order[i]];
      if (kept > 0 && this.has(kept, p)) continue;
      const bound = this.poolDist[order[i]];
      let occluded = false;
      for (let j = 0; j < kept; j++) {
        this.compared++;
        if (-dotAt(data, p * d, data, this.kept[j] * d, d) < bound) {
          occluded = true;
          break;
        }
      }
      if (!occluded) this.kept[kept++] = p;
    }
    if (fill !== 'none') {
      for (let i = 0; i < n && kept < max; i++) {
        const p = this.poolIds[fill === 'nearest' ? order[i] : i];
        if (!this.has(kept, p)) this.kept[kept++] = p;
      }
    }
    return kept;
  }

  private has(kept: number, id: number): boolean {
    for (let j = 0; j < kept; j++) if (this.kept[j] === id) return true;
    return false;
  }

  // ——— search ———

  /**
   * Best-first beam search for vec[off ..] from the entry point over `graph` with a candidate list of `capacity`,
   * never reaching `skip` through a link; the list at the end, and the expanded nodes in order into `expanded`
   * (RoarGraph's `full_retset`). The entry point starts it even when it is `skip` (the build drops it after).
   */
  private beam(vec: Float32Array, off: number, capacity: number, skip: number, graph: Adjacency, expanded?: number[]): CandidateList {
    if (capacity > this.list.room) this.list = new CandidateList(capacity);
    const list = this.list;
    list.reset(capacity);
    const visited = this.visited;
    visited.clear(this.count);
    const d = this.headDim;
    const data = this.data;
    const start = this.entry;
    visited.mark(start);
    if (skip >= 0) visited.mark(skip);
    this.compared++;
    list.insert(start, -dotAt(vec, off, data, start * d, d));
    const ids = graph.ids;
    const room = graph.room;
    while (list.hasUnexpanded()) {
      const cur = list.next();
      expanded?.push(cur);
      for (let i = cur * room, end = i + graph.len[cur]; i < end; i++) {
        const nb = ids[i];
        if (!visited.mark(nb)) continue;
        this.compared++;
        list.insert(nb, -dotAt(vec, off, data, nb * d, d));
      }
    }
    return list;
  }

  // ——— helpers ———

  /** −key_a · key_b. */
  private distance(a: number, b: number): number {
    this.compared++;
    return -dotAt(this.data, a * this.headDim, this.data, b * this.headDim, this.headDim);
  }

  private centroidNearest(): number {
    const d = this.headDim;
    const n = this.count;
    const mean = new Float64Array(d);
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += this.data[i * d + j];
    for (let j = 0; j < d; j++) mean[j] /= n;
    let best = 0;
    let bestDist = Infinity;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) {
        const x = this.data[i * d + j] - mean[j];
        s += x * x;
      }
      if (s < bestDist) {
        bestDist = s;
        best = i;
      }
    }
    return best;
  }

  private reserve(nodes: number): void {
    this.graph.reserve(nodes);
    const need = nodes * this.headDim;
    if (this.data.length >= need) return;
    const grown = new Float32Array(Math.max(need, 2 * this.data.length));
    grown.set(this.data.subarray(0, this.count * this.headDim));
    this.data = grown;
  }
}
