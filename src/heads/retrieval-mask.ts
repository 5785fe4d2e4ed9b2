/**
 * The causal check of the retrieval-head paper (Wu et al. 2024, arXiv 2404.15574, Figure 1 and the abstract's
 * property (5); official code nightdessert/Retrieval_Head, needle_in_haystack_with_mask.py): needle-in-a-haystack
 * accuracy with the top-k retrieval heads masked, against k random heads masked (and, for reference, none).
 *
 * The official rules:
 *  - `--mask_top K` > 0 masks the K heads of highest mean retrieval score; K < 0 masks K random heads, drawn anew for
 *    every sample (`construct_random_head`), no head twice and none of the top 100 heads (`block_list`, the 100 best);
 *    the README compares top 30 with random 30 on Llama-2-7B-80K (32 layers × 32 heads = 1024 heads);
 *  - masking: the head's query is set to 0 (`query_states[:, h] = 0`, the flash-attention path), on the decoding
 *    steps only (`block_list` goes to `decode`, not to the prefill), so its attention is uniform over every entry it
 *    sees: the head's output is the mean of its KV head's values;
 *  - a sample is scored by ROUGE-1 recall of the answer; here by the task's string match (needle-decode.ts).
 * Attend's k by default: every retrieval head (score above the threshold, at least one), the abstract's (5)
 * ("completely pruning retrieval heads", against "random non-retrieval heads"; the README's 30 of 1024 heads is
 * about the 3–6% the paper finds above 0.1); random heads never among the top max(k, round(100 · H / 1024)) of the H
 * heads (the official top 100 of 1024, scaled: 6 of attend-mini's 64), so never a retrieval head. The official
 * check uses a needle the detection never saw (the San Francisco sentence over Paul Graham essays, against
 * needles.jsonl); Attend draws niah_single instances with seeds from 1000 on, other needles and haystacks than
 * detection's seeds 0, 1, 2, over the detection grid by default. Mode 'zero' instead zeroes the masked heads'
 * outputs (Attend's --ablate-heads, models/model.ts ablationHooks), on the decoding steps as well.
 */
import type { KVCache } from '../cache/kv-cache.js';
import { check } from '../errors.js';
import { Random } from '../generate/random.js';
import type { ModelConfig } from '../models/config.js';
import type { LoadedModel } from '../models/load.js';
import { ablationHooks, contextLength, type ForwardHooks, type HeadRef } from '../models/model.js';
import type { Backend } from '../backend/backend.js';
import { decodeNeedle } from './needle-decode.js';
import { type HeadScores, type ProbeOptions, rankHeads } from './probe.js';
import { gridPoints, needleInstance, retrievalGrid, retrievalHeads } from './retrieval-score.js';

export type MaskMode = 'uniform' | 'zero';

/** Seeds of the check's needles start here (detection's start at 0). */
export const MASK_SEED = 1000;

/** The official random-head exclusion (the top 100 of 1024 heads), scaled to `heads` heads. */
export function scaledExclusion(heads: number): number {
  return Math.max(1, Math.round((100 * heads) / 1024));
}

/**
 * Hooks that give each listed head uniform attention over every entry of its KV head (the official zeroed query):
 * its output becomes the mean of the head's values. One query row per forward (decoding steps).
 */
export function uniformAttentionHooks(backend: Backend, config: ModelConfig, cache: KVCache, heads: readonly HeadRef[]): ForwardHooks {
  const d = config.headDim;
  const group = config.numHeads / config.numKvHeads;
  return {
    headOutputs(layer, out) {
      const mine = heads.filter((h) => h.layer === layer);
      if (mine.length === 0) return;
      check(out.rows === 1, 'uniform head masking runs on decoding steps (one query row)');
      const data = backend.read(out).slice();
      for (const { head } of mine) {
        const kv = cache.layers[layer].heads[Math.floor(head / group)];
        const values = kv.values(0, kv.length);
        for (let i = 0; i < d; i++) {
          let s = 0;
          for (let e = 0; e < kv.length; e++) s += values[e * d + i];
          data[head * d + i] = s / kv.length;
        }
      }
      return backend.upload(out.shape, data);
    },
  };
}

/** `k` distinct heads drawn uniformly from those not in `exclude`. */
export function randomHeads(rng: Random, config: Pick<ModelConfig, 'numLayers' | 'numHeads'>, k: number, exclude: readonly HeadRef[]): HeadRef[] {
  const banned = new Set(exclude.map((h) => `${h.layer}.${h.head}`));
  const pool: HeadRef[] = [];
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (let head = 0; head < config.numHeads; head++) if (!banned.has(`${layer}.${head}`)) pool.push({ layer, head });
  }
  check(pool.length >= k, `cannot draw ${k} random heads from the ${pool.length} outside the ${banned.size} excluded`);
  // Partial Fisher–Yates: the first k of a uniform shuffle.
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rng.next() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, k);
}

export interface MaskCheckOptions extends ProbeOptions {
  /** Heads masked (default: those above the scores' threshold, at least one). */
  k?: number;
  mode?: MaskMode;
}

export interface MaskCheck {
  k: number;
  mode: MaskMode;
  top: HeadRef[];
  /** Heads random draws never take (the top ones). */
  excluded: number;
  samples: number;
  /** Mean needle accuracy (0…1) with no head masked, the top k, and k random heads. */
  accuracy: { none: number; top: number; random: number };
  runs: { contextLength: number; depth?: number; seed: number; none: string; top: string; random: string; randomHeads: HeadRef[] }[];
}

export function maskCheck(lm: LoadedModel, scores: Pick<HeadScores, 'scores' | 'layers' | 'heads' | 'threshold'>, options: MaskCheckOptions = {}): MaskCheck {
  const { config, model } = lm;
  check(scores.layers === config.numLayers && scores.heads === config.numHeads, `the scores are for ${scores.layers} × ${scores.heads} heads, the model has ${config.numLayers} × ${config.numHeads}`);
  const total = config.numLayers * config.numHeads;
  const k = options.k ?? Math.max(1, retrievalHeads(scores).length);
  check(Number.isInteger(k) && k > 0 && k <= total, `k must be a whole number in 1…${total}, got ${k}`);
  const mode = options.mode ?? 'uniform';
  check(mode === 'uniform' || mode === 'zero', `mask mode must be uniform or zero, got ${String(mode)}`);
  const ranked = rankHeads(scores.scores).map(({ layer, head }) => ({ layer, head }));
  const top = ranked.slice(0, k);
  const excluded = Math.max(k, scaledExclusion(total));
  const grid = retrievalGrid({ ...options, seed: options.seed ?? MASK_SEED }, contextLength(config));
  const points = gridPoints(grid);
  const rng = new Random(grid.seed);
  const masked = (heads: HeadRef[]) => (cache: KVCache) =>
    mode === 'uniform' ? uniformAttentionHooks(model.backend, config, cache, heads) : ablationHooks(model.backend, config, heads);
  const sums = { none: 0, top: 0, random: 0 };
  const runs: MaskCheck['runs'] = [];
  points.forEach((point, i) => {
    const instance = needleInstance(lm, point);
    const drawn = randomHeads(rng, config, k, ranked.slice(0, excluded));
    const none = decodeNeedle(lm, instance);
    const withTop = decodeNeedle(lm, instance, { hooks: masked(top) });
    const withRandom = decodeNeedle(lm, instance, { hooks: masked(drawn) });
    sums.none += none.accuracy;
    sums.top += withTop.accuracy;
    sums.random += withRandom.accuracy;
    runs.push({
      contextLength: instance.contextLength,
      depth: instance.depth,
      seed: instance.seed,
      none: none.prediction,
      top: withTop.prediction,
      random: withRandom.prediction,
      randomHeads: drawn,
    });
    options.progress?.(i + 1, points.length);
  });
  const n = points.length;
  return { k, mode, top, excluded, samples: n, accuracy: { none: sums.none / n, top: sums.top / n, random: sums.random / n }, runs };
}
