/**
 * Batching for the model families: the rows of several sequences go through the dense layers together (one
 * matrix product for the whole batch), and attention runs per sequence over that sequence's own cache.
 */
import type { AttentionKernelSpec } from '../attention/kernels/index.js';
import { isRemap, type RemappedReads } from '../attention/remap.js';
import type { AttentionObserver, Backend } from '../backend/backend.js';
import type { KVCache, LayerCache } from '../cache/kv-cache.js';
import { Tensor } from '../tensor/tensor.js';
import { positionsFrom } from './model.js';

/** One sequence's part of a forward step: its new tokens and its cache. */
export interface SequenceStep {
  ids: ArrayLike<number>;
  cache: KVCache;
  /** Sees this sequence's attention probabilities (for presses that score by attention). */
  observer?: AttentionObserver;
  /** Chooses, per layer, the entries each KV head reads (a selector's SelectionSession.select); undefined: all. */
  select?: SelectEntries;
}

/**
 * The ascending entry indices this call's queries read, one list per KV head of the layer or one per query head
 * (null: all), or remapped reads (per query row and query head, spans of entries and the positions they are read
 * at: attention/remap.ts), or undefined for full attention.
 */
export type SelectEntries = (
  layer: number,
  queries: Float32Array,
  positions: Int32Array,
  cache: LayerCache,
) => (Int32Array | null)[] | RemappedReads | undefined;

/** Row ranges and positions of each sequence within the batch. */
export class BatchLayout {
  readonly starts: number[] = [];
  readonly positions: Int32Array[];
  readonly rows: number;
  readonly ids: number[];

  constructor(readonly steps: SequenceStep[]) {
    let rows = 0;
    this.ids = [];
    this.positions = steps.map((s) => {
      this.starts.push(rows);
      rows += s.ids.length;
      for (let i = 0; i < s.ids.length; i++) this.ids.push(s.ids[i]);
      const positions = positionsFrom(s.cache.nextPosition, s.ids.length);
      s.observer?.tokens?.(s.ids, positions);
      return positions;
    });
    this.rows = rows;
  }

  /** All positions, in row order. */
  allPositions(): Int32Array {
    const out = new Int32Array(this.rows);
    this.positions.forEach((p, s) => out.set(p, this.starts[s]));
    return out;
  }

  /** Hands each sequence's rows of `h`, the attention input of `layer`, to its observer where it reads them. */
  observeInput(b: Backend, layer: number, h: Tensor): void {
    if (!this.steps.some((s) => s.observer?.attentionInput)) return;
    const host = b.read(h);
    const width = host.length / this.rows;
    this.steps.forEach((s, i) => {
      const start = this.starts[i] * width;
      s.observer?.attentionInput?.(layer, host.subarray(start, start + s.ids.length * width), this.positions[i]);
    });
  }

  /** Appends each sequence's keys/values to its cache and attends its queries over it. */
  attend(
    b: Backend,
    layer: number,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    opts: { scale: number; window: number | null; kernel?: AttentionKernelSpec },
  ): Tensor {
    const parts = this.steps.map((s, i) => {
      const one = this.steps.length === 1;
      const [lo, hi] = [this.starts[i], this.starts[i] + s.ids.length];
      const slice = (t: Tensor) => (one ? t : b.sliceRows(t, lo, hi));
      const cache = s.cache.layers[layer];
      const qs = slice(q);
      const hostQ = s.observer?.queries || s.select ? b.read(qs) : undefined;
      if (hostQ) s.observer?.queries?.(layer, hostQ, this.positions[i]);
      b.appendKv(cache, slice(k), slice(v), this.positions[i]);
      const chosen = s.select?.(layer, hostQ!, this.positions[i], cache);
      const lists = isRemap(chosen) ? undefined : chosen;
      // One list per KV head, or one per query head (the selector's choice; with as many of each they mean the same).
      const perQuery = lists !== undefined && lists.length !== cache.heads.length;
      // Lists that restrict nothing run the grouped path (a query head alone per product is slower, same result).
      const visibility = isRemap(chosen)
        ? { remap: chosen }
        : !lists || lists.every((l) => l === null) ? {} : perQuery ? { queryEntries: lists } : { entries: lists };
      return b.attention(qs, cache, this.positions[i], { layer, ...opts, observer: s.observer, ...visibility });
    });
    return parts.length === 1 ? parts[0] : b.concatRows(parts);
  }

  /** Advances every cache past the tokens just run. */
  advance(): void {
    for (const s of this.steps) s.cache.nextPosition += s.ids.length;
  }

  /** Each sequence's logits: all its rows, or only its last. */
  split(b: Backend, logits: Tensor, lastOnly: boolean): Tensor[] {
    if (lastOnly) return this.steps.map((_, i) => b.sliceRows(logits, i, i + 1));
    if (this.steps.length === 1) return [logits];
    return this.steps.map((s, i) => b.sliceRows(logits, this.starts[i], this.starts[i] + s.ids.length));
  }

  /** The last row of each sequence (the rows that need logits before sampling). */
  lastRows(b: Backend, x: Tensor): Tensor {
    const rows = this.steps.map((s, i) => b.sliceRows(x, this.starts[i] + s.ids.length - 1, this.starts[i] + s.ids.length));
    return rows.length === 1 ? rows[0] : b.concatRows(rows);
  }
}
