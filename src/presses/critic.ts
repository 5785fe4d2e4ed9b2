/**
 * CRITIC, "Cache Reduction via Importance-based Token Inclusion Criteria" (Srinivas et al. 2025, "Scaling
 * Test-Time Inference with Policy-Optimized, Dynamic Retrieval-Augmented Generation via KV Caching and
 * Decoding", arXiv 2504.01281, appendix A.1). No official code is known; this follows the paper's formulas.
 *
 * Rule: per layer, three importances, each min–max normalised to [0, 1] (x − min) / (max − min + ε), are mixed
 * as I = w_attn·I_attn + w_entropy·I_entropy + w_grad·I_grad (weights summing to 1), normalised again, and the
 * top n_c = max(m, ⌊(1 − r)·n⌋) entries are kept (Eqs. 26–27):
 * - attention: the attention an entry receives, summed over all heads of the layer and over the current queries;
 * - entropy: the Shannon entropy −Σ_j A_ij log(A_ij + ε) of the entry's own token's attention row, averaged
 *   over the heads;
 * - gradient: Σ_heads |∂L/∂k_i| + |∂L/∂v_i| for L = MSE(attention output, the previous step's output).
 *
 * Defaults: equal weights 1/3 (the paper leaves them configurable, with no values); m (`minTokens`, the delayed
 * activation threshold) 0, i.e. the runner's budget alone decides; ε = 1e-10 (the paper's ε for entropies in
 * ATLAS; it gives none here). The paper's ratio r "typically 0.1–0.5" is the runner's budget; its plan is
 * `{ budget: { ratio: r }, during: 'prefill', decode: { every: 1 } }`: it compresses at each generated token
 * once past m tokens, which with n_c < n keeps the cache at its size after the prompt.
 *
 * Choices where the paper is vague:
 * - "Current queries" are the queries since this layer was last compressed (the whole prompt for a
 *   compression after prefill, the new token while decoding): the attention term is the attention-sum
 *   statistic's growth since then (score() records the baseline, so it must be called once per compression,
 *   as the runner does).
 * - The paper writes strength_i = Σ_{h,j} |A_{h,i,j}|, which summed over a softmax row is constant; it is read as
 *   the attention token i receives (column sums). The entropy is the row entropy as written: each token's own
 *   attention row, recorded when the token was the query (with its observer) and kept with the entry.
 * - Gradient: L over the latest query only, against the output of the query before it (the "previous
 *   decoding step"), both recomputed at compression time over the entries now held; L's gradient is taken
 *   analytically through the softmax (∂L/∂v_i = a_i·g, ∂L/∂k_i = a_i·(g·(v_i − o))·q/√d with g = o − o_prev; the
 *   constant 2/size cancels in the normalisation), |·| is the L1 norm, and for grouped-query attention the
 *   query heads sharing a KV head each add their own term. Needs two recorded queries; otherwise it is 0.
 * - A layer whose heads hold the same entries is scored once for all of them (the paper scores per layer);
 *   if a head-adaptive press left heads different, each KV head is scored with its own group of query heads.
 * - Not implemented: the memory-pressure adaptive ratio (Eq. 28): budgets are the runner's. The n − 1 cap of
 *   Eq. 26 only matters for compression triggered by length alone; here the runner triggers it.
 *
 * Framework hook: the entropy term needs each query row's entropy, which the session's recorder does not keep;
 * `observer(cache, next)` records it and forwards to `next`. CompressionSession chains it: its `observer` is
 * `press.observer(cache, recorder)`, so pass `session.observer` alone (wrapping it in `press.observer` again
 * would add every entropy twice). Without it (e.g. a shared prefill, which the session refuses for this press)
 * the entropy term is 0 everywhere and ranks nothing.
 */
import type { AttentionBlock, AttentionObserver } from '../backend/backend.js';
import type { HeadMemory } from '../cache/head-memory.js';
import type { KVCache } from '../cache/kv-cache.js';
import { check } from '../errors.js';
import { ATTENTION_SUM } from './observe.js';
import type { LayerView, Press, QueryWindow } from './press.js';
import { windowAttention } from './window-attention.js';

export interface CriticOptions {
  /** Weights of the attention, entropy and gradient importances (≥ 0, summing to 1). */
  weights: { attention: number; entropy: number; gradient: number };
  /** m: layers holding at most this many entries are not compressed, and never below it. */
  minTokens: number;
}

export const CRITIC_DEFAULTS: CriticOptions = { weights: { attention: 1 / 3, entropy: 1 / 3, gradient: 1 / 3 }, minTokens: 0 };

/** Head statistics: the attention sum at the last compression, and the entropy of each entry's own row (summed over the group). */
export const CRITIC_ATTENTION_BASE = 'critic-attention-base';
export const CRITIC_ENTROPY = 'critic-entropy';

const EPS = 1e-10;

/** (x − min) / (max − min + ε), in place. */
export function minMaxNormalise(x: Float64Array): Float64Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of x) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  for (let i = 0; i < x.length; i++) x[i] = (x[i] - lo) / (hi - lo + EPS);
  return x;
}

export class CriticPress implements Press {
  readonly name = 'critic';
  readonly needs;

  constructor(readonly options: CriticOptions = CRITIC_DEFAULTS) {
    const { attention, entropy, gradient } = options.weights;
    check(
      [attention, entropy, gradient].every((w) => w >= 0) && Math.abs(attention + entropy + gradient - 1) < 1e-6,
      `critic: weights must be ≥ 0 and sum to 1, got ${attention}, ${entropy}, ${gradient}`,
    );
    check(Number.isInteger(options.minTokens) && options.minTokens >= 0, `critic: minTokens must be a whole number ≥ 0, got ${options.minTokens}`);
    this.needs = { attention: true, queryWindow: gradient > 0 ? 2 : 0 };
  }

  /** The observer that records each row's attention entropy for `cache`, forwarding everything to `next` first. */
  observer(cache: KVCache, next?: AttentionObserver): AttentionObserver {
    return {
      queries: (layer, q, positions) => next?.queries?.(layer, q, positions),
      accumulate: next?.accumulate,
      observe: (block) => {
        next?.observe?.(block);
        this.record(block, cache);
      },
    };
  }

  /** Adds the entropy of each query row of `block` (each query head of the group) to the query token's own entry. */
  record(block: AttentionBlock, cache: KVCache): void {
    const head = cache.layers[block.layer].heads[block.kvHead];
    const entropy = head.stat(CRITIC_ENTROPY);
    const { probs, cols, groupSize, queryPositions } = block;
    for (let t = 0; t < queryPositions.length; t++) {
      const at = head.visibleUpTo(queryPositions[t]) - 1;
      if (at < 0 || head.positions[at] !== queryPositions[t]) continue;
      let h = 0;
      for (let j = 0; j < groupSize; j++) {
        const row = probs.subarray((t * groupSize + j) * cols, (t * groupSize + j + 1) * cols);
        for (let i = 0; i < cols; i++) if (row[i] > 0) h -= row[i] * Math.log(row[i] + EPS);
      }
      entropy[at] += h;
    }
  }

  layerKeep(view: LayerView): number {
    const length = view.cache.maxLength();
    return length <= this.options.minTokens ? length : Math.max(this.options.minTokens, view.keep);
  }

  score(view: LayerView): Float32Array[] {
    const heads = view.cache.heads;
    const group = view.config.numHeads / view.config.numKvHeads;
    const attention = heads.map((head) => currentAttention(head));
    const entropy = heads.map((head) => Float64Array.from(head.stat(CRITIC_ENTROPY)));
    const gradient = this.options.weights.gradient > 0 && view.queries ? gradients(view, view.queries) : heads.map((h) => new Float64Array(h.length));
    if (aligned(heads)) {
      const n = heads[0].length;
      const sum = (parts: Float64Array[], scale = 1) => Float64Array.from({ length: n }, (_, i) => parts.reduce((s, p) => s + p[i], 0) * scale);
      const scores = this.mix(sum(attention), sum(entropy, 1 / view.config.numHeads), sum(gradient));
      return heads.map(() => scores.slice());
    }
    return heads.map((_, g) => this.mix(attention[g], entropy[g].map((e) => e / group), gradient[g]));
  }

  private mix(attention: Float64Array, entropy: Float64Array, gradient: Float64Array): Float32Array {
    const w = this.options.weights;
    [attention, entropy, gradient].forEach(minMaxNormalise);
    const hybrid = Float64Array.from(attention, (a, i) => w.attention * a + w.entropy * entropy[i] + w.gradient * gradient[i]);
    return Float32Array.from(minMaxNormalise(hybrid));
  }
}

/** Attention each entry received since the last compression (the sum statistic less its baseline, which moves up). */
function currentAttention(head: HeadMemory): Float64Array {
  const sum = head.stat(ATTENTION_SUM);
  const base = head.stat(CRITIC_ATTENTION_BASE);
  const out = Float64Array.from(sum, (s, i) => s - base[i]);
  base.set(sum);
  return out;
}

function aligned(heads: HeadMemory[]): boolean {
  const first = heads[0].positions;
  return heads.every((h) => h.length === first.length && h.positions.every((p, i) => p === first[i]));
}

/**
 * Per KV head, Σ over its query heads of |∂L/∂k_i|₁ + |∂L/∂v_i|₁, L = ‖o − o_prev‖² for the latest recorded
 * query (o) and the one before it (o_prev), both over the entries now held.
 */
function gradients(view: LayerView, queries: QueryWindow): Float64Array[] {
  const heads = view.cache.heads;
  const out = heads.map((h) => new Float64Array(h.length));
  const rows = queries.positions.length;
  if (rows < 2) return out;
  const { numHeads, headDim: d } = view.config;
  const width = numHeads * d;
  const last2 = { data: queries.data.subarray((rows - 2) * width, rows * width), positions: queries.positions.subarray(rows - 2) };
  const probs = windowAttention(view, last2);
  const group = numHeads / heads.length;
  const scale = 1 / Math.sqrt(d);
  heads.forEach((head, g) => {
    const n = head.length;
    const values = head.values(0, n);
    for (let j = 0; j < group; j++) {
      const prev = probs[g].subarray(j * n, (j + 1) * n);
      const cur = probs[g].subarray((group + j) * n, (group + j + 1) * n);
      const o = new Float64Array(d);
      const diff = new Float64Array(d);
      for (let i = 0; i < n; i++) {
        for (let k = 0; k < d; k++) {
          o[k] += cur[i] * values[i * d + k];
          diff[k] += (cur[i] - prev[i]) * values[i * d + k];
        }
      }
      let diffL1 = 0;
      for (const x of diff) diffL1 += Math.abs(x);
      const q = last2.data.subarray(width + (g * group + j) * d, width + (g * group + j + 1) * d);
      let qL1 = 0;
      for (const x of q) qL1 += Math.abs(x);
      for (let i = 0; i < n; i++) {
        const a = cur[i];
        if (a === 0) continue;
        let dot = 0;
        for (let k = 0; k < d; k++) dot += diff[k] * (values[i * d + k] - o[k]);
        out[g][i] += a * diffL1 + a * Math.abs(dot) * scale * qL1;
      }
    }
  });
  return out;
}
