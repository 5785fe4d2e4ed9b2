/**
 * LU-KV (Tang et al. 2026, "Predicting Future Utility: Global Combinatorial Optimization for Task-Agnostic KV Cache
 * Eviction", arXiv 2602.08585), as kvpress's LUKVPress implements it (the oracle; lukv_press.py).
 *
 * Rule: a wrapper. The scorer (a press that only scores entries, kvpress's ScorerPress) scores each layer; its first
 * `sink` and last `window` entries get the layer's highest score + 1. A pre-computed budget curve gives, for the
 * global compression ratio r, every layer and KV head its own pruning ratio: the row t = round(100·r) − 1 (Python's
 * round, half to even; clamped to 0…98) of a [99, layers, kv_heads] array. In f32 as kvpress: keep rates
 * clamp(1 − ratio, 0, 1), ideal counts rate·n, the layer's total round(Σ ideal) (half to even, clamped to
 * [heads, heads·n]), each head ⌊ideal⌋ and the remainder one each to the heads of largest fractional parts, at least
 * 1 and at most n; each head keeps its highest-scored entries (a stable sort: ties to the earlier entry). So heads and
 * layers keep different numbers; the curve, not the runner's per-head budget, sets them (their average follows r).
 *
 * Defaults are kvpress's: press ExpectedAttentionPress(epsilon=2e-2) — so the default scorer, expected-attention, is
 * created with epsilon 0.02 here (every other scorer on its own defaults) —, sink 4, window 1.
 *
 * The trained part: the curve, a .npy file of shape [99, layers, kv_heads] (kvpress downloads the one for
 * Llama-3.1-8B-Instruct with ExpectedAttentionPress(epsilon=2e-2), sink 4, window 1 from the LU-KV repository's
 * evaluation/curve_data/llama-3.1-8b/ea_0.02_sink4_win1_llama_avg_ratio.npy); `path` is such a file (io/npy.ts).
 * A curve is specific to a model and a scorer; tools/press_training/lukv.py makes one for attend-mini with the
 * method of the LU-KV repository (curve_data/step1_*.py, step2_compute_curve.py).
 *
 * Differences from kvpress: pruned entries are removed, not masked; n is each head's own length (kvpress's layers
 * always have heads of one length; here they may differ after an earlier compression), and r is the runner's ratio
 * for the compression (the budget's at a prefill, 1 − keep/n for token budgets and decoding, for which kvpress has no
 * LU-KV).
 */
import type { AttentionObserver } from '../backend/backend.js';
import type { KVCache } from '../cache/kv-cache.js';
import { AttendError } from '../errors.js';
import { readNpy } from '../io/npy.js';
import type { CompressionContext, LayerView, Press } from './press.js';
import { checkShape, requirePath } from './trained-files.js';

export interface LUKVOptions {
  /** Initial entries always kept. */
  sink: number;
  /** Most recent entries always kept. */
  window: number;
}

export const LUKV_DEFAULTS: LUKVOptions = { sink: 4, window: 1 };
/** The epsilon of kvpress's default scorer, ExpectedAttentionPress(epsilon=2e-2). */
export const LUKV_DEFAULT_EPSILON = 2e-2;

export interface BudgetCurve {
  layers: number;
  kvHeads: number;
  /** [99 × layers × kvHeads] pruning ratios. */
  ratios: Float64Array;
}

/** Reads an LU-KV budget curve (.npy, [99, layers, kv_heads]). */
export function readBudgetCurve(path: string): BudgetCurve {
  requirePath('lukv', path, 'an LU-KV budget curve: .npy of shape [99, layers, kv_heads]');
  const a = readNpy(path);
  if (a.shape.length !== 3 || a.shape[0] !== 99) throw new AttendError(`lukv: ${path}: the curve has shape (${a.shape.join(', ')}), expected (99, layers, kv_heads)`);
  if (!a.data.every(Number.isFinite)) throw new AttendError(`lukv: ${path}: the curve holds non-finite values`);
  return { layers: a.shape[1], kvHeads: a.shape[2], ratios: a.data };
}

/** Python's round() of a float: to the nearest integer, halves to the even one (torch.round does the same). */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** The curve's row for a global compression ratio (kvpress: int(round(ratio·100)) − 1, clamped to 0…98). */
export function curveRow(ratio: number): number {
  return Math.max(0, Math.min(98, roundHalfEven(ratio * 100) - 1));
}

/**
 * Entries each head keeps under pruning ratios `prune` (one per head) of heads holding `lengths` entries, as kvpress
 * computes them in f32 (see the header).
 */
export function keepCounts(prune: ArrayLike<number>, lengths: ArrayLike<number>): number[] {
  const f = Math.fround;
  const H = prune.length;
  const ideal = Array.from({ length: H }, (_, h) => f(Math.min(1, Math.max(0, f(1 - f(prune[h])))) * lengths[h]));
  let sum = 0;
  for (const x of ideal) sum = f(sum + x);
  let all = 0;
  for (let h = 0; h < H; h++) all += lengths[h];
  const total = Math.max(H, Math.min(all, roundHalfEven(sum)));
  const base = ideal.map((x) => Math.floor(x));
  const remainder = total - base.reduce((a, b) => a + b, 0);
  if (remainder > 0) {
    const order = Array.from({ length: H }, (_, h) => h).sort((a, b) => f(ideal[b] - base[b]) - f(ideal[a] - base[a]) || a - b);
    for (const h of order.slice(0, Math.min(remainder, H))) base[h] += 1;
  }
  return base.map((k, h) => Math.max(1, Math.min(lengths[h], k)));
}

export class LUKVPress implements Press {
  readonly name: string;
  readonly needs;
  readonly observer?: (cache: KVCache, next: AttentionObserver) => AttentionObserver;
  readonly prepare?: (ctx: CompressionContext) => void;

  constructor(
    readonly scorer: Press,
    readonly curve: BudgetCurve,
    readonly options: LUKVOptions = LUKV_DEFAULTS,
  ) {
    if (scorer.sizesItself || scorer.select || scorer.layerKeep) {
      throw new AttendError(`lukv: the scorer must be a press that only scores entries (kvpress's ScorerPress); ${scorer.name} selects its own entries`);
    }
    for (const [key, v] of [['sink', options.sink], ['window', options.window]] as const) {
      if (!(Number.isInteger(v) && v >= 0)) throw new AttendError(`lukv: option ${key} must be a whole number ≥ 0, got ${v}`);
    }
    this.name = `lukv(${scorer.name})`;
    this.needs = scorer.needs;
    if (scorer.observer) this.observer = (cache, next) => scorer.observer!(cache, next);
    if (scorer.prepare) this.prepare = (ctx) => scorer.prepare!(ctx);
  }

  score(view: LayerView): Float32Array[] {
    const { sink, window } = this.options;
    const scores = this.scorer.score(view).map((s) => s.slice());
    let max = -Infinity;
    for (const s of scores) for (const x of s) if (x > max) max = x;
    // kvpress: scores.max().item() + 1 over the layer, on the first sink and the last window entries.
    const protect = Math.fround(max + 1);
    for (const s of scores) {
      const n = s.length;
      if (sink > 0) s.fill(protect, 0, Math.min(sink, n));
      if (window > 0) s.fill(protect, Math.max(0, n - window));
    }
    return scores;
  }

  select(view: LayerView, scores: Float32Array[]): Int32Array[] {
    const heads = view.cache.heads;
    const all = () => heads.map((h) => Int32Array.from({ length: h.length }, (_, i) => i));
    const { numLayers, numKvHeads } = view.config;
    const c = this.curve;
    checkShape('lukv', 'budget curve', { layers: c.layers, 'KV heads': c.kvHeads }, view.config, { layers: numLayers, 'KV heads': numKvHeads });
    if (!(view.ratio > 0)) return all();
    const row = curveRow(view.ratio);
    const prune = Array.from({ length: numKvHeads }, (_, h) => c.ratios[(row * c.layers + view.layer) * c.kvHeads + h]);
    const counts = keepCounts(prune, heads.map((h) => h.length));
    if (counts.every((k, h) => k >= heads[h].length)) return all();
    return scores.map((s, h) => {
      const order = Array.from({ length: s.length }, (_, i) => i).sort((a, b) => s[b] - s[a] || a - b);
      return Int32Array.from(order.slice(0, counts[h])).sort();
    });
  }
}
