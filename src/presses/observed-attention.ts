/**
 * Observed attention (kvpress's ObservedAttentionPress; related to H2O, Zhang et al. 2023).
 * Rule: an entry's score is the attention it received during prefill averaged over the queries that could see it,
 * then averaged over the query heads of its KV group. Attend records the sums block by block while attention runs.
 */
import type { LayerView, Press } from './press.js';
import { ATTENTION_COUNT, ATTENTION_SUM } from './observe.js';

export class ObservedAttentionPress implements Press {
  readonly name = 'observed-attention';
  readonly needs = { attention: true };

  score(view: LayerView): Float32Array[] {
    return view.cache.heads.map((head) => {
      const sum = head.stat(ATTENTION_SUM);
      const count = head.stat(ATTENTION_COUNT);
      return Float32Array.from(sum, (s, i) => (count[i] > 0 ? s / count[i] : 0));
    });
  }
}
