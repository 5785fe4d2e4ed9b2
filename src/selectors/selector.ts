/**
 * The selector interface: decode-time sparse attention. Where a press decides what the cache keeps (and frees the
 * rest), a selector decides, at each step and per KV head, which of the entries the step's queries read; nothing is
 * dropped, so an entry passed over now can be read later. The forward asks the selector once per layer, after the
 * step's keys are in the cache and before attention runs (models/batch.ts), and passes the lists to the backend as
 * the visibility's per-head entry lists (attention/visibility.ts).
 */
import type { LayerCache } from '../cache/kv-cache.js';
import type { ModelConfig } from '../models/config.js';

export interface SelectorView {
  layer: number;
  config: ModelConfig;
  cache: LayerCache;
  /** Post-RoPE queries of this call, [rows × numHeads·headDim]. */
  queries: Float32Array;
  positions: Int32Array;
}

export interface Selector {
  readonly name: string;
  /**
   * The ascending entry indices the step reads, one list per KV head or one per query head (indices into its KV
   * head's entries), null for all; undefined: this layer runs full attention.
   */
  select(view: SelectorView): (Int32Array | null)[] | undefined;
}

export interface SelectionStats {
  /** Layer calls a selector restricted. */
  selections: number;
  /** Entries read, and entries held, summed over those calls' lists (per KV or per query head): read / held is the share attention touched. */
  entriesRead: number;
  entriesHeld: number;
  /** Lists summed over the restricted calls (entries read per list = entriesRead / lists). */
  lists: number;
}

/**
 * One sequence's selector with its statistics: `select` is what a forward takes (ForwardOptions.select), and
 * counts what each restricted call read against what the cache held.
 */
export class SelectionSession {
  readonly stats: SelectionStats = { selections: 0, entriesRead: 0, entriesHeld: 0, lists: 0 };

  constructor(readonly selector: Selector, private readonly config: ModelConfig) {}

  readonly select = (layer: number, queries: Float32Array, positions: Int32Array, cache: LayerCache): (Int32Array | null)[] | undefined => {
    const lists = this.selector.select({ layer, config: this.config, cache, queries, positions });
    if (!lists) return undefined;
    this.stats.selections++;
    this.stats.lists += lists.length;
    const perQuery = lists.length !== cache.heads.length;
    const group = this.config.numHeads / this.config.numKvHeads;
    lists.forEach((list, h) => {
      const held = cache.heads[perQuery ? Math.floor(h / group) : h].length;
      this.stats.entriesHeld += held;
      this.stats.entriesRead += list ? list.length : held;
    });
    return lists;
  };

  /** Share of held entries the restricted calls read (1 when nothing was restricted). */
  readShare(): number {
    return this.stats.entriesHeld ? this.stats.entriesRead / this.stats.entriesHeld : 1;
  }
}
