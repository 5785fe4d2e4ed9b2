/**
 * ThinK (Xu et al. 2024, "ThinK: Thinner Key Cache by Query-Driven Pruning", arXiv 2407.21018), as kvpress's
 * ThinKPress (kvpress/presses/think_press.py). ThinK removes channels (dimensions) of the keys, not entries.
 *
 * Rule, per KV head: each key channel c scores mean over the last `window` queries of q_c² (post-RoPE queries,
 * averaged over the query heads of the group) × mean over the head's entries of k_c²; the int(headDim · R) channels
 * with the lowest scores are pruned from the keys of every entry the head holds, the others kept. Values keep every
 * channel and every entry is kept. (For one query head this ranks channels as the paper's ‖Q_c K_cᵀ‖_F = ‖Q_c‖·‖K_c‖
 * does; kvpress averages q² over the group first.)
 *
 * Where kvpress zeroes the pruned channels (its docstring: no memory gained, the keys keep their shape), Attend frees
 * them: a head stores its pruned entries' keys with the kept channels only, plus the list of those channels
 * (HeadMemory.pruneKeyChannels), and attention multiplies them by the same channels of the query, which is the
 * product with the zeroed key; everything else reads the pruned channels as 0 (HeadMemory.keys), as kvpress's
 * zeroed keys are. Entries appended after a pruning have every channel, as kvpress's new keys do.
 *
 * When: kvpress prunes once, after the prefill. Attend prunes at every compression of the plan (after the prefill,
 * and after every chunk or while decoding when the plan asks): the channels are chosen again from the head as it is
 * then (channels pruned before count as 0, as kvpress's zeroed keys would) and every entry it holds keeps the new
 * set (an entry pruned before keeps 0 in a kept channel it had lost): ThinK applied again to kvpress's zeroed cache.
 * With a plan compressing once after the prefill (kvpress's pipeline) this is exactly kvpress's ThinKPress.
 *
 * The budget: `--ratio R` is kvpress's key_channel_compression_ratio, the fraction of key channels removed
 * (int(headDim · R), kvpress's rounding; R = 0 or int(headDim · R) = 0 changes nothing, as in kvpress). kvpress
 * reports compression_ratio = R / 2 (the keys are half of the cache), a figure Attend's budget does not take. Under a
 * token budget N the fraction is the budget's share of the tokens seen, 1 − N/seen (LayerView.ratio), at each
 * compression. In a composition (composed.ts, `presses=snapkv,think ratios=0.5,0.5`) ThinK's ratio is its channel
 * fraction, and it removes no entries.
 *
 * Defaults as kvpress's: window_size 32. kvpress's key_channel_compression_ratio defaults to 0 (no pruning); here it
 * is the plan's budget, which the runner requires. Ties between channel scores (torch.topk breaks them its own way):
 * the earlier channel is kept. Choices: a window of 0 is refused (kvpress's hidden_states[:, -0:] would take every
 * query, a slicing accident rather than an option); ThinK scores no entries, so it cannot be another press's scorer.
 */
import { AttendError } from '../errors.js';
import type { LayerCache } from '../cache/kv-cache.js';
import type { LayerView, Press, PressNeeds } from './press.js';
import { everything } from './wrapped.js';

export interface ThinKOptions {
  /** The last queries whose squares weigh the key channels (kvpress's window_size). */
  window: number;
}

export const THINK_DEFAULTS: ThinKOptions = { window: 32 };

export class ThinKPress implements Press {
  readonly name = 'think';
  readonly needs: PressNeeds;

  constructor(readonly options: ThinKOptions = THINK_DEFAULTS) {
    if (!(Number.isInteger(options.window) && options.window >= 1)) {
      throw new AttendError(`think: option window must be a whole number ≥ 1 (the last queries that weigh the key channels), got ${options.window}`);
    }
    this.needs = { queryWindow: options.window };
  }

  /** ThinK keeps every entry; the runner does not score a press that prunes key channels. */
  score(): Float32Array[] {
    throw new AttendError('think prunes key channels and scores no entries: it cannot be the scorer of another press (compose it: --press composed --press-opt presses=snapkv,think)');
  }

  select(view: LayerView): Int32Array[] {
    return everything(view);
  }

  keyChannels(view: LayerView): (Int32Array | null)[] {
    return thinkChannels(view, this.options.window);
  }

  afterKeep(view: LayerView): boolean {
    return pruneKeyChannels(view.cache, this.keyChannels(view));
  }
}

/**
 * Per KV head of the view, the key channels ThinK keeps at the view's ratio (ascending), or null where it prunes
 * none (a ratio giving int(headDim · ratio) = 0, an empty head). Scores in f64.
 */
export function thinkChannels(view: LayerView, window: number): (Int32Array | null)[] {
  const { config, cache } = view;
  const d = config.headDim;
  const ratio = view.ratio;
  if (!(ratio >= 0 && ratio <= 1)) throw new AttendError(`think: the fraction of key channels to remove must be in [0, 1], got ${ratio}`);
  const removed = Math.floor(d * ratio);
  if (removed === 0) return cache.heads.map(() => null);
  const q = view.queries;
  if (!q || q.positions.length === 0) throw new AttendError('think: no queries were recorded for this layer (it weighs key channels by the last queries)');
  const width = config.numHeads * d;
  const rows = Math.min(window, q.positions.length);
  const first = q.positions.length - rows;
  const group = config.numHeads / cache.heads.length;
  return cache.heads.map((head, g) => {
    const n = head.length;
    if (n === 0) return null;
    // Mean over the window of q², per query head, then the mean over the group (kvpress's order).
    const qn = new Float64Array(d);
    for (let j = 0; j < group; j++) {
      const perHead = new Float64Array(d);
      for (let t = first; t < first + rows; t++) {
        const at = t * width + (g * group + j) * d;
        for (let c = 0; c < d; c++) perHead[c] += q.data[at + c] ** 2;
      }
      for (let c = 0; c < d; c++) qn[c] += perHead[c] / rows;
    }
    // Mean over the entries of k² (pruned channels read as 0).
    const keys = head.keys(0, n);
    const kn = new Float64Array(d);
    for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) kn[c] += keys[i * d + c] ** 2;
    const score = Float64Array.from({ length: d }, (_, c) => (qn[c] / group) * (kn[c] / n));
    // Keep the d − removed highest (ties to the earlier channel).
    const order = Array.from({ length: d }, (_, c) => c).sort((a, b) => score[b] - score[a] || a - b);
    return Int32Array.from(order.slice(0, d - removed)).sort();
  });
}

/** Prunes each head's keys to its channels (null: left as it is); whether any head's stored keys changed. */
export function pruneKeyChannels(cache: LayerCache, channels: (Int32Array | null)[]): boolean {
  let changed = false;
  cache.heads.forEach((head, h) => {
    const kept = channels[h];
    if (!kept) return;
    if (!head.pruneKeyChannels) throw new AttendError("think: this backend's KV memory cannot prune key channels");
    if (head.pruneKeyChannels(kept)) changed = true;
  });
  return changed;
}
