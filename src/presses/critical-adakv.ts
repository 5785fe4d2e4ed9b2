/**
 * CriticalAdaKV (Feng et al. 2025, "Identify Critical KV Cache in LLM Inference from an Output Perturbation
 * Perspective", arXiv 2502.03805: CriticalKV's two stages on AdaKV's head-adaptive budgets), as kvpress's
 * CriticalAdaKVPress.
 * Rule, per layer, with n = the entries per head under the budget and H heads:
 * 1. each head's best ⌊n·alpha⌋ scorer entries are safeguarded (score := float32 max);
 * 2. the layer's n·H best (head, entry) pairs across heads give each head its budget b_h (how many of them it has);
 * 3. stage 1: each head's best ⌊b_h·first-stage-ratio⌋ entries also score float32 max;
 * 4. stage 2: scores := (score + epsilon)·‖W_o,h·v‖₁ (criticalkv.ts outputNorms), and each head keeps its b_h best.
 * Heads keep different numbers of entries; the layer keeps n·H in all. The arithmetic is kvpress's in float32 (a
 * safeguarded score times a norm above 1 overflows to +∞, as in torch), which keeps every safeguarded and stage-1
 * entry: their number never exceeds b_h.
 * Options and defaults (kvpress): `alpha` (kvpress alpha_safeguard) 0.2, `epsilon` 1e-4, `first-stage-ratio` 0.5;
 * `scorer` 'snapkv' (kvpress requires one; its evaluation registry's critical_adakv_snapkv). As kvpress, only the
 * scorer's `score` is used, and a press that selects across heads or changes the cache itself is refused.
 * kvpress masks the pruned keys head by head (module.masked_key_indices and its attention patch); Attend removes
 * them. Ties across heads in step 2 go to the lower head, then the earlier entry (torch.topk's order is its own).
 */
import { AttendError } from '../errors.js';
import type { LayerView, Press } from './press.js';
import { topK } from './press.js';
import { CRITICALKV_DEFAULTS, type CriticalKVOptions, checkCriticalOptions, outputNorms } from './criticalkv.js';
import { F32_MAX, checkScorer } from './wrapped.js';

export interface CriticalAdaKVOptions extends CriticalKVOptions {
  alpha: number;
}

export const CRITICAL_ADAKV_DEFAULTS: CriticalAdaKVOptions = { ...CRITICALKV_DEFAULTS, alpha: 0.2 };

export class CriticalAdaKVPress implements Press {
  readonly name: string;
  readonly needs;
  readonly observer?: Press['observer'];

  constructor(
    readonly scorer: Press,
    readonly options: CriticalAdaKVOptions = CRITICAL_ADAKV_DEFAULTS,
  ) {
    checkScorer('critical-adakv', scorer);
    checkCriticalOptions('critical-adakv', options);
    if (!(options.alpha >= 0 && options.alpha <= 1)) {
      throw new AttendError(`critical-adakv: option alpha must be in [0, 1] (the share of the budget each head keeps first), got ${options.alpha}`);
    }
    this.name = `critical-adakv(${scorer.name})`;
    this.needs = scorer.needs;
    if (scorer.observer) this.observer = scorer.observer.bind(scorer);
  }

  score(view: LayerView): Float32Array[] {
    return this.scorer.score(view);
  }

  select(view: LayerView, raw: Float32Array[]): Int32Array[] {
    const { alpha, epsilon, firstStageRatio } = this.options;
    const n = view.keep;
    const scores = raw.map((s) => Float32Array.from(s));
    // 1. The safeguard.
    const safe = Math.floor(n * alpha);
    scores.forEach((s) => topK(s, safe).forEach((i) => (s[i] = F32_MAX)));
    // 2. Head budgets: how many of the layer's n·H best pairs each head has.
    const ranked: { h: number; i: number; s: number }[] = [];
    scores.forEach((s, h) => s.forEach((x, i) => ranked.push({ h, i, s: x })));
    ranked.sort((a, b) => b.s - a.s || a.h - b.h || a.i - b.i);
    const budgets = scores.map(() => 0);
    for (const { h } of ranked.slice(0, n * scores.length)) budgets[h]++;
    // 3. Stage 1, then 4. stage 2.
    const norms = outputNorms(view, 'critical-adakv');
    return scores.map((s, h) => {
      topK(s, Math.floor(budgets[h] * firstStageRatio)).forEach((i) => (s[i] = F32_MAX));
      const rescaled = Float32Array.from(s, (x, i) => Math.fround(x + Math.fround(epsilon)) * norms[h][i]);
      return topK(rescaled, budgets[h]);
    });
  }
}
