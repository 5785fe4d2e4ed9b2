/**
 * KVCompose (Akulov et al. 2025, "KVCompose: Efficient Structured KV Cache Compression with Composite Tokens",
 * arXiv 2509.05165), as NVIDIA kvpress's KVComposePress implements it (the oracle; kvcompose_press.py).
 *
 * Rule: once the context is in the cache, it runs a second time as the next tokens over it (kvpress feeds the
 * context again when no task prompts are registered, its default) and the probabilities those queries give the
 * context's entries are aggregated: per layer and query head, over the queries (`agg-task`, max or mean); per KV
 * head, over the query heads of its group (`agg-group`); then optionally × ‖v‖ of each entry (`v-norm`) and + the
 * mean over the layer's KV heads of the same token's score (`mean-across-heads`). Each head's scores sorted
 * descending are its "composite tokens": rank r of a layer is the aggregate over its heads (`agg-head`) of their
 * r-th best scores, the first `lower-bound` ranks of every layer get +1e9, and layer 0's composites are raised to
 * the largest of any layer at each rank. The ⌊layers·n·(1 − ratio)⌋ best composites over all layers decide how many
 * entries each layer keeps, and every head of a layer then keeps that many of its own best entries (structured:
 * the heads of a layer stay the same length, each holding different tokens). Unstructured (`structured` false):
 * the ⌊layers·heads·n·(1 − ratio)⌋ best per-head composites give each head its own count. The second run's
 * entries are then taken back (KVCache.trim).
 *
 * kvpress's class KVComposePress; defaults as its fields: structured True, agg_task "max", agg_group "mean", agg_head
 * "mean", add_v_norm False, add_mean_across_heads True, keep_token_lower_bound 0.
 *
 * Differences from kvpress:
 * - the unstructured variant removes the pruned entries per head instead of masking them (attention_patch);
 * - `v-norm`: kvpress multiplies the n scores by the norms of the cache's values while the cache still holds the
 *   second run's entries too (2n rows), which fails in torch; here each entry's score is × its own value's norm;
 * - the second run goes in chunks of 512 tokens (causal attention: the same probabilities) and its probabilities
 *   are read block by block as the attention computes them (AttentionObserver.observe), never as a matrix;
 *   scores are kept in f32 as kvpress's (the +1e9 of the lower bound absorbs the score, as in f32);
 * - on a cache compressed before (per-chunk prefill, decoding) the ids of every position seen run again (from the
 *   press's own observer, AttentionObserver.tokens) and each head scores the entries it holds; ranks and the mean
 *   across heads go over the heads that have that rank or hold that token; the budget is ⌊layers·tokens seen·(1 −
 *   ratio)⌋ at a prefill with a ratio, else the runner's per-layer targets summed;
 * - ties go to the earlier layer, rank and entry (torch.topk's and argsort's order among equal values are theirs;
 *   layer 0's raised composites equal another layer's exactly, so a cut on such a value may fall differently);
 * - kvpress's register_prompt_ids (scoring with task prompts instead of the context; its pipeline never calls it)
 *   is not offered: the second run is always the context.
 * Where kvpress and the paper differ, kvpress is followed. Needs the session's observer on every forward of the
 * sequence (for the ids); a shared prefill cannot serve it (it has an observer of its own).
 */
import type { AttentionObserver } from '../backend/backend.js';
import type { KVCache } from '../cache/kv-cache.js';
import { AttendError } from '../errors.js';
import { type CompressionContext, type LayerView, type Press, topK } from './press.js';
import { preparedFor, type PreparedSelection } from './prepared-selection.js';
import { keepHighest, reread, TokenLogs } from './reread.js';

export type Aggregation = 'max' | 'mean';
const AGGREGATIONS: readonly string[] = ['max', 'mean'];

export interface KVComposeOptions {
  structured: boolean;
  aggTask: Aggregation;
  aggGroup: Aggregation;
  aggHead: Aggregation;
  vNorm: boolean;
  meanAcrossHeads: boolean;
  lowerBound: number;
}

export const KVCOMPOSE_DEFAULTS: KVComposeOptions = {
  structured: true,
  aggTask: 'max',
  aggGroup: 'mean',
  aggHead: 'mean',
  vNorm: false,
  meanAcrossHeads: true,
  lowerBound: 0,
};

const f32 = Math.fround;
const BOOST = 1e9;

/**
 * kvpress's Aggregator over vectors of (up to) n values in f32: max (from −∞) or mean (f32 sums and counts, the
 * mean after each fit). `fit(values, rows)` adds `rows` rows whose sum (mean) or max (max) is `values`.
 */
class Aggregate {
  readonly data: Float32Array;
  private readonly sum?: Float32Array;
  private readonly count?: Float32Array;

  constructor(
    readonly kind: Aggregation,
    n: number,
  ) {
    this.data = new Float32Array(n).fill(kind === 'max' ? -Infinity : 0);
    if (kind === 'mean') {
      this.sum = new Float32Array(n);
      this.count = new Float32Array(n);
    }
  }

  fit(values: ArrayLike<number>, rows = 1): void {
    const n = Math.min(values.length, this.data.length);
    if (this.kind === 'max') {
      for (let i = 0; i < n; i++) if (values[i] > this.data[i]) this.data[i] = values[i];
      return;
    }
    for (let i = 0; i < n; i++) {
      this.sum![i] += values[i];
      this.count![i] += rows;
      this.data[i] = this.sum![i] / this.count![i];
    }
  }
}

/**
 * The selection from the second run's aggregated attention: `task[l][qh]` per layer and query head, one value per
 * entry of its KV head (the agg-task aggregate); `positions[l][g]` the entries' positions (for the mean across
 * heads); `valueNorms[l][g]` with v-norm. `total`: composites kept (per layer units, or per head unstructured).
 */
export function kvcomposeSelect(
  task: Float32Array[][],
  positions: Int32Array[][],
  options: KVComposeOptions,
  total: number,
  valueNorms?: Float32Array[][],
): { scores: Float32Array[][]; kept: Int32Array[][] } {
  const layers = positions.length;
  const group = task[0].length / positions[0].length;
  // Per KV head: aggregate over its query heads; then × ‖v‖ and + the mean over the layer's heads of that token.
  const scores = positions.map((heads, l) =>
    heads.map((pos, g) => {
      const agg = new Aggregate(options.aggGroup, pos.length);
      for (let j = 0; j < group; j++) agg.fit(task[l][g * group + j]);
      const s = agg.data;
      if (options.vNorm) for (let i = 0; i < s.length; i++) s[i] = f32(s[i] * valueNorms![l][g][i]);
      return s;
    }),
  );
  if (options.meanAcrossHeads) {
    scores.forEach((heads, l) => {
      const sums = new Map<number, [number, number]>();
      heads.forEach((s, g) =>
        positions[l][g].forEach((p, i) => {
          const a = sums.get(p) ?? [0, 0];
          sums.set(p, [f32(a[0] + s[i]), a[1] + 1]);
        }),
      );
      heads.forEach((s, g) => positions[l][g].forEach((p, i) => (s[i] = f32(s[i] + f32(sums.get(p)![0] / sums.get(p)![1])))));
    });
  }
  const lb = options.lowerBound;
  const boost = (x: Float32Array) => {
    for (let r = 0; r < Math.min(lb, x.length); r++) x[r] = f32(x[r] + BOOST);
    return x;
  };
  const sorted = scores.map((heads) => heads.map((s) => Float32Array.from(s).sort().reverse()));
  let counts: number[][];
  if (options.structured) {
    const composite = sorted.map((heads) => {
      const n = Math.max(0, ...heads.map((h) => h.length));
      const agg = new Float32Array(n);
      for (let r = 0; r < n; r++) {
        const a = new Aggregate(options.aggHead, 1);
        for (const h of heads) if (r < h.length) a.fit([h[r]]);
        agg[r] = a.data[0];
      }
      return boost(agg);
    });
    // Layer 0 is raised to the largest composite of any layer at each rank.
    for (let r = 0; r < (composite[0]?.length ?? 0); r++) {
      for (let l = 1; l < layers; l++) if (r < composite[l].length && composite[l][r] > composite[0][r]) composite[0][r] = composite[l][r];
    }
    const perLayer = keepHighest(composite, total).map((k) => k.length);
    counts = scores.map((heads, l) => heads.map((s) => Math.min(perLayer[l], s.length)));
  } else {
    const flat = keepHighest(sorted.flat().map(boost), total);
    const heads = positions[0].length;
    counts = scores.map((hs, l) => hs.map((_, g) => flat[l * heads + g].length));
  }
  return { scores, kept: scores.map((heads, l) => heads.map((s, g) => topK(s, counts[l][g]))) };
}

export class KVComposePress implements Press {
  readonly name = 'kvcompose';
  readonly needs = {};
  private readonly logs = new TokenLogs();
  private prepared?: PreparedSelection;

  constructor(readonly options: KVComposeOptions = KVCOMPOSE_DEFAULTS) {
    for (const key of ['aggTask', 'aggGroup', 'aggHead'] as const) {
      if (!AGGREGATIONS.includes(options[key])) {
        const flag = { aggTask: 'agg-task', aggGroup: 'agg-group', aggHead: 'agg-head' }[key];
        throw new AttendError(`kvcompose: option ${flag} must be max or mean, got "${options[key]}"`);
      }
    }
    if (!(Number.isInteger(options.lowerBound) && options.lowerBound >= 0)) {
      throw new AttendError(`kvcompose: option lower-bound must be a whole number ≥ 0, got ${options.lowerBound}`);
    }
  }

  observer(cache: KVCache, next: AttentionObserver): AttentionObserver {
    return this.logs.observer(cache, next);
  }

  prepare(ctx: CompressionContext): void {
    const { model, cache } = ctx;
    const c = model.config;
    const seen = cache.nextPosition;
    const { structured } = this.options;
    const heads = c.numKvHeads;
    const group = c.numHeads / heads;
    const budget = ctx.budget;
    const byRatio = ctx.prefill && budget != null && 'ratio' in budget ? budget.ratio : undefined;
    const units = structured ? c.numLayers : c.numLayers * heads;
    const total =
      byRatio !== undefined ? Math.floor(units * seen * (1 - byRatio)) : ctx.targets.reduce((s, t) => s + (structured ? t : heads * t), 0);
    const held = cache.layers.reduce((s, l) => s + (structured ? l.maxLength() : l.heads.reduce((a, h) => a + h.length, 0)), 0);
    const positions = cache.layers.map((l) => l.heads.map((h) => h.positions.slice()));
    if (held <= total) {
      this.prepared = {
        layers: cache.layers,
        scores: positions.map((hs) => hs.map((p) => new Float32Array(p.length))),
        kept: positions.map((hs) => hs.map((p) => Int32Array.from(p, (_, i) => i))),
      };
      return;
    }
    const lengths = positions.map((hs) => hs.map((p) => p.length));
    const tokens = this.logs.ids(cache, this.name);
    // The second run's probabilities over the context's entries, aggregated as they stream.
    const task = lengths.map((hs) => Array.from({ length: c.numHeads }, (_, qh) => new Aggregate(this.options.aggTask, hs[Math.floor(qh / group)])));
    const observer: AttentionObserver = {
      observe(block) {
        const n = lengths[block.layer][block.kvHead];
        const rows = block.queryPositions.length;
        for (let j = 0; j < block.groupSize; j++) {
          const agg = task[block.layer][block.kvHead * group + j];
          // Over the block's rows of this query head: their max, or their sum for a mean.
          const v = new Float64Array(n).fill(agg.kind === 'max' ? -Infinity : 0);
          for (let t = 0; t < rows; t++) {
            const row = (t * block.groupSize + j) * block.cols;
            for (let i = 0; i < n; i++) {
              const p = block.probs[row + i];
              if (agg.kind === 'max') {
                if (p > v[i]) v[i] = p;
              } else v[i] += p;
            }
          }
          agg.fit(v, rows);
        }
      },
    };
    reread(model, cache, tokens, { observer }, () => {});
    const valueNorms = this.options.vNorm
      ? cache.layers.map((l) =>
          l.heads.map((h) => {
            const v = h.values(0, h.length);
            const d = h.headDim;
            return Float32Array.from({ length: h.length }, (_, i) => {
              let s = 0;
              for (let k = 0; k < d; k++) s += v[i * d + k] ** 2;
              return Math.sqrt(s);
            });
          }),
        )
      : undefined;
    const { scores, kept } = kvcomposeSelect(task.map((hs) => hs.map((a) => a.data)), positions, this.options, total, valueNorms);
    this.prepared = { layers: cache.layers, scores, kept };
  }

  score(view: LayerView): Float32Array[] {
    return this.preparedFor(view).scores[view.layer];
  }

  select(view: LayerView): Int32Array[] {
    return this.preparedFor(view).kept[view.layer];
  }

  private preparedFor(view: LayerView): PreparedSelection {
    return preparedFor(this.prepared, view, 'kvcompose scores by running the context again: it runs in a CompressionSession (its prepare step), not as another press\'s scorer');
  }
}
