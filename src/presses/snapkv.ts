/**
 * SnapKV (Li et al. 2024, "SnapKV: LLM Knows What You are Looking for Before Generation").
 * Rule: the last `window` queries of the prompt (the observation window) vote for earlier entries: their attention
 * is averaged over the window, smoothed with an average pool of width `kernel` along the entries, averaged over
 * the query heads of each KV group; the window's own entries are always kept.
 * Defaults as kvpress's SnapKVPress: window 64, kernel 5, average pooling (the SnapKV repository uses window 32,
 * kernel 5; KVCache-Factory 32/7 with max pooling: pass options to match those).
 * Choice: the context must be longer than the window (kvpress asserts the same); otherwise a clear error.
 */
import { AttendError } from '../errors.js';
import type { LayerView, Press } from './press.js';
import { avgPool1d, meanOverQueries, protectTail, windowAttention } from './window-attention.js';

export interface SnapKVOptions {
  window: number;
  kernel: number;
}

export const SNAPKV_DEFAULTS: SnapKVOptions = { window: 64, kernel: 5 };

export class SnapKVPress implements Press {
  readonly name: string = 'snapkv';
  readonly needs;

  /** `pressName` names the press in errors (PyramidKV builds on this class). */
  constructor(readonly options: SnapKVOptions = SNAPKV_DEFAULTS, pressName = 'snapkv') {
    // A window of 0 observes no queries (nothing to score with); a kernel of 0 pools by dividing by 0.
    for (const key of ['window', 'kernel'] as const) {
      const v = options[key];
      if (!(Number.isInteger(v) && v >= 1)) {
        throw new AttendError(
          `${pressName}: option ${key} must be a whole number ≥ 1 (${key === 'window' ? 'the last queries that score the entries' : 'the width of the score pooling'}), got ${v}`,
        );
      }
    }
    this.needs = { queryWindow: options.window };
  }

  score(view: LayerView): Float32Array[] {
    const { window, kernel } = this.options;
    const queries = view.queries;
    if (!queries || queries.positions.length < window || view.seen <= window) {
      throw new AttendError(`${this.name}: window ${window} must be shorter than the context (${view.seen} tokens seen)`);
    }
    const group = view.config.numHeads / view.config.numKvHeads;
    const probs = windowAttention(view, queries);
    const windowStart = queries.positions[0];
    // Entries before the window are scored; the window's own entries follow them.
    const prefixes = view.cache.heads.map((head) => head.visibleUpTo(windowStart - 1));
    const all = view.cache.heads.map((head, g) => {
      const scores = new Float32Array(head.length);
      for (let j = 0; j < group; j++) {
        const pooled = avgPool1d(meanOverQueries(probs[g], head.length, window, group, j, prefixes[g]), kernel);
        for (let i = 0; i < prefixes[g]; i++) scores[i] += pooled[i] / group;
      }
      return scores;
    });
    protectTail(all, prefixes);
    return all;
  }
}
