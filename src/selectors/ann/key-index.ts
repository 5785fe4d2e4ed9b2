/**
 * What RetrievalAttention (selectors/retrieval-attention.ts) asks of a vector index over one KV head's older keys:
 * nodes are key rows numbered from 0 in the order they were added, and a search returns the nodes of the highest
 * inner product with a query. Two implementations: the paper's attention-aware graph (roar-graph.ts, Attend's own
 * code) and a standard HNSW index from a library, the baseline (usearch-index.ts).
 */
export interface KeySearch {
  /** Node ids, best first (at most k). */
  ids: Int32Array;
  /** Key vectors the search compared the query with (NaN when the library does not say). */
  distances: number;
}

export interface KeyIndex {
  readonly kind: 'attention-aware' | 'hnsw';
  /** Nodes held. */
  readonly size: number;
  /** Appends `count` key rows (width headDim) as nodes size … size + count − 1. */
  add(keys: Float32Array, count: number): void;
  /** The k nodes of highest q·key, best first. */
  search(query: Float32Array, k: number): KeySearch;
  /** Host bytes the index holds (vectors and links); 0 when a library does not say. */
  bytes(): number;
}
