/**
 * Merge-on-evict (kvpress MergingPress, inspired by Token Merging — Bolya et al. 2023, "Token Merging: Your ViT
 * But Faster", arXiv 2210.09461 — and D2O — Wan et al. 2024, "D2O: Dynamic Discriminative Operations for
 * Efficient Long-Context Inference of Large Language Models", arXiv 2406.13035; kvpress's own method, no paper).
 * Rule: a scorer picks the kept entries (top ⌊length·(1 − ratio)⌋ per head); before the others are dropped, each
 * evicted entry finds the kept entry whose key is most cosine-similar (keys over max(‖k‖, 1e-6)), and merges into
 * it if that similarity s ≥ `threshold` and, with `fraction` < 1, s is among the evicted entries' top `fraction`
 * (s ≥ the (1 − fraction)-quantile of the similarities, linear interpolation as torch.quantile, entries under the
 * threshold counted as −∞). Its weight is w = max(s, 0)·‖v_e‖ / (‖v_e‖ + ‖v_t‖ + 1e-6) (v_t the target's value
 * before merging); a kept value that received any weight becomes (v_t + Σ w·v_e) / (1 + Σ w). Keys are unchanged.
 * Defaults as kvpress's MergingPress: similarity_threshold 0.0, merge_fraction 1.0. kvpress requires a scorer and
 * has no default; 'snapkv' here, as AdaKV's. As kvpress, which only calls its ScorerPress's `score`: the scorer's
 * budget shaping (layerKeep) is not used, and presses that select across heads or change the cache are refused.
 * Tie rule: among kept entries equally similar to an evicted one, the earliest is the target (kvpress takes the
 * first in torch.topk's order, by score); only exact cosine ties differ.
 */
import { AttendError } from '../errors.js';
import { checkScorer } from './key-rerotation.js';
import type { LayerView, Press } from './press.js';

export interface MergingOptions {
  /** Least cosine similarity for a merge (kvpress's similarity_threshold), in [0, 1]. */
  threshold: number;
  /** Fraction of the evicted entries, by similarity, that merge (kvpress's merge_fraction), in (0, 1]. */
  fraction: number;
}

export const MERGING_DEFAULTS: MergingOptions = { threshold: 0, fraction: 1 };

const EPS = 1e-6;
const f = Math.fround;

export class MergingPress implements Press {
  readonly name: string;
  readonly needs;
  readonly observer?: Press['observer'];

  constructor(
    readonly scorer: Press,
    readonly options: MergingOptions = MERGING_DEFAULTS,
  ) {
    checkScorer('merging', scorer);
    const { threshold, fraction } = options;
    if (!(threshold >= 0 && threshold <= 1)) throw new AttendError(`merging: option threshold must be in [0, 1] (a cosine similarity), got ${threshold}`);
    if (!(fraction > 0 && fraction <= 1)) throw new AttendError(`merging: option fraction must be in (0, 1] (the share of evicted entries merged), got ${fraction}`);
    this.name = `merging(${scorer.name})`;
    this.needs = scorer.needs;
    if (scorer.observer) this.observer = scorer.observer.bind(scorer);
  }

  score(view: LayerView): Float32Array[] {
    return this.scorer.score(view);
  }

  beforeKeep(view: LayerView, kept: Int32Array[]): void {
    view.cache.heads.forEach((head, h) => {
      const merged = mergeValues(head.keys(0, head.length), head.values(0, head.length), head.headDim, kept[h], this.options);
      if (merged) head.writeValues(merged.indices, merged.values);
    });
  }
}

/** L2 norms of the rows of x ([rows × d]), in f32 as torch's norm of a float tensor. */
function rowNorms(x: Float32Array, rows: ArrayLike<number>, d: number): Float32Array {
  return Float32Array.from(rows, (r) => {
    let s = 0;
    for (let c = 0; c < d; c++) s += x[r * d + c] * x[r * d + c];
    return Math.sqrt(s);
  });
}

/** torch.quantile(x, q) (linear interpolation) of one row, −∞ entries included, computed in f32 as torch does. */
export function quantile(x: Float32Array, q: number): number {
  const sorted = Float32Array.from(x).sort();
  const rank = f(f(q) * (sorted.length - 1));
  const below = sorted[Math.trunc(rank)];
  const above = sorted[Math.ceil(rank)];
  const w = f(rank - Math.trunc(rank));
  // at::lerp: start + w·(end − start) for |w| < 0.5, else end − (end − start)·(1 − w).
  return w < 0.5 ? f(below + f(w * f(above - below))) : f(above - f(f(above - below) * f(1 - w)));
}

/**
 * kvpress's MergingPress.merge for one head: keys and values [length × d] (f32), `kept` the indices that stay.
 * Returns the kept entries whose values changed and their new values, or null when none did.
 */
export function mergeValues(
  keys: Float32Array,
  values: Float32Array,
  d: number,
  kept: Int32Array,
  options: MergingOptions,
): { indices: Int32Array; values: Float32Array } | null {
  const n = keys.length / d;
  const isKept = new Uint8Array(n);
  for (const i of kept) isKept[i] = 1;
  const evicted = Int32Array.from({ length: n }, (_, i) => i).filter((i) => !isKept[i]);
  if (evicted.length === 0 || kept.length === 0) return null;
  const unit = (rows: Int32Array) => {
    const norms = rowNorms(keys, rows, d);
    const out = new Float32Array(rows.length * d);
    rows.forEach((r, i) => {
      const norm = Math.max(norms[i], EPS);
      for (let c = 0; c < d; c++) out[i * d + c] = keys[r * d + c] / norm;
    });
    return out;
  };
  const keptUnit = unit(kept);
  const evictUnit = unit(evicted);
  const sim = new Float32Array(evicted.length);
  const target = new Int32Array(evicted.length);
  for (let e = 0; e < evicted.length; e++) {
    let best = -Infinity;
    for (let k = 0; k < kept.length; k++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += evictUnit[e * d + c] * keptUnit[k * d + c];
      if (s > best) {
        best = s;
        target[e] = k;
      }
    }
    sim[e] = best;
  }
  const ok = Array.from(sim, (s) => s >= options.threshold);
  if (options.fraction < 1 && ok.some((x) => x)) {
    const cut = quantile(sim.map((s, e) => (ok[e] ? s : -Infinity)), 1 - options.fraction);
    ok.forEach((x, e) => (ok[e] = x && sim[e] >= cut));
  }
  const keptValueNorms = rowNorms(values, kept, d);
  const evictValueNorms = rowNorms(values, evicted, d);
  const accum = new Float32Array(kept.length * d);
  const weights = new Float32Array(kept.length);
  for (let e = 0; e < evicted.length; e++) {
    const t = target[e];
    const w = f((f(Math.max(sim[e], 0) * (ok[e] ? 1 : 0)) * evictValueNorms[e]) / f(f(evictValueNorms[e] + keptValueNorms[t]) + EPS));
    for (let c = 0; c < d; c++) accum[t * d + c] += w * values[evicted[e] * d + c];
    weights[t] += w;
  }
  const changed: number[] = [];
  const rows: number[] = [];
  kept.forEach((j, k) => {
    if (!(weights[k] > 0)) return;
    changed.push(j);
    for (let c = 0; c < d; c++) rows.push((values[j * d + c] + accum[k * d + c]) / (1 + weights[k]));
  });
  if (changed.length === 0) return null;
  return { indices: Int32Array.from(changed), values: Float32Array.from(rows) };
}
