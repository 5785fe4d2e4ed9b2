/**
 * H2O (Zhang et al. 2023, "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of Large Language Models").
 * Rule: keep the most recent entries and the "heavy hitters", the entries with the largest attention accumulated
 * (summed, not averaged) over every query so far, prefill and decoding; the cache then stays at its budget while
 * decoding, evicting the lowest accumulated score outside the recent window at each step, as the official
 * real-drop cache does. Defaults: the budget split equally between heavy and recent (the paper's 10% + 10%
 * setting is ratio 0.8). Choice: for grouped-query models the sums are taken over the query heads of each group.
 */
import type { LayerView, Press } from './press.js';
import { ATTENTION_SUM } from './observe.js';

export class H2OPress implements Press {
  readonly name = 'h2o';
  readonly needs = { attention: true };

  constructor(readonly options: { recentFraction: number } = { recentFraction: 0.5 }) {}

  score(view: LayerView): Float32Array[] {
    return view.cache.heads.map((head) => {
      const scores = Float32Array.from(head.stat(ATTENTION_SUM));
      const recent = Math.min(head.length, Math.floor(view.keep * this.options.recentFraction));
      scores.fill(Infinity, head.length - recent);
      return scores;
    });
  }
}
