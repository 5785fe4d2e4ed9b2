/**
 * TOVA (Oren et al. 2024, "Transformers are Multi-State RNNs").
 * Rule: the attention of the latest token, averaged over all heads of the layer, scores every earlier entry; the
 * same entries are kept in every KV head, and the latest token itself always stays. As kvpress's TOVAPress.
 */
import type { LayerView, Press } from './press.js';
import { protectTail, windowAttention } from './window-attention.js';

export class TOVAPress implements Press {
  readonly name = 'tova';
  readonly needs = { queryWindow: 1 };

  score(view: LayerView): Float32Array[] {
    const queries = view.queries!;
    const last = { data: queries.data.subarray(-view.config.numHeads * view.config.headDim), positions: queries.positions.subarray(-1) };
    const probs = windowAttention(view, last);
    const heads = view.cache.heads;
    const group = view.config.numHeads / view.config.numKvHeads;
    const length = heads[0].length;
    // Heads of a layer hold the same entries for TOVA (it selects per layer), so columns line up.
    const mean = new Float32Array(length);
    probs.forEach((p) => {
      for (let r = 0; r < group; r++) for (let i = 0; i < length; i++) mean[i] += p[r * length + i] / view.config.numHeads;
    });
    const prefix = heads[0].visibleUpTo(last.positions[0] - 1);
    const scores = heads.map(() => mean.slice());
    protectTail(scores, heads.map(() => prefix));
    return scores;
  }
}
