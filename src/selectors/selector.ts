/**
 * The selector interface: decode-time sparse attention. Where a press decides what the cache keeps (and frees the
 * rest), a selector decides, at each step and per KV head, which of the entries the step's queries read; nothing is
 * dropped, so an entry passed over now can be read later. The forward asks the selector once per layer, after the
 * step's keys are in the cache and before attention runs (models/batch.ts), and passes the lists to the backend as
 * the visibility's per-head entry lists (attention/visibility.ts).
 */
import { isRemap, type RemappedReads } from '../attention/remap.js';
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
   * head's entries), null for all; undefined: this layer runs full attention. Or remapped reads
   * (attention/remap.ts): per query row and query head, spans of entries read at positions the selector moves them
   * to (and the query's own), for a selector that keeps each head's reading inside the trained window (LongHeads).
   */
  select(view: SelectorView): (Int32Array | null)[] | RemappedReads | undefined;
}

/**
 * A selector that reads the prefill: its forwards pass through `select` as well (multi-row calls, which it may
 * restrict or answer with undefined for full attention), so it can build on the prompt's queries. Selectors without
 * it see decoding steps only.
 */
export interface PrefillSelector extends Selector {
  readonly seesPrefill: true;
}

export function seesPrefill(selector: Selector): selector is PrefillSelector {
  return (selector as Partial<PrefillSelector>).seesPrefill === true;
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

  /** `select` for the prefill's forwards, for a selector that reads them (seesPrefill); undefined otherwise. */
  get prefillSelect(): SelectionSession['select'] | undefined {
    return seesPrefill(this.selector) ? this.select : undefined;
  }

  readonly select = (layer: number, queries: Float32Array, positions: Int32Array, cache: LayerCache): (Int32Array | null)[] | RemappedReads | undefined => {
    const lists = this.selector.select({ layer, config: this.config, cache, queries, positions });
    if (!lists) return undefined;
    this.stats.selections++;
    if (isRemap(lists)) {
      this.countRemap(lists, positions, cache);
      return lists;
    }
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

  /** Remapped reads count per query row and query head: the entries its spans read against those it could see. */
  private countRemap(remap: RemappedReads, positions: Int32Array, cache: LayerCache): void {
    const heads = this.config.numHeads;
    const group = heads / this.config.numKvHeads;
    this.stats.lists += positions.length * heads;
    for (let r = 0; r < positions.length; r++) {
      for (let h = 0; h < heads; h++) {
        const u = r * heads + h;
        const visible = cache.heads[Math.floor(h / group)].visibleUpTo(positions[r]);
        this.stats.entriesHeld += visible;
        for (let s = remap.offsets[u]; s < remap.offsets[u + 1]; s++) {
          this.stats.entriesRead += Math.max(0, Math.min(remap.ends[s], visible) - remap.starts[s]);
        }
      }
    }
  }

  /** Share of held entries the restricted calls read (1 when nothing was restricted). */
  readShare(): number {
    return this.stats.entriesHeld ? this.stats.entriesRead / this.stats.entriesHeld : 1;
  }
}
