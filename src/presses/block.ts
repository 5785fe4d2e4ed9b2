/**
 * Block (kvpress BlockPress: the block-wise prompt processing of KeyDiff, Park et al. 2025, "KeyDiff: Key
 * Similarity-Based KV Cache Eviction for Long-Context LLM Inference in Resource-Constrained Environments",
 * arXiv 2504.15364).
 * Rule, per head, with n = ⌊length·(1 − ratio)⌋ (the budget): the first n entries are kept to start; then block by
 * block of `block-size` entries, the wrapped scorer scores the kept entries together with the next block, and the n
 * best of them are kept; what is kept after the last block stays.
 * Options and defaults: `block-size` 128 (kvpress); `scorer` 'keydiff' (kvpress requires one and has no default;
 * its evaluation registry's BlockPress(KeyDiffPress(), 128), the paper's method).
 * The restriction: at each step the scorer sees a LayerView whose heads hold only their candidates (copies of those
 * entries with their statistics) and whose query rows are the tokens of those candidates (any head's), the last
 * `queryWindow` of them, turned as kvpress turns a window scorer's queries (wrapped.ts restrictedView).
 * As kvpress, only the scorer's `score` is used, and a press that selects across heads or changes the cache itself
 * is refused (kvpress asserts a ScorerPress). Where kvpress differs and Attend does not follow:
 * - kvpress gathers the hidden states of the candidates by slicing the hidden dimension into one part per KV head
 *   (`view(bsz, k_len, num_kv_heads, -1)`), so when heads keep different entries a row mixes different tokens; the
 *   query rows here are real tokens' queries. Both agree whenever the scorer's window fits in the block (SnapKV's 64
 *   and TOVA's 1 in blocks of 128) or the heads keep the same entries (TOVA);
 * - kvpress's candidates are in the order its top-k returned them (by score); Attend's are in position order, which
 *   matters only to a scorer that looks at neighbours (SnapKV's pooling).
 * Like kvpress, all is computed after the forward: this is not a chunked prefill (Attend's --chunk with
 * compression per chunk is that).
 */
import { AttendError } from '../errors.js';
import type { LayerView, Press } from './press.js';
import { topK } from './press.js';
import { checkScorer, restrictedView, scorePart, wrapperNeeds } from './wrapped.js';

export interface BlockOptions {
  blockSize: number;
}

export const BLOCK_DEFAULTS: BlockOptions = { blockSize: 128 };

export class BlockPress implements Press {
  readonly name: string;
  readonly needs;
  readonly observer?: Press['observer'];

  constructor(
    readonly scorer: Press,
    readonly options: BlockOptions = BLOCK_DEFAULTS,
  ) {
    checkScorer('block', scorer);
    if (!(Number.isInteger(options.blockSize) && options.blockSize >= 1)) {
      throw new AttendError(`block: option block-size must be a whole number ≥ 1 (entries scored per step), got ${options.blockSize}`);
    }
    this.name = `block(${scorer.name})`;
    this.needs = wrapperNeeds(scorer, true);
    if (scorer.observer) this.observer = scorer.observer.bind(scorer);
  }

  /**
   * The scores of the last step for its candidates, −∞ for the entries an earlier step dropped: the top `keep` of
   * them (the runner's selection) are the entries the last step keeps.
   */
  score(view: LayerView): Float32Array[] {
    const heads = view.cache.heads;
    const out = heads.map((h) => new Float32Array(h.length));
    const length = view.cache.maxLength();
    const n = view.keep;
    if (length <= n) return out;
    const block = Math.min(this.options.blockSize, length);
    let kept = heads.map((h) => Int32Array.from({ length: Math.min(n, h.length) }, (_, i) => i));
    let last: { candidates: Int32Array[]; scores: Float32Array[] } | undefined;
    for (let i = n; i < length; i += block) {
      const end = Math.min(i + block, length);
      const candidates = heads.map((h, g) => {
        const to = Math.min(end, h.length);
        const from = Math.min(i, to);
        const c = new Int32Array(kept[g].length + to - from);
        c.set(kept[g]);
        for (let e = from; e < to; e++) c[kept[g].length + e - from] = e;
        return c;
      });
      const tokens = unionPositions(view, candidates);
      const sub = restrictedView(view, this.scorer, {
        indices: candidates,
        rows: (positions) => rowsAt(positions, tokens),
        keep: n,
        uniform: n,
      });
      const scores = scorePart('block', this.scorer, sub, `the block of entries ${i}…${end - 1}`);
      last = { candidates, scores };
      kept = candidates.map((c, g) => Int32Array.from(topK(scores[g], n), (j) => c[j]));
    }
    out.forEach((s) => s.fill(-Infinity));
    last!.candidates.forEach((c, g) => c.forEach((e, j) => (out[g][e] = last!.scores[g][j])));
    return out;
  }
}

/** The positions any head's candidates hold, ascending. */
function unionPositions(view: LayerView, candidates: Int32Array[]): Int32Array {
  const set = new Set<number>();
  view.cache.heads.forEach((head, g) => candidates[g].forEach((e) => set.add(head.positions[e])));
  return Int32Array.from(set).sort();
}

/** Indices of the ascending `positions` that are in the ascending `wanted`. */
function rowsAt(positions: Int32Array, wanted: Int32Array): number[] {
  const out: number[] = [];
  let w = 0;
  for (let r = 0; r < positions.length && w < wanted.length; r++) {
    while (w < wanted.length && wanted[w] < positions[r]) w++;
    if (w < wanted.length && wanted[w] === positions[r]) out.push(r);
  }
  return out;
}
