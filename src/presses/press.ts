/**
 * The press interface. A press only decides *what* a layer keeps: it scores each entry of each KV head (higher
 * is kept), and may set its own per-layer budget or its own selection across heads. *When* compression runs and
 * how large the budget is are decided in one place, runner.ts; what attention a press needs is declared in
 * `needs` and recorded while the model runs (observe.ts), so no tokens × tokens matrix is ever kept.
 */
import type { AttentionObserver, Backend } from '../backend/backend.js';
import type { KVCache, LayerCache } from '../cache/kv-cache.js';
import type { ModelConfig } from '../models/config.js';
import type { CausalLM } from '../models/model.js';

export interface PressNeeds {
  /**
   * Post-RoPE queries of this many most recent tokens, per layer (SnapKV's observation window); Infinity keeps every
   * query the sequence has run (presses that read all of the prompt's queries, as kvpress's read its hidden states).
   */
  queryWindow?: number;
  /** Attention each entry receives, summed over the queries that saw it, with their count (H2O, observed attention). */
  attention?: boolean;
}

/** Recent queries of one layer: [tokens × numHeads·headDim], in position order. */
export interface QueryWindow {
  data: Float32Array;
  positions: Int32Array;
}

/** What a press sees of one layer when it is asked to compress it. */
export interface LayerView {
  layer: number;
  config: ModelConfig;
  backend: Backend;
  cache: LayerCache;
  /** Tokens the sequence has seen (the uncompressed length). */
  seen: number;
  /** Entries each head may keep under the budget (for head-adaptive presses: the average). */
  keep: number;
  /** The budget as a compression ratio of the current length (fraction removed), for presses defined by one. */
  ratio: number;
  /** Entries per head under the budget of the `seen` tokens spread evenly, unrounded (budget.ts uniformKeep). */
  uniform: number;
  queries?: QueryWindow;
  /** The model being compressed (its weights, e.g. outputProjection for CriticalKV); set by the runner. */
  model?: CausalLM;
}

export interface Press {
  readonly name: string;
  readonly needs: PressNeeds;
  /** One score per entry for each KV head; the entries with the highest scores are kept. */
  score(view: LayerView): Float32Array[];
  /** Entries per head for this layer when the press shapes budgets across layers (PyramidKV); default view.keep. */
  layerKeep?(view: LayerView): number;
  /** Which entries each head keeps, when heads may keep different numbers (AdaKV); default top-`keep` per head. */
  select?(view: LayerView, scores: Float32Array[]): Int32Array[];
  /**
   * A press that records its own statistics while attention runs returns an observer that does so and forwards
   * everything to `next` (the session's recorder) first.
   */
  observer?(cache: KVCache, next: AttentionObserver): AttentionObserver;
}

/** Indices of the `k` highest scores, ascending (ties go to the earlier entry, as a stable sort gives). */
export function topK(scores: Float32Array, k: number): Int32Array {
  const n = scores.length;
  if (k >= n) return Int32Array.from({ length: n }, (_, i) => i);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
  return Int32Array.from(order.slice(0, Math.max(0, k))).sort();
}
