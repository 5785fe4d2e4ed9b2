/**
 * Recycled Attention (Xu, Goyal & Choi 2024, "Recycled Attention: Efficient inference for long-context language
 * models", arXiv 2411.05787 v1; its v2 is titled RefreshKV). The official code is announced at
 * github.com/carriex/recycled-attention, now carriex/refreshkv, but neither holds code (the latter only a README), so
 * this follows the paper, read through two summaries of its text (of v1 and of v2). Decoding alternates between
 * full-attention steps and recycled steps: a full step ranks each KV head's entries by the attention the step's
 * query gave them and keeps the top K (the recycled cache); a recycled step reads only those plus the tokens
 * generated since.
 *
 * Rules and defaults, as the paper gives them:
 *  - the recycled cache is per layer and KV head, of `budget` = K entries (K = 4096 in the RULER results; the
 *    language-modelling runs use 2048);
 *  - it is first filled from the attention of the prompt's last token (the prefill is the first full step): a
 *    multi-row call (prefill chunk, verification) runs full attention and its last row ranks, so the selector
 *    declares that it sees the prefill (`seesPrefill`: generate() passes prefill chunks only to such selectors;
 *    without it the first decoding step would run in full, one full step more than the paper's schedule);
 *  - each recycled step adds the new token to the recycled cache and drops the lowest-ranked entry of the full step,
 *    so the cache stays K entries: j tokens after a full step, the step reads the K − j best-ranked plus those j;
 *  - fixed schedule: a full step every `stride` = S steps (S − 1 recycled steps between; S = 50 in the RULER results);
 *  - dynamic schedule (`dynamic` = 1): every S steps the layer compares its query with its query at its last full step
 *    (cosine similarity) and runs a full step when that is below `threshold` = s, else keeps recycling; each layer
 *    decides for itself. Defaults: the paper's dynamic runs, QC = 5 (S then counts checks) and s = 0.8;
 *  - with grouped-query attention an entry's score for its KV head is the max of the probabilities the group's query
 *    heads give it (v2's summary says max pooling over the group; v1's says nothing);
 *  - exact when K covers the cache (the lists then hold every entry and are returned as null).
 * Choices where the paper is vague, written down: (1) attention scores are post-softmax probabilities of the
 * post-RoPE query against the cached (post-RoPE) keys, scale 1/√headDim, computed here (the backend keeps none); a
 * sliding-window layer ranks only its window; (2) the query similarity of a layer is the mean over query heads of
 * each head's cosine, on post-RoPE queries (the ones the selector sees); (3) steps are counted by position since the
 * layer's last full step, so each layer keeps its own state (no global step counter), and a layer with no full step
 * yet (the selector did not see the prefill) or rolled back behind it runs a full step; (4) entries are remembered
 * by original position, so a press that drops or shifts entries costs only the dropped ones; (5) no pooling of
 * scores over neighbouring tokens (that is RefreshKV's, v2).
 * On attend-mini (digits are one token each) a needle answer needs a new needle entry at every step, and the
 * entries later digits copy get near-zero attention at the full step (ranked ~700–2000th of ~2K for the layer-6 copy
 * heads' KV head), so at K = 256 only the first digits come out right (tools/probes/tidal-recycled-miss.ts).
 */
import type { HeadMemory } from '../cache/head-memory.js';
import { countUpTo, indexIn } from '../cache/positions.js';
import { AttendError } from '../errors.js';
import type { ModelConfig } from '../models/config.js';
import type { LayerCache } from '../cache/kv-cache.js';
import type { PrefillSelector, SelectorView } from './selector.js';

export interface RecycledAttentionOptions {
  budget?: number;
  stride?: number;
  /** 1: the query-similarity schedule; 0: a full step every `stride` steps. */
  dynamic?: number;
  threshold?: number;
}

/** One layer's last full step. */
interface FullStep {
  /** Position of the query row that ran full attention. */
  position: number;
  /** Per KV head, the original positions of its top-K entries, best first (the order recycled steps drop them in). */
  ranked: Int32Array[];
  /** That row's queries (numHeads·headDim), for the dynamic schedule. */
  query: Float32Array;
}

export class RecycledAttentionSelector implements PrefillSelector {
  readonly name = 'recycled-attention';
  readonly seesPrefill = true;
  readonly budget: number;
  readonly stride: number;
  readonly dynamic: boolean;
  readonly threshold: number;
  private readonly last = new Map<number, FullStep>();

  constructor(opts: RecycledAttentionOptions = {}) {
    const dynamic = opts.dynamic ?? 0;
    if (dynamic !== 0 && dynamic !== 1) throw new AttendError(`recycled-attention: dynamic must be 0 or 1, got ${dynamic}`);
    this.dynamic = dynamic === 1;
    this.budget = opts.budget ?? 4096;
    this.stride = opts.stride ?? (this.dynamic ? 5 : 50);
    this.threshold = opts.threshold ?? 0.8;
    for (const [name, v] of [['budget', this.budget], ['stride', this.stride]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new AttendError(`recycled-attention: ${name} must be a whole number ≥ 1, got ${v}`);
    }
    if (!(this.threshold >= -1 && this.threshold <= 1)) throw new AttendError(`recycled-attention: threshold must be between -1 and 1, got ${this.threshold}`);
  }

  select(view: SelectorView): (Int32Array | null)[] | undefined {
    const { layer, config, cache, queries, positions } = view;
    const width = config.numHeads * config.headDim;
    const row = queries.subarray((positions.length - 1) * width, positions.length * width);
    const position = positions[positions.length - 1];
    const last = this.last.get(layer);
    if (positions.length !== 1 || !last || this.fullStepDue(last, position, row, config.numHeads)) {
      this.last.set(layer, this.rank(config, cache, row, position, config.slidingWindows?.[layer] ?? null));
      return undefined;
    }
    return cache.heads.map((head, g) => this.recycled(head, last.ranked[g], last.position));
  }

  /** Whether the decoding step at `position` runs full attention, given the layer's last full step. */
  private fullStepDue(last: FullStep, position: number, row: Float32Array, numHeads: number): boolean {
    const since = position - last.position;
    if (since <= 0) return true;
    if (!this.dynamic) return since >= this.stride;
    return since % this.stride === 0 && querySimilarity(row, last.query, numHeads) < this.threshold;
  }

  /** A recycled step's list for one head: the full step's best K − j entries still held, and the j appended since. */
  private recycled(head: HeadMemory, ranked: Int32Array, from: number): Int32Array | null {
    const n = head.length;
    const old = countUpTo(head.positions, from);
    const list: number[] = [];
    for (const p of ranked.subarray(0, Math.max(0, this.budget - (n - old)))) {
      const i = indexIn(head.positions, p);
      if (i >= 0) list.push(i);
    }
    for (let i = old; i < n; i++) list.push(i);
    return list.length === n ? null : Int32Array.from(list).sort();
  }

  /** A full step: per KV head, the positions of its K entries with the highest attention (max over the group). */
  private rank(config: ModelConfig, cache: LayerCache, row: Float32Array, position: number, window: number | null): FullStep {
    const d = config.headDim;
    const group = config.numHeads / config.numKvHeads;
    const scale = 1 / Math.sqrt(d);
    const ranked = cache.heads.map((head, g) => {
      const n = head.length;
      // A sliding-window layer's row sees only its window; the entries before it keep score 0.
      const first = window === null ? 0 : countUpTo(head.positions, position - window);
      const keys = head.keys(0, n);
      const score = new Float64Array(n);
      const p = new Float64Array(n);
      for (let h = g * group; h < (g + 1) * group; h++) {
        const q = row.subarray(h * d, (h + 1) * d);
        let max = -Infinity;
        for (let e = first; e < n; e++) {
          let s = 0;
          for (let i = 0; i < d; i++) s += q[i] * keys[e * d + i];
          p[e] = s * scale;
          if (p[e] > max) max = p[e];
        }
        let sum = 0;
        for (let e = first; e < n; e++) sum += p[e] = Math.exp(p[e] - max);
        for (let e = first; e < n; e++) score[e] = Math.max(score[e], p[e] / sum);
      }
      // Best first, ties to the earlier entry.
      const order = Array.from(score.keys()).sort((a, b) => score[b] - score[a] || a - b);
      return Int32Array.from(order.slice(0, this.budget), (e) => head.positions[e]);
    });
    return { position, ranked, query: row.slice() };
  }
}

/** Mean over query heads of the cosine between each head's two query vectors. */
export function querySimilarity(a: Float32Array, b: Float32Array, numHeads: number): number {
  const d = a.length / numHeads;
  let total = 0;
  for (let h = 0; h < numHeads; h++) {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let i = h * d; i < (h + 1) * d; i++) {
      ab += a[i] * b[i];
      aa += a[i] * a[i];
      bb += b[i] * b[i];
    }
    total += ab / (Math.sqrt(aa * bb) || 1);
  }
  return total / numHeads;
}
