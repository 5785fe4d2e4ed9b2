/**
 * StreamingLLM (Xiao et al. 2023, "Efficient Streaming Language Models with Attention Sinks").
 * Rule: keep the first `sinks` entries (attention sinks) and the most recent ones, drop the middle.
 * Default sinks 4 (paper and kvpress). Positions stay the original ones, as in kvpress's StreamingLLMPress;
 * the paper's re-rotation of positions within the cache is not applied (kvpress: KeyRerotationPress).
 */
import type { LayerView, Press } from './press.js';

export class StreamingLLMPress implements Press {
  readonly name = 'streaming-llm';
  readonly needs = {};

  constructor(readonly options: { sinks: number } = { sinks: 4 }) {}

  score(view: LayerView): Float32Array[] {
    return view.cache.heads.map((head) => {
      const scores = new Float32Array(head.length);
      const recent = Math.max(0, view.keep - this.options.sinks);
      scores.fill(2, 0, Math.min(this.options.sinks, head.length));
      scores.fill(1, Math.max(this.options.sinks, head.length - recent));
      return scores;
    });
  }
}
