/**
 * The press interface. A press only decides *what* a layer keeps: it scores each entry of each KV head (higher
 * is kept), and may set its own per-layer budget or its own selection across heads. *When* compression runs and
 * how large the budget is are decided in one place, runner.ts; what attention a press needs is declared in
 * `needs` and recorded while the model runs (observe.ts), so no tokens × tokens matrix is ever kept.
 */
import type { AttentionObserver, Backend } from '../backend/backend.js';
import type { KVCache, LayerCache } from '../cache/kv-cache.js';
import type { Budget } from './budget.js';
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
  /** True when the runner compresses between decoding steps (CompressionPlan.decode); absent for the prefill. */
  decoding?: boolean;
}

/** What Press.prepare sees: the whole sequence, once per compression. */
export interface CompressionContext {
  model: CausalLM;
  cache: KVCache;
  /** The plan's budget (absent only for a press that sets its own size). */
  budget?: Budget;
  /** true for a prefill compression (budgets of the tokens seen), false while decoding (back to the prefill's targets). */
  prefill: boolean;
  /** Per layer, the entries per head the budget aims at now, before the cap by what the layer's heads hold. */
  targets: number[];
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
   * The press sets its own size by its own rule (DMS's threshold, SimLayerKV's lazy layers, DecodingPress's target
   * size): a plan for it carries no budget, `keep` is then every entry a head holds, and its `select` decides.
   */
  readonly sizesItself?: boolean;
  /**
   * A press that records its own statistics while attention runs returns an observer that does so and forwards
   * everything to `next` (the session's recorder) first.
   */
  observer?(cache: KVCache, next: AttentionObserver): AttentionObserver;
  /**
   * Called once per compression, before any layer is scored: work on the whole sequence with the model (KVzip and
   * KVCompose run the model again over the cache and score every layer from that; their select then applies it).
   */
  prepare?(context: CompressionContext): void;
  /**
   * Called for each layer once `kept` (per head, ascending entry indices) is chosen, before the heads drop the
   * other entries, which are still there to read (MergingPress folds their values into kept entries).
   */
  beforeKeep?(view: LayerView, kept: Int32Array[]): void;
  /**
   * For a press that prunes the channels of keys rather than entries (ThinK): per head, the key channels it keeps
   * (ascending; null leaves the head's keys as they are). Such a press keeps every entry it is given (its select);
   * its afterKeep prunes the channels (HeadMemory.pruneKeyChannels), and a composition calls this on its stage.
   */
  keyChannels?(view: LayerView): (Int32Array | null)[];
  /**
   * Called for each layer after its heads dropped the entries not kept (they hold exactly the kept ones): a press
   * that changes how the kept entries are stored does it here (ThinK prunes key channels). Returns whether it
   * changed the layer, so that the compression counts in the session's stats.
   */
  afterKeep?(view: LayerView): boolean;
  /**
   * Called once after a compression that dropped entries, every layer compacted: work on the whole cache
   * (KeyRerotationPress renumbers it, cache.renumber; the session's recorded queries follow the renumbering).
   */
  afterCompress?(cache: KVCache, config: ModelConfig): void;
}

/** Indices of the `k` highest scores, ascending (ties go to the earlier entry, as a stable sort gives). */
export function topK(scores: Float32Array, k: number): Int32Array {
  const n = scores.length;
  if (k >= n) return Int32Array.from({ length: n }, (_, i) => i);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
  return Int32Array.from(order.slice(0, Math.max(0, k))).sort();
}
