/**
 * ChunkKV (Liu et al. 2025, "ChunkKV: Semantic-Preserving KV Cache Compression for Efficient Long-Context LLM
 * Inference", arXiv 2502.00299), as kvpress's ChunkKVPress.
 * Rule: the wrapped scorer scores the whole layer; the scores are summed over the KV heads and averaged within
 * chunks of `chunk-length` consecutive entries (the last, partial chunk averaged over what it holds); the
 * max(1, ⌊chunks·(1 − ratio)⌋) best chunks are kept whole, the same entries in every head, so that kept text stays
 * in contiguous pieces. With fewer entries than one chunk, the scorer compresses the layer as it would alone.
 * Options and defaults: `chunk-length` 20 (kvpress's default, and its evaluation registry's ChunkKVPress(SnapKV,
 * 20)); `scorer` 'snapkv' (that registry's; kvpress itself requires one).
 * As kvpress: only the scorer's `score` is used, and a press that selects across heads or changes the cache itself
 * is refused (kvpress asserts a ScorerPress); whole chunks are kept, so a layer keeps chunks·chunk-length entries,
 * which may be up to chunk-length − 1 more than ⌊length·(1 − ratio)⌋ (kvpress's arithmetic). The heads must hold
 * the same number of entries (kvpress sums their scores entry by entry); they do as long as no head-adaptive press
 * compressed this cache.
 */
import { AttendError } from '../errors.js';
import type { LayerView, Press } from './press.js';
import { topK } from './press.js';
import { checkScorer, everything, ownSelection } from './wrapped.js';

export interface ChunkKVOptions {
  chunkLength: number;
}

export const CHUNKKV_DEFAULTS: ChunkKVOptions = { chunkLength: 20 };

export class ChunkKVPress implements Press {
  readonly name: string;
  readonly needs;
  readonly observer?: Press['observer'];

  constructor(
    readonly scorer: Press,
    readonly options: ChunkKVOptions = CHUNKKV_DEFAULTS,
  ) {
    checkScorer('chunkkv', scorer);
    if (!(Number.isInteger(options.chunkLength) && options.chunkLength >= 1)) {
      throw new AttendError(`chunkkv: option chunk-length must be a whole number ≥ 1 (entries per chunk), got ${options.chunkLength}`);
    }
    this.name = `chunkkv(${scorer.name})`;
    this.needs = scorer.needs;
    if (scorer.observer) this.observer = scorer.observer.bind(scorer);
  }

  score(view: LayerView): Float32Array[] {
    return this.scorer.score(view);
  }

  select(view: LayerView, scores: Float32Array[]): Int32Array[] {
    const heads = view.cache.heads;
    if (heads.every((h) => h.length <= view.keep)) return everything(view);
    const n = heads[0].length;
    if (heads.some((h) => h.length !== n)) {
      throw new AttendError(`chunkkv: the heads of layer ${view.layer} hold different numbers of entries (${heads.map((h) => h.length).join(', ')}); chunkkv keeps the same chunks in every head`);
    }
    const L = this.options.chunkLength;
    const complete = Math.floor(n / L);
    const rest = n % L;
    // Fewer entries than a chunk: kvpress hands the layer to the scorer's own compression.
    if (complete === 0) return ownSelection(this.scorer, view);
    const chunks = complete + (rest > 0 ? 1 : 0);
    const chunkScores = new Float32Array(chunks);
    for (let c = 0; c < chunks; c++) {
      const from = c * L;
      const to = Math.min(n, from + L);
      let sum = 0;
      for (let i = from; i < to; i++) {
        let s = 0;
        for (const h of scores) s += h[i];
        sum += s;
      }
      chunkScores[c] = sum / (to - from);
    }
    const keptChunks = Math.max(1, Math.floor(chunks * (1 - view.ratio)));
    const kept: number[] = [];
    for (const c of topK(chunkScores, keptChunks)) for (let i = c * L; i < Math.min(n, (c + 1) * L); i++) kept.push(i);
    const indices = Int32Array.from(kept);
    return heads.map(() => indices.slice());
  }
}
