/**
 * SimLayerKV (Zhang et al. 2024, "SimLayerKV: A Simple Framework for Layer-Level KV Cache Reduction", arXiv
 * 2410.13846), as kvpress's SimLayerKVPress implements it (kvpress/presses/simlayerkv_press.py).
 *
 * Rule, per layer: the attention of the last `n-last` queries (post-RoPE, causal, softmax over every entry) is
 * averaged over those queries and all query heads, the last `n-last` entries' columns left out; the layer is "lazy"
 * when the attention this gives the first `n-initial` entries plus the `n-recent` entries before the last `n-last`
 * exceeds `lazy-threshold`. A lazy layer keeps, in every head, its first `n-initial` entries and its last
 * `n-recent` − `n-last` (kvpress's keys[:, :, -n_recent + n_last:]); any other layer keeps everything. Nothing is
 * compressed when the threshold is 1.0 or a layer holds at most n-initial + n-recent + n-last entries (as kvpress).
 * So the size follows the layers' attention, not a budget (Press.sizesItself).
 *
 * Defaults, kvpress's: lazy_threshold 1.0 (never lazy: kvpress recommends 0.9 for Llama 3, 0.65 Llama 2,
 * 0.8 Mistral, 0.85 Qwen), n_last 1, n_recent 1024, n_initial 4.
 * Checks: kvpress asserts 0 ≤ lazy_threshold ≤ 1; n-last ≥ 1 and n-recent > n-last are required here (with
 * n_recent = n_last kvpress's slice -0: would keep every entry a second time).
 * Schedule: kvpress compresses at the prefill only; Attend compresses again while decoding when the plan asks
 * (the same rule on the latest queries).
 */
import { AttendError, check } from '../errors.js';
import type { LayerView, Press } from './press.js';
import { windowAttention } from './window-attention.js';

export interface SimLayerKVOptions {
  lazyThreshold: number;
  nLast: number;
  nRecent: number;
  nInitial: number;
}

export const SIMLAYERKV_DEFAULTS: SimLayerKVOptions = { lazyThreshold: 1.0, nLast: 1, nRecent: 1024, nInitial: 4 };

export class SimLayerKVPress implements Press {
  readonly name = 'simlayerkv';
  readonly needs;
  readonly sizesItself = true;

  constructor(readonly options: SimLayerKVOptions = SIMLAYERKV_DEFAULTS) {
    const { lazyThreshold, nLast, nRecent, nInitial } = options;
    check(lazyThreshold >= 0 && lazyThreshold <= 1, `simlayerkv: lazy-threshold must be in [0, 1], got ${lazyThreshold}`);
    check(Number.isInteger(nLast) && nLast >= 1, `simlayerkv: n-last must be a whole number ≥ 1 (the last queries that decide), got ${nLast}`);
    check(Number.isInteger(nRecent) && nRecent > nLast, `simlayerkv: n-recent must be a whole number > n-last (${nLast}), got ${nRecent}`);
    check(Number.isInteger(nInitial) && nInitial >= 0, `simlayerkv: n-initial must be a whole number ≥ 0, got ${nInitial}`);
    this.needs = { queryWindow: nLast };
  }

  /** 1 for the entries the layer keeps, 0 for those it drops. */
  score(view: LayerView): Float32Array[] {
    const { lazyThreshold, nLast, nRecent, nInitial } = this.options;
    const heads = view.cache.heads;
    const all = () => heads.map((h) => new Float32Array(h.length).fill(1));
    if (lazyThreshold === 1 || view.cache.maxLength() <= nInitial + nRecent + nLast) return all();
    if (!(this.lazyScore(view) > lazyThreshold)) return all();
    return heads.map((h) => {
      const s = new Float32Array(h.length);
      s.fill(1, 0, Math.min(nInitial, h.length));
      s.fill(1, Math.max(0, h.length - (nRecent - nLast)));
      return s;
    });
  }

  select(_view: LayerView, scores: Float32Array[]): Int32Array[] {
    return scores.map((s) => Int32Array.from(Array.from(s.keys()).filter((i) => s[i] > 0)));
  }

  /** The last n-last queries' mean attention (over them and all query heads) on the initial and recent entries. */
  lazyScore(view: LayerView): number {
    const { nLast, nRecent, nInitial } = this.options;
    const { config } = view;
    const q = view.queries;
    if (!q || q.positions.length < nLast) {
      throw new AttendError(`simlayerkv: needs the last ${nLast} queries, ${q?.positions.length ?? 0} recorded`);
    }
    const width = config.numHeads * config.headDim;
    const last = { data: q.data.subarray((q.positions.length - nLast) * width), positions: q.positions.subarray(q.positions.length - nLast) };
    const probs = windowAttention(view, last);
    const group = config.numHeads / config.numKvHeads;
    let total = 0;
    probs.forEach((p, g) => {
      const length = view.cache.heads[g].length;
      const end = length - nLast;
      for (let r = 0; r < nLast * group; r++) {
        const row = p.subarray(r * length, (r + 1) * length);
        for (let i = 0; i < Math.min(nInitial, end); i++) total += row[i];
        for (let i = Math.max(0, end - nRecent); i < end; i++) total += row[i];
      }
    });
    return total / (nLast * config.numHeads);
  }
}
