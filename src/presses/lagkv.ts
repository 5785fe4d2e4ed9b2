/**
 * LagKV (Liang et al. 2025, "LagKV: Lag-Relative Information of the KV Cache Tells Which Tokens Are Important",
 * arXiv 2504.04704), as kvpress's LagKVPress (lagkv_press.py).
 * Rule, per KV head of n entries: after the first `n-sink` the entries are cut into partitions of `lag-size`;
 * every partition but the last full one is scored against the next one (its "lag" reference): per feature, the
 * entry is min-max normalised by the reference's range, the standard deviation (unbiased) over the features is
 * taken, and a softmax over the partition's entries; keys and values are scored so and averaged. Without
 * `cross-scoring` the score becomes the entry's rank within its partition / lag-size (so every partition keeps
 * the same share); with it the softmax values are compared across partitions (kvpress: useful with AdaKV). The
 * sinks, the last full partition and the remainder after it score 1 (always kept). A head shorter than
 * n-sink + 2·lag-size is not partitioned: sinks score 1, the rest (i − n-sink)/(n − n-sink), so the most recent
 * entries are kept.
 * Defaults are kvpress's: n_sink 4, lag_size 128, cross_scoring False. Equal softmax values rank by entry order
 * (torch.argsort does not promise an order). A feature that is constant over a reference partition divides by
 * zero as in kvpress (non-finite scores).
 */
import type { LayerView, Press } from './press.js';
import { checkInt } from './query-statistics.js';

export interface LagKVOptions {
  nSink: number;
  lagSize: number;
  crossScoring: boolean;
}

export const LAGKV_DEFAULTS: LagKVOptions = { nSink: 4, lagSize: 128, crossScoring: false };

export class LagKVPress implements Press {
  readonly name = 'lagkv';
  readonly needs = {};

  constructor(readonly options: LagKVOptions = LAGKV_DEFAULTS) {
    checkInt('lagkv', 'n-sink', options.nSink, 0, 'initial entries always kept');
    checkInt('lagkv', 'lag-size', options.lagSize, 1, 'entries per partition');
  }

  score(view: LayerView): Float32Array[] {
    const { nSink, lagSize: lag, crossScoring } = this.options;
    const d = view.config.headDim;
    return view.cache.heads.map((head) => {
      const n = head.length;
      const score = new Float32Array(n).fill(1);
      if (n < nSink + 2 * lag) {
        for (let i = nSink; i < n; i++) score[i] = (i - nSink) / (n - nSink);
        return score;
      }
      const parts = Math.floor((n - nSink) / lag);
      const end = nSink + parts * lag;
      const keys = head.keys(nSink, end - nSink);
      const values = head.values(nSink, end - nSink);
      const k = partitionScores(keys, parts, lag, d);
      const v = partitionScores(values, parts, lag, d);
      // Partitions 0 … parts − 2 are scored; the last full partition and the remainder keep their 1.
      for (let p = 0; p < parts - 1; p++) {
        const s = Array.from({ length: lag }, (_, t) => (k[p * lag + t] + v[p * lag + t]) / 2);
        if (crossScoring) {
          for (let t = 0; t < lag; t++) score[nSink + p * lag + t] = s[t];
          continue;
        }
        const order = Array.from({ length: lag }, (_, t) => t).sort((a, b) => s[a] - s[b] || a - b);
        order.forEach((t, rank) => (score[nSink + p * lag + t] = rank / lag));
      }
      return score;
    });
  }
}

/**
 * kvpress's _get_states_score for rows [parts·lag × d]: for partitions 0 … parts − 2, per entry, the std over
 * features of (x − min) / (max − min) with min, max over the next partition, softmaxed within the partition.
 */
function partitionScores(rows: Float32Array, parts: number, lag: number, d: number): Float64Array {
  const out = new Float64Array((parts - 1) * lag);
  const min = new Float64Array(d);
  const max = new Float64Array(d);
  const x = new Float64Array(d);
  for (let p = 0; p < parts - 1; p++) {
    min.fill(Infinity);
    max.fill(-Infinity);
    const ref = (p + 1) * lag;
    for (let t = 0; t < lag; t++) {
      for (let c = 0; c < d; c++) {
        const r = rows[(ref + t) * d + c];
        if (r < min[c]) min[c] = r;
        if (r > max[c]) max[c] = r;
      }
    }
    let top = -Infinity;
    for (let t = 0; t < lag; t++) {
      const o = (p * lag + t) * d;
      let mean = 0;
      for (let c = 0; c < d; c++) mean += (x[c] = (rows[o + c] - min[c]) / (max[c] - min[c]));
      mean /= d;
      let ss = 0;
      for (let c = 0; c < d; c++) ss += (x[c] - mean) ** 2;
      const std = Math.sqrt(ss / (d - 1));
      out[p * lag + t] = std;
      if (std > top) top = std;
    }
    let z = 0;
    for (let t = 0; t < lag; t++) z += (out[p * lag + t] = Math.exp(out[p * lag + t] - top));
    for (let t = 0; t < lag; t++) out[p * lag + t] /= z;
  }
  return out;
}
