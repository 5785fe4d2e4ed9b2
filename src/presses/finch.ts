/**
 * FINCH (Corallo & Papotti 2024, "FINCH: Prompt-guided Key-Value Cache Compression for Large Language Models",
 * TACL, arXiv 2408.00167), as kvpress's FinchPress.
 * Rule: SnapKV's rule with the question as the observation window: the last `window` queries of the prompt (the
 * question) attend to the entries before them; with `normalize` each query's attention is first multiplied by its
 * index in the sequence (kvpress's count of "non-zero weights": k_len − window + t for the t-th question token);
 * averaged over the window, then over the query heads of each KV group, with no pooling; the question's own entries
 * are kept (padded with the layer's highest score + 1). Top ⌊length·(1 − ratio)⌋ per head, or with `chunk` > 0 per
 * chunk of `chunk` entries max(1, ⌊c·(1 − ratio)⌋) of its c entries (kvpress asserts chunk > window / (1 − ratio);
 * so does this). With `rerotate` the kept keys are re-rotated to positions 0…n−1 and the sequence continues at n
 * (key rerotation, KVCache.renumber).
 * Defaults as kvpress's FinchPress: normalize_scores True, rerotate_keys True, chunk_length None (chunk 0 here).
 * Where kvpress differs: it finds the window itself, from a delimiter token placed between context and question
 * (the token is then removed from the input, so the model never sees it): window = the tokens after it. Attend's
 * presses see queries, not token ids, so the question's length is the option `window`; kvpress has no default for
 * it, 64 (SnapKV's) here. Attend also applies FINCH after per-chunk and decoding compressions (the window then is
 * the last `window` tokens); kvpress compresses once, after the prefill.
 */
import { AttendError } from '../errors.js';
import { rerotateKeys } from './key-rerotation.js';
import { type LayerView, type Press, topK } from './press.js';
import { protectTail, windowAttention } from './window-attention.js';

export interface FinchOptions {
  /** Question tokens at the end of the prompt (kvpress: the tokens after its delimiter). */
  window: number;
  /** Entries per selection chunk; 0: one selection over the whole head (kvpress's chunk_length None). */
  chunk: number;
  /** 1: weigh each question token's attention by its index (kvpress's normalize_scores); 0: plain mean. */
  normalize: number;
  /** 1: re-rotate the kept keys to positions 0…n−1 (kvpress's rerotate_keys); 0: keep the original positions. */
  rerotate: number;
}

export const FINCH_DEFAULTS: FinchOptions = { window: 64, chunk: 0, normalize: 1, rerotate: 1 };

export class FinchPress implements Press {
  readonly name = 'finch';
  readonly needs;
  readonly select?: Press['select'];
  readonly afterCompress?: Press['afterCompress'];

  constructor(readonly options: FinchOptions = FINCH_DEFAULTS) {
    const { window, chunk, normalize, rerotate } = options;
    if (!(Number.isInteger(window) && window >= 1)) {
      throw new AttendError(`finch: option window must be a whole number ≥ 1 (the question's tokens at the end of the prompt), got ${window}`);
    }
    if (!(Number.isInteger(chunk) && chunk >= 0)) {
      throw new AttendError(`finch: option chunk must be a whole number ≥ 0 (entries per selection chunk, 0 for none), got ${chunk}`);
    }
    for (const [key, v] of [['normalize', normalize], ['rerotate', rerotate]] as const) {
      if (v !== 0 && v !== 1) throw new AttendError(`finch: option ${key} must be 0 or 1, got ${v}`);
    }
    this.needs = { queryWindow: window };
    if (chunk > 0) this.select = (view, scores) => this.selectByChunks(view, scores);
    if (rerotate) this.afterCompress = rerotateKeys;
  }

  score(view: LayerView): Float32Array[] {
    const { window, normalize } = this.options;
    const heads = view.cache.heads;
    // Only a chunked selection is asked when nothing is over the budget: it keeps everything then.
    if (heads.every((h) => h.length <= view.keep)) return heads.map((h) => new Float32Array(h.length));
    const queries = view.queries;
    if (!queries || queries.positions.length < window || view.seen <= window) {
      throw new AttendError(`finch: window ${window} (the question) must be shorter than the context (${view.seen} tokens seen)`);
    }
    const group = view.config.numHeads / view.config.numKvHeads;
    const probs = windowAttention(view, queries);
    const windowStart = queries.positions[0];
    const prefixes = heads.map((head) => head.visibleUpTo(windowStart - 1));
    const all = heads.map((head, g) => {
      const n = head.length;
      const prefix = prefixes[g];
      const sums = new Float64Array(prefix);
      for (let t = 0; t < window; t++) {
        // kvpress's arange(k_len − window, k_len): the question token's index among the keys.
        const weight = normalize ? prefix + t : 1;
        for (let j = 0; j < group; j++) {
          const row = probs[g].subarray((t * group + j) * n, (t * group + j) * n + prefix);
          for (let i = 0; i < prefix; i++) sums[i] += row[i] * weight;
        }
      }
      const scores = new Float32Array(n);
      for (let i = 0; i < prefix; i++) scores[i] = sums[i] / window / group;
      return scores;
    });
    protectTail(all, prefixes);
    return all;
  }

  private selectByChunks(view: LayerView, scores: Float32Array[]): Int32Array[] {
    const { window, chunk } = this.options;
    const heads = view.cache.heads;
    if (heads.every((h) => h.length <= view.keep)) return heads.map((h) => Int32Array.from({ length: h.length }, (_, i) => i));
    const ratio = view.ratio;
    if (!(chunk > window / (1 - ratio))) {
      throw new AttendError(`finch: chunk ${chunk} must be longer than window / (1 − ratio) = ${window / (1 - ratio)} (kvpress asserts it)`);
    }
    return scores.map((s) => {
      const kept: number[] = [];
      for (let from = 0; from < s.length; from += chunk) {
        const part = s.subarray(from, Math.min(s.length, from + chunk));
        const k = Math.max(1, Math.floor(part.length * (1 - ratio)));
        for (const i of topK(part, k)) kept.push(from + i);
      }
      return Int32Array.from(kept);
    });
  }
}
