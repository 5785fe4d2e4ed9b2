/**
 * KeyDiff (Park et al. 2025, "KeyDiff: Key Similarity-Based KV Cache Eviction for Long-Context LLM Inference in
 * Resource-Constrained Environments", arXiv 2504.15364), as kvpress's KeyDiffPress (keydiff_press.py).
 * Rule, per KV head: the anchor is the mean of the head's L2-normalised keys; each entry scores minus the cosine
 * similarity of its key to the anchor, so the most distinctive keys are kept. No options (kvpress has none
 * besides the ratio). The paper evicts block by block while prefilling; kvpress scores the whole cache at once
 * and leaves the block-wise variant to its BlockPress wrapper (here: the `block` press with scorer=keydiff).
 * Keys are the cached (post-RoPE) ones, as kvpress's. A zero key scores 0 (torch's norms are clamped at 1e-12 in
 * F.normalize and 1e-8 in F.cosine_similarity).
 */
import type { LayerView, Press } from './press.js';
import { rowsOf } from './query-statistics.js';

export class KeyDiffPress implements Press {
  readonly name = 'keydiff';
  readonly needs = {};

  score(view: LayerView): Float32Array[] {
    const d = view.config.headDim;
    return view.cache.heads.map((head) => {
      const n = head.length;
      const keys = rowsOf(head, 'keys');
      const norms = new Float64Array(n);
      const anchor = new Float64Array(d);
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let c = 0; c < d; c++) s += keys[i * d + c] ** 2;
        norms[i] = Math.sqrt(s);
        const inv = 1 / Math.max(norms[i], 1e-12);
        for (let c = 0; c < d; c++) anchor[c] += (keys[i * d + c] * inv) / n;
      }
      let a = 0;
      for (let c = 0; c < d; c++) a += anchor[c] ** 2;
      const anchorNorm = Math.max(Math.sqrt(a), 1e-8);
      const scores = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let c = 0; c < d; c++) s += keys[i * d + c] * anchor[c];
        scores[i] = -s / (Math.max(norms[i], 1e-8) * anchorNorm);
      }
      return scores;
    });
  }
}
