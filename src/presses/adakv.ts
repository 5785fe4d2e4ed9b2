/**
 * AdaKV (Feng et al. 2024, "Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation").
 * Rule: a scorer's scores are compared across all heads of a layer, and the layer's total budget goes to the
 * best entries wherever they are, so heads keep different numbers of entries; each head first keeps its top
 * `alpha` fraction of the average budget (the safeguard). As kvpress's AdaKVPress (alpha 0.2), except that the
 * pruned entries are really removed per head instead of masked.
 */
import type { LayerView, Press } from './press.js';

export class AdaKVPress implements Press {
  readonly name: string;
  readonly needs;

  constructor(
    readonly scorer: Press,
    readonly options: { alpha: number } = { alpha: 0.2 },
  ) {
    this.name = `adakv(${scorer.name})`;
    this.needs = scorer.needs;
  }

  score(view: LayerView): Float32Array[] {
    return this.scorer.score(view);
  }

  select(view: LayerView, scores: Float32Array[]): Int32Array[] {
    const safe = Math.floor(view.keep * this.options.alpha);
    const total = view.keep * scores.length;
    // Rank (head, entry) pairs: safeguarded entries first, then by score.
    const ranked: { h: number; i: number; s: number }[] = [];
    scores.forEach((s, h) => {
      const order = Array.from(s.keys()).sort((a, b) => s[b] - s[a] || a - b);
      order.forEach((i, rank) => ranked.push({ h, i, s: rank < safe ? Infinity : s[i] }));
    });
    ranked.sort((a, b) => b.s - a.s || a.h - b.h || a.i - b.i);
    const kept: number[][] = scores.map(() => []);
    for (const { h, i } of ranked.slice(0, total)) kept[h].push(i);
    return kept.map((k) => Int32Array.from(k).sort());
  }
}
