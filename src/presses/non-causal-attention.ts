/**
 * Non-causal chunked attention, the attention half of Compactor (Chari & Van Durme 2025, "Compactor: Calibrated
 * Query-Agnostic KV Cache Compression with Approximate Leverage Scores", arXiv 2507.08143); kvpress's
 * NonCausalAttnPress (non_causal_attention_press.py), which this follows.
 *
 * Rule (kvpress's): the prompt is cut into chunks of `chunk-size` tokens from its start; every query of a chunk
 * attends, without a causal mask, to every key of its chunk: softmax of the raw dot products q·k (no 1/√d scale,
 * as kvpress) over the chunk (f64 here, f32 in kvpress). Each key's score is the sum over its chunk's queries of
 * the attention it gets, averaged over the query heads of its KV group, times the L2 norm of its value, smoothed
 * by an average pool of width 3 (zero padding counted in the mean, as F.avg_pool1d), then z-scored with one mean
 * and one unbiased standard deviation over every head of the layer (kvpress's scores.mean()/std() over the whole
 * (1, H_kv, S) tensor, std clamped to ≥ 1e-6). Queries are the post-RoPE queries of the prompt (kvpress re-derives
 * them from the hidden states: pre-RoPE queries with the rotation of their own positions, the same vectors).
 *
 * kvpress's padding of the last chunk, kept as it is: the sequence is padded to a multiple of the chunk with zero
 * queries and keys; a padded key's logit is set to −1e-9 (not −∞), so it still takes a share of every softmax of
 * its chunk, and a padded query's row is all 0 (−1e-9 on padded keys), so each padded query adds ≈ 1/chunk-size
 * to every real key of the last chunk. Padded keys are dropped from the result.
 *
 * Default as kvpress's: chunk-size 256 (the paper's code and kvpress agree).
 * Choices beyond kvpress (which asserts queries and keys of the same length, i.e. only the prefill, once): when the
 * cache is compressed again (after each prefill chunk, while decoding), the recorded queries of every position
 * seen are chunked by position from the start as in the prefill, and each entry still held is scored in the chunk
 * of its original position with the other entries of that chunk still held; padding counts the missing query rows
 * of the last chunk as above. With fewer than two scores torch's std is NaN; here every score is then 0.
 */
import { AttendError } from '../errors.js';
import { zScoreAll } from './linalg.js';
import type { LayerView, Press, QueryWindow } from './press.js';

export interface NonCausalAttentionOptions {
  chunkSize: number;
}

export const NON_CAUSAL_ATTENTION_DEFAULTS: NonCausalAttentionOptions = { chunkSize: 256 };

/** kvpress's fill for the logits of padded keys. */
const PAD_LOGIT = -1e-9;

/**
 * What is scored: the queries at positions [qFrom, qTo) (kvpress's hidden states, chunked from qFrom) and of
 * head h the entries [keys[h][0], keys[h][1]) (kvpress's keys and values).
 */
export interface ScoredSpan {
  qFrom: number;
  qTo: number;
  keys: [number, number][];
}

export function checkChunkSize(chunkSize: number, who: string): void {
  if (!(Number.isInteger(chunkSize) && chunkSize >= 1)) {
    throw new AttendError(`${who}: option chunk-size must be a whole number ≥ 1 (tokens per chunk of non-causal attention), got ${chunkSize}`);
  }
}

/** Index of the first row of `positions` (ascending) at or after `p`. */
function lowerBound(positions: Int32Array, p: number): number {
  let lo = 0;
  let hi = positions.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (positions[mid] < p) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The non-causal chunked attention scores of `span` before the z-score: per head, for its entries
 * [from, to), column sums (group-averaged) × value norms, average-pooled with width 3.
 */
export function nonCausalAttentionRaw(view: LayerView, queries: QueryWindow, chunkSize: number, span: ScoredSpan): Float64Array[] {
  const { config } = view;
  const d = config.headDim;
  const group = config.numHeads / config.numKvHeads;
  const width = config.numHeads * d;
  const S = Math.max(0, span.qTo - span.qFrom);
  const chunks = Math.ceil(S / chunkSize);
  const pad = chunks * chunkSize - S;
  const qPos = queries.positions;
  const padWeight = Math.exp(PAD_LOGIT);

  return view.cache.heads.map((head, g) => {
    const [from, to] = span.keys[g];
    const n = Math.max(0, to - from);
    const keys = head.keys(from, n);
    const positions = head.positions.subarray(from, from + n);
    const A = new Float64Array(n);
    for (let c = 0; c < chunks; c++) {
      const lo = span.qFrom + c * chunkSize;
      const last = c === chunks - 1;
      const padHere = last ? pad : 0;
      // Entries of this chunk (by original position) and the query rows of its real positions.
      const k0 = lowerBound(positions, lo);
      const k1 = lowerBound(positions, lo + chunkSize);
      const r0 = lowerBound(qPos, lo);
      const r1 = lowerBound(qPos, Math.min(lo + chunkSize, span.qTo));
      const nk = k1 - k0;
      if (nk === 0) continue;
      const logits = new Float64Array(nk);
      for (let r = r0; r < r1; r++) {
        for (let j = 0; j < group; j++) {
          const q = (r * width) + (g * group + j) * d;
          let max = padHere > 0 ? PAD_LOGIT : -Infinity;
          for (let t = 0; t < nk; t++) {
            const k = (k0 + t) * d;
            let s = 0;
            for (let c2 = 0; c2 < d; c2++) s += queries.data[q + c2] * keys[k + c2];
            logits[t] = s;
            if (s > max) max = s;
          }
          let z = padHere * Math.exp(PAD_LOGIT - max);
          for (let t = 0; t < nk; t++) z += (logits[t] = Math.exp(logits[t] - max));
          for (let t = 0; t < nk; t++) A[k0 + t] += logits[t] / z / group;
        }
      }
      // Padded query rows: logit 0 on every real key, −1e-9 on padded ones; the same for every head of the group.
      if (padHere > 0) {
        const share = padHere / (nk + padHere * padWeight);
        for (let t = 0; t < nk; t++) A[k0 + t] += share;
      }
    }
    const values = head.values(from, n);
    for (let t = 0; t < n; t++) {
      let s = 0;
      for (let c2 = 0; c2 < d; c2++) s += values[t * d + c2] * values[t * d + c2];
      A[t] *= Math.sqrt(s);
    }
    // avg_pool1d(kernel 3, stride 1, padding 1), zeros counted.
    const pooled = new Float64Array(n);
    for (let t = 0; t < n; t++) pooled[t] = ((t > 0 ? A[t - 1] : 0) + A[t] + (t + 1 < n ? A[t + 1] : 0)) / 3;
    return pooled;
  });
}

/** The recorded queries of the layer, or a clear error. */
export function allQueries(view: LayerView, who: string): QueryWindow {
  if (!view.queries) throw new AttendError(`${who}: the prompt's queries were not recorded (the press needs every query of the sequence)`);
  return view.queries;
}

export class NonCausalAttentionPress implements Press {
  readonly name = 'non-causal-attention';
  readonly needs = { queryWindow: Infinity };

  constructor(readonly options: NonCausalAttentionOptions = NON_CAUSAL_ATTENTION_DEFAULTS) {
    checkChunkSize(options.chunkSize, this.name);
  }

  score(view: LayerView): Float32Array[] {
    const queries = allQueries(view, this.name);
    const span: ScoredSpan = { qFrom: 0, qTo: view.seen, keys: view.cache.heads.map((h) => [0, h.length]) };
    return zScoreAll(nonCausalAttentionRaw(view, queries, this.options.chunkSize, span)).map((s) => Float32Array.from(s));
  }
}
