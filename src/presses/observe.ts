/**
 * Records, while the model runs, what presses declared they need: a ring of each layer's most recent queries,
 * and per entry the attention it received (sum, and how many query rows contributed) kept as head statistics
 * so that they move with the entries when a head is compacted. The attention sums are the backend's to add, where
 * the probabilities are computed (AttentionObserver.accumulate): no probability block is copied out for them.
 */
import type { AttentionObserver } from '../backend/backend.js';
import { countUpTo } from '../cache/positions.js';
import type { ModelConfig } from '../models/config.js';
import { rotate } from './rotary.js';
import type { PressNeeds, QueryWindow } from './press.js';

export const ATTENTION_SUM = 'attention-sum';
export const ATTENTION_COUNT = 'attention-count';

/** The head statistics a recorder with these needs keeps in the cache. */
export function recordedStats(needs: PressNeeds): string[] {
  return needs.attention ? [ATTENTION_SUM, ATTENTION_COUNT] : [];
}

/** Each layer's query window as a recorder left it (attention sums travel with the cache's entries instead). */
export type RecordedQueries = readonly (QueryWindow | undefined)[];

export class PressRecorder implements AttentionObserver {
  private readonly windows: (QueryWindow | undefined)[] = [];
  readonly accumulate?: { sum: string; count: string };

  /** `recorded`: continue from another recorder's windows (at least as long as this one's), e.g. a shared prefill's. */
  constructor(
    private readonly needs: PressNeeds,
    private readonly width: number,
    recorded: RecordedQueries = [],
  ) {
    if (needs.attention) this.accumulate = { sum: ATTENTION_SUM, count: ATTENTION_COUNT };
    recorded.forEach((window, layer) => (this.windows[layer] = window && this.lastRows(window)));
  }

  /** The query windows so far, for sessions that join this prefill. */
  recorded(): RecordedQueries {
    return [...this.windows];
  }

  queries(layer: number, q: Float32Array, positions: Int32Array): void {
    const w = this.needs.queryWindow ?? 0;
    if (w <= 0) return;
    const old = this.windows[layer] ?? { data: new Float32Array(0), positions: new Int32Array(0) };
    const rows = Math.min(w, old.positions.length + positions.length);
    const fromNew = Math.min(rows, positions.length);
    const fromOld = rows - fromNew;
    const data = new Float32Array(rows * this.width);
    const pos = new Int32Array(rows);
    data.set(old.data.subarray((old.positions.length - fromOld) * this.width));
    pos.set(old.positions.subarray(old.positions.length - fromOld));
    data.set(q.subarray((positions.length - fromNew) * this.width, positions.length * this.width), fromOld * this.width);
    pos.set(positions.subarray(positions.length - fromNew), fromOld);
    this.windows[layer] = { data, positions: pos };
  }

  window(layer: number): QueryWindow | undefined {
    return this.windows[layer];
  }

  /**
   * The cache was renumbered `by` positions down (KVCache.renumber, key rerotation): the recorded queries follow,
   * each lowered by `by` and its RoPE turned back by as much (at the frequencies of a sequence of `seqLen`), so
   * that later windows line up with the renumbered keys. Exact for the queries after the last dropped entry (an
   * observation window the press kept, every query since); rows that would fall below position 0 are dropped.
   */
  renumbered(by: number, config: ModelConfig, seqLen: number): void {
    if (by <= 0) return;
    this.windows.forEach((w, layer) => {
      if (!w) return;
      const from = countUpTo(w.positions, by - 1);
      const positions = w.positions.slice(from).map((p) => p - by);
      const data = w.data.slice(from * this.width);
      rotate(config, data, config.numHeads, positions.map(() => -by), false, seqLen);
      this.windows[layer] = { data, positions };
    });
  }

  /** A copy of the window's last rows, as many as this recorder keeps (none when it keeps no queries). */
  private lastRows(window: QueryWindow): QueryWindow | undefined {
    const rows = Math.min(this.needs.queryWindow ?? 0, window.positions.length);
    if (rows <= 0) return undefined;
    const from = window.positions.length - rows;
    return { data: window.data.slice(from * this.width), positions: window.positions.slice(from) };
  }
}
