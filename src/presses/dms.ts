/**
 * DMS, after Łańcucki et al. 2025, "Inference-Time Hyper-Scaling with KV Cache Compression" (Dynamic Memory
 * Sparsification, arXiv 2506.05345), as kvpress's DMSPress implements it (kvpress/presses/dms_press.py): a
 * dense-prefill version without the paper's trained eviction decisions, a scorer press's scores in their place.
 *
 * Rule: every token is scored by the scorer once, when it enters the cache, the scorer seeing only the new tokens
 * (kvpress: keys[-q_len:] with the forward's hidden states); the most recent `sliding-window-size` tokens are
 * never evicted, and a token that leaves that window is evicted, for good, if its score is below `threshold`
 * (compared in f32, as torch compares a float32 tensor with a Python float), else kept for good. So heads keep
 * different numbers of entries and the cache size follows the content: no budget (Press.sizesItself). With
 * `decoding` = 1 this goes on at every decoding step (its registry schedule is { every: 1 }); with 0 only the
 * prefill is compressed, and tokens decoded later are neither scored nor evicted.
 * kvpress masks the evicted keys (its attention patch gives them zero weight); Attend removes them per head.
 *
 * Defaults, kvpress's: sliding_window_size 128, decoding False. kvpress's threshold defaults to None, with which
 * its eviction fails: here `threshold` is required. kvpress's `press` has no default (its leaderboard pairs DMS
 * with the trained KVzap scorer); Attend's `scorer` defaults to knorm, so a threshold on −‖k‖ (e.g. −20 keeps
 * keys of norm below 20).
 *
 * Framework: a token's score and state live in head statistics (DMS_SCORE; DMS_STATE 0 = not yet scored, 1 =
 * scored, inside the window, 2 = left it and kept), so they move with the entries and with cache copies. The
 * entries scored at a call are those not scored before: all of them at the prefill (the scorer then sees the
 * whole layer, as in kvpress), each chunk with --press-during chunks, the new tokens while decoding; the scorer
 * sees a copy of just those entries (host backends) and the queries at their positions. A token leaves the window
 * when its position is below the layer's latest position + 1 − sliding-window-size (kvpress's cache index).
 */
import type { AttentionObserver } from '../backend/backend.js';
import type { HeadMemory } from '../cache/head-memory.js';
import { LayerCache, type KVCache } from '../cache/kv-cache.js';
import { check } from '../errors.js';
import { recordedStats } from './observe.js';
import type { LayerView, Press, PressNeeds } from './press.js';

export interface DMSOptions {
  /** Tokens scored below this are evicted once they leave the window (kvpress threshold). */
  threshold: number;
  /** Most recent tokens never evicted (kvpress sliding_window_size). */
  window: number;
  /** Also score and evict while decoding (kvpress decoding). */
  decoding: boolean;
}

export const DMS_DEFAULTS = { window: 128, decoding: false };

export const DMS_SCORE = 'dms-score';
export const DMS_STATE = 'dms-state';

export class DMSPress implements Press {
  readonly name: string;
  readonly needs: PressNeeds;
  readonly sizesItself = true;
  readonly observer?: (cache: KVCache, next: AttentionObserver) => AttentionObserver;

  constructor(
    readonly scorer: Press,
    readonly options: DMSOptions,
  ) {
    check(Number.isFinite(options.threshold), `dms: threshold must be a number (tokens scored below it are evicted), got ${options.threshold}`);
    check(Number.isInteger(options.window) && options.window >= 0, `dms: sliding-window-size must be a whole number ≥ 0, got ${options.window}`);
    check(!scorer.sizesItself, `dms: the scorer must be a press that scores entries; ${scorer.name} sets its own size`);
    this.name = `dms(${scorer.name})`;
    this.needs = scorer.needs;
    if (scorer.observer) this.observer = (cache, next) => scorer.observer!(cache, next);
  }

  /** Every entry's score: those not scored before are scored now (unless decoding is off and this is decoding). */
  score(view: LayerView): Float32Array[] {
    if (this.active(view)) this.scoreNew(view);
    return view.cache.heads.map((h) => h.stat(DMS_SCORE).slice());
  }

  select(view: LayerView, scores: Float32Array[]): Int32Array[] {
    const heads = view.cache.heads;
    if (!this.active(view)) return heads.map((h) => Int32Array.from({ length: h.length }, (_, i) => i));
    let latest = -1;
    for (const h of heads) if (h.length > 0) latest = Math.max(latest, h.positions[h.length - 1]);
    const limit = latest + 1 - this.options.window;
    const threshold = Math.fround(this.options.threshold);
    return heads.map((head, h) => {
      const state = head.stat(DMS_STATE);
      const kept: number[] = [];
      for (let i = 0; i < head.length; i++) {
        if (state[i] === 1 && head.positions[i] < limit) {
          if (scores[h][i] < threshold) continue;
          state[i] = 2;
        }
        kept.push(i);
      }
      return Int32Array.from(kept);
    });
  }

  private active(view: LayerView): boolean {
    return !view.decoding || this.options.decoding;
  }

  /** Scores the entries not scored yet (a suffix of each head) as the scorer sees them alone. */
  private scoreNew(view: LayerView): void {
    const heads = view.cache.heads;
    const starts = heads.map((head) => {
      const state = head.stat(DMS_STATE);
      let i = head.length;
      while (i > 0 && state[i - 1] === 0) i--;
      return i;
    });
    if (starts.every((s, h) => s === heads[h].length)) return;
    const fresh = this.scorer.score(starts.every((s) => s === 0) ? view : newEntriesView(view, starts, recordedStats(this.scorer.needs)));
    heads.forEach((head, h) => {
      head.stat(DMS_SCORE).set(fresh[h].subarray(0, head.length - starts[h]), starts[h]);
      head.stat(DMS_STATE).fill(1, starts[h]);
    });
  }
}

/**
 * A view of only the entries from `starts[h]` on in each head (copied, f32), with the recorded queries at their
 * positions and the named head statistics: what kvpress's scorer gets as keys[:, :, -q_len:] after a forward.
 */
export function newEntriesView(view: LayerView, starts: number[], stats: string[] = []): LayerView {
  const { config } = view;
  const d = config.headDim;
  const layer = LayerCache.empty(view.cache.heads.length, d, 'f32');
  let from = Infinity;
  view.cache.heads.forEach((head: HeadMemory, h) => {
    const n = head.length - starts[h];
    if (n <= 0) return;
    from = Math.min(from, head.positions[starts[h]]);
    layer.heads[h].append(head.keys(starts[h], n), head.values(starts[h], n), head.positions.slice(starts[h]), 0, d);
    for (const name of stats) layer.heads[h].stat(name).set(head.stat(name).subarray(starts[h]));
  });
  const q = view.queries;
  let queries = q;
  if (q) {
    const width = config.numHeads * d;
    let at = q.positions.findIndex((p) => p >= from);
    if (at < 0) at = q.positions.length;
    queries = { data: q.data.slice(at * width, q.positions.length * width), positions: q.positions.slice(at) };
  }
  const length = layer.maxLength();
  return { ...view, cache: layer, keep: length, ratio: 0, uniform: length, queries };
}
