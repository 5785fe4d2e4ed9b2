/**
 * LazyEviction (Zhang et al. 2025, "LazyEviction: Lagged KV Eviction with Attention Pattern Observation for
 * Efficient Long Reasoning", arXiv 2506.15969; official code github.com/Halo-949/LazyEviction).
 *
 * Rule (as the official code does it: `TempCache.record_recurrence` in model/temp_cacheobs.py and
 * `Window_LAZYKVCluster.update_kv_in_decoding` in model/kv_utils.py): at every decoding step t each entry whose
 * attention from the new token reaches `alpha` is "renewed": its recurrence interval t − last is folded into its
 * maximum recurrence interval (MRI) and last := t. Eviction is lagged: only every `window` steps, and the last
 * `window` entries (the tokens of the observation window just ended) are always kept; the others are ranked by
 *   2 / (1 + exp(1 + (t − last) / (MRI + 1e-5)))  +  (MRI = 0 ? 0 : 2 / (1 + exp(MRI − 1)))
 * so entries never renewed go first, short-interval recurring entries are favoured, and among the rest an entry
 * still within its usual interval (small gap / MRI) outranks one that is overdue. The code's formula is used;
 * the arXiv v1 text states the score differently.
 *
 * Defaults: window 175 and alpha 1e-4, the official eval_qwen.sh settings for MATH (its comments give window
 * 101 for GSM8K and 363 for AIME; eval_llama.sh uses window 52, alpha 5e-4; evaluation.py's alpha default is
 * 1e-4). The official code uses one `obs_size` = `decoding_recent_size` for both the eviction period and the
 * protected recent window, so one `window` option sets both here.
 *
 * Schedule: the runner decides when. This press is meant for decoding, with the plan
 * `{ press, budget: { tokens: C }, decode: { every: window } }` (the official code evicts every `window` steps
 * once the cache holds more than `max_kv_capacity`, and never compresses the prompt; give a budget at least
 * the prompt's length to keep it whole). Note that the runner brings decoding back to the size the prefill
 * left, min(C, prompt), where the official capacity stays C. A prompt compressed before any decoding step
 * has no recurrence yet: all its entries tie, and the earliest are kept besides the recent window.
 *
 * Choices:
 * - Time is the query's position + 1, so intervals equal the official step counts. An entry starts with
 *   last = (its first observing step) − 1 and MRI 0, as the official padding does: the prompt's entries at the
 *   first decoding step, a new token's entry at its own step.
 * - Only decoding steps are tracked (forward passes of one token, as the official code tracks only q_len = 1);
 *   a prefill chunk of a single token counts as one step.
 * - The official code repeats the KV heads and tracks every query head separately; here a KV head's entry is
 *   renewed when any query head of its group gives it at least `alpha` (exact for multi-head attention).
 * - Entries never observed score as if first seen now (last = now, MRI 0).
 *
 * Framework hook: per-step attention goes through `observer(cache, next)`, an observer that forwards to `next`
 * (the session's recorder) and keeps the statistics in head stats that move with `keep`. CompressionSession
 * chains it (its `observer` is `press.observer(cache, recorder)`), so pass `session.observer` alone to prefill
 * and forward; wrapping it in `press.observer` again would record every block twice.
 */
import type { AttentionBlock, AttentionObserver } from '../backend/backend.js';
import type { HeadMemory } from '../cache/head-memory.js';
import type { KVCache } from '../cache/kv-cache.js';
import { check } from '../errors.js';
import type { LayerView, Press } from './press.js';

export interface LazyEvictionOptions {
  /** Observation window: decoding steps between evictions, and the most recent entries always kept. */
  window: number;
  /** Attention from a new token at or above which an entry counts as renewed. */
  alpha: number;
}

export const LAZY_EVICTION_DEFAULTS: LazyEvictionOptions = { window: 175, alpha: 1e-4 };

/** Head statistics: the time an entry was last renewed, its maximum recurrence interval, whether it is tracked. */
export const LAZY_LAST = 'lazy-last';
export const LAZY_MRI = 'lazy-mri';
export const LAZY_SEEN = 'lazy-seen';

/** The official importance of an entry last renewed at `last` with maximum recurrence interval `mri`, at time `now`. */
export function lazyImportance(now: number, last: number, mri: number): number {
  const recurrence = mri === 0 ? 0 : 2 / (1 + Math.exp(mri - 1));
  return 2 / (1 + Math.exp(1 + (now - last) / (mri + 1e-5))) + recurrence;
}

export class LazyEvictionPress implements Press {
  readonly name = 'lazy-eviction';
  readonly needs = { attention: true };

  constructor(readonly options: LazyEvictionOptions = LAZY_EVICTION_DEFAULTS) {
    check(Number.isInteger(options.window) && options.window > 0, `lazy-eviction: window must be a whole number > 0, got ${options.window}`);
    check(options.alpha >= 0 && options.alpha <= 1, `lazy-eviction: alpha must be in [0, 1], got ${options.alpha}`);
  }

  /** The observer that tracks recurrence for `cache`, forwarding everything to `next` first. */
  observer(cache: KVCache, next?: AttentionObserver): AttentionObserver {
    return new LazyEvictionObserver(this, cache, next);
  }

  /** Tracks recurrence for every query row of `block` (each row one decoding step). */
  record(block: AttentionBlock, cache: KVCache): void {
    const head = cache.layers[block.layer].heads[block.kvHead];
    const last = head.stat(LAZY_LAST);
    const mri = head.stat(LAZY_MRI);
    const seen = head.stat(LAZY_SEEN);
    const { probs, cols, groupSize, queryPositions } = block;
    const alpha = this.options.alpha;
    for (let t = 0; t < queryPositions.length; t++) {
      const q = queryPositions[t];
      const now = q + 1;
      const visible = Math.min(head.visibleUpTo(q), cols, head.length);
      for (let i = 0; i < visible; i++) {
        if (seen[i] === 0) {
          last[i] = now - 1;
          mri[i] = 0;
          seen[i] = 1;
        }
        let p = 0;
        for (let j = 0; j < groupSize; j++) p = Math.max(p, probs[(t * groupSize + j) * cols + i]);
        if (p >= alpha) {
          mri[i] = Math.max(mri[i], now - last[i]);
          last[i] = now;
        }
      }
    }
  }

  score(view: LayerView): Float32Array[] {
    const now = view.seen;
    const recent = Math.min(this.options.window, view.keep);
    return view.cache.heads.map((head) => {
      const scores = headScores(head, now);
      scores.fill(Infinity, Math.max(0, head.length - recent));
      return scores;
    });
  }
}

function headScores(head: HeadMemory, now: number): Float32Array {
  const last = head.stat(LAZY_LAST);
  const mri = head.stat(LAZY_MRI);
  const seen = head.stat(LAZY_SEEN);
  return Float32Array.from({ length: head.length }, (_, i) => (seen[i] === 0 ? lazyImportance(now, now, 0) : lazyImportance(now, last[i], mri[i])));
}

/**
 * Forwards to `next`, and records recurrence for the blocks of forward passes of a single token (decoding
 * steps); `queries` tells it how many rows the current pass of each layer has.
 */
export class LazyEvictionObserver implements AttentionObserver {
  private readonly rows: number[] = [];
  /** The next observer's request that the backend accumulate attention sums, passed on. */
  readonly accumulate?: { sum: string; count: string };

  constructor(
    private readonly press: LazyEvictionPress,
    private readonly cache: KVCache,
    private readonly next?: AttentionObserver,
  ) {
    this.accumulate = next?.accumulate;
  }

  queries(layer: number, q: Float32Array, positions: Int32Array): void {
    this.next?.queries?.(layer, q, positions);
    this.rows[layer] = positions.length;
  }

  observe(block: AttentionBlock): void {
    this.next?.observe?.(block);
    if (this.rows[block.layer] === 1) this.press.record(block, this.cache);
  }
}
