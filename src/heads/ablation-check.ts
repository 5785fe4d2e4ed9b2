/**
 * The retrieval-head ablation curve (Wu et al. 2024, "Retrieval Head Mechanistically Explains Long-Context
 * Factuality", arXiv 2404.15574, Figure 1 / property (5) of the abstract; official code nightdessert/Retrieval_Head,
 * needle_in_haystack_with_mask.py): needle accuracy as k grows, with the k heads of highest retrieval score ablated,
 * against k random heads ablated. The paper's claim is that the first collapses and the second does not.
 * `retrieval-mask.ts` is the single-k form of the same check (the official `--mask_top K` / `--mask_top -K`); this
 * file runs a list of k, several random draws per k, and gives each point n and a 95% Wilson interval.
 *
 * The rules, and where they come from:
 *  - top k: the k heads of highest score (`rankHeads`: ties go to the lower layer, then the lower head), as the
 *    official `--mask_top K` sorts the head_score file's mean scores;
 *  - random k: k distinct heads drawn uniformly from those outside the top max(k, round(100 · H / 1024)) of the H
 *    heads (the official `block_list` of the top 100 of Llama-2-7B's 1024 heads, scaled: 6 of attend-mini's 64,
 *    `scaledExclusion`), so never one of the top-k heads. The official code draws anew for every sample; here each
 *    draw is one head set run over every prompt (`draws` sets per k, pooled: n = draws × prompts), so that a draw's
 *    own accuracy can be read too (Attend's choice, written down);
 *  - ablation: mode 'zero' (default, Attend's `--ablate-heads`, models/model.ts `ablationHooks`) zeroes the heads'
 *    outputs before the output projection; mode 'uniform' gives them uniform attention over their KV head's entries,
 *    the official zeroed query (`uniformAttentionHooks`). Either acts on the decoding steps only, as the official
 *    `block_list` reaches `decode` and not the prefill; the prefill of a prompt is thus shared by all its conditions
 *    (`decodeNeedle`'s `prefilled`);
 *  - prompts: Attend's held-out niah_single (a RULER-style single needle, eval/tasks/niah.ts) at one length, prompt i
 *    with seed `seed + i` and depth `depths[i mod depths.length]`; the seeds start at 2000, away from detection's
 *    (0…) and the mask check's (1000…), so the needles scored are not those the scores were made on;
 *  - a prompt counts its string-match score (0…1; niah_single's is 0 or 1); a point's accuracy is the mean, its
 *    interval Wilson's on the summed score (eval/scoring.ts `wilson`).
 */
import type { KVCache } from '../cache/kv-cache.js';
import { AttendError, check } from '../errors.js';
import { score, wilson } from '../eval/scoring.js';
import { prefill } from '../generate/prefill.js';
import { Random } from '../generate/random.js';
import type { LoadedModel } from '../models/load.js';
import { ablationHooks, contextLength, type ForwardHooks, type HeadRef } from '../models/model.js';
import { decodeIds, findNeedleSpan, needlePrompt } from './needle-decode.js';
import { type HeadScores, rankHeads } from './probe.js';
import { type MaskMode, randomHeads, scaledExclusion, uniformAttentionHooks } from './retrieval-mask.js';
import { needleInstance } from './retrieval-score.js';

/** 0 (no head ablated) and powers of two up to a quarter of attend-mini's 64 query heads. */
export const ABLATION_KS: readonly number[] = [0, 1, 2, 4, 8, 16];
/** A length attend-mini answers niah_single at reliably (docs/results.md: 100% at 1K–4K). */
export const ABLATION_LENGTH = 2000;
export const ABLATION_SAMPLES = 20;
export const ABLATION_DRAWS = 3;
export const ABLATION_DEPTHS: readonly number[] = [0, 0.25, 0.5, 0.75, 1];
/** The check's needles start here (detection's start at 0, the mask check's at 1000). */
export const ABLATION_SEED = 2000;

export interface AblationOptions {
  ks?: readonly number[];
  length?: number;
  /** Prompts per point. */
  samples?: number;
  /** Random head sets per k (pooled). */
  draws?: number;
  depths?: readonly number[];
  seed?: number;
  mode?: MaskMode;
  /** Called after each prompt. */
  progress?: (done: number, total: number) => void;
}

/** One point of a curve: the mean score over `n` decodings and its 95% Wilson interval. */
export interface AblationPoint {
  k: number;
  accuracy: number;
  n: number;
  lo: number;
  hi: number;
}

export interface AblationCheck {
  model: string;
  task: string;
  mode: MaskMode;
  length: number;
  samples: number;
  draws: number;
  depths: number[];
  seeds: [number, number];
  /** The top k heads of each k (the largest k's list; every smaller k takes its first k). */
  topHeads: (HeadRef & { score: number })[];
  /** Random draws never take the top this many (or k, if larger). */
  excluded: number;
  top: AblationPoint[];
  random: AblationPoint[];
  /** Each random draw's heads and accuracy (over the prompts), per k. */
  randomDraws: { k: number; heads: HeadRef[]; accuracy: number }[];
  /** Per prompt: its seed, depth, prompt tokens, and the prediction of every condition. */
  runs: { seed: number; depth: number; promptTokens: number; none: string; top: Record<string, string>; random: Record<string, string[]> }[];
}

/** The k heads of highest score, ties to the lower layer then head; one-line errors for a bad k. */
export function topHeads(scores: readonly (readonly number[])[], k: number): (HeadRef & { score: number })[] {
  const ranked = rankHeads(scores);
  check(Number.isInteger(k) && k >= 0 && k <= ranked.length, `k must be a whole number in 0…${ranked.length} (the heads scored), got ${k}`);
  return ranked.slice(0, k);
}

/** A point from summed scores. */
export function ablationPoint(k: number, total: number, n: number): AblationPoint {
  const { lo, hi } = wilson(total, n);
  return { k, accuracy: n > 0 ? total / n : 0, n, lo, hi };
}

/** The hooks of one condition: `heads` ablated by `mode` (none for an empty list). */
export function ablationHooksFor(lm: LoadedModel, mode: MaskMode, heads: readonly HeadRef[]): ((cache: KVCache) => ForwardHooks) | undefined {
  if (heads.length === 0) return undefined;
  return (cache) => (mode === 'uniform' ? uniformAttentionHooks(lm.model.backend, lm.config, cache, heads) : ablationHooks(lm.model.backend, lm.config, heads));
}

/** The checked options, with defaults; one-line errors. */
export function ablationSettings(lm: LoadedModel, options: AblationOptions) {
  const total = lm.config.numLayers * lm.config.numHeads;
  const ks = [...(options.ks ?? ABLATION_KS)];
  check(ks.length > 0, 'the ablation check needs at least one k');
  for (const k of ks) check(Number.isInteger(k) && k >= 0 && k <= total, `ablation k must be a whole number in 0…${total} (the model's query heads), got ${k}`);
  check(new Set(ks).size === ks.length, `ablation k values must be distinct, got ${ks.join(',')}`);
  ks.sort((a, b) => a - b);
  const length = options.length ?? ABLATION_LENGTH;
  const context = contextLength(lm.config);
  check(Number.isInteger(length) && length > 0 && length < context, `ablation length must be a whole number of tokens in 1…${context - 1}, got ${length}`);
  const samples = options.samples ?? ABLATION_SAMPLES;
  check(Number.isInteger(samples) && samples > 0, `ablation samples must be a whole number > 0, got ${samples}`);
  const draws = options.draws ?? ABLATION_DRAWS;
  check(Number.isInteger(draws) && draws > 0, `ablation draws must be a whole number > 0, got ${draws}`);
  const depths = [...(options.depths ?? ABLATION_DEPTHS)];
  check(depths.length > 0 && depths.every((d) => d >= 0 && d <= 1), `ablation depths must lie in [0, 1], got ${depths.join(',')}`);
  const seed = options.seed ?? ABLATION_SEED;
  check(Number.isInteger(seed) && seed >= 0, `ablation seed must be a whole number ≥ 0, got ${seed}`);
  const mode = options.mode ?? 'zero';
  check(mode === 'zero' || mode === 'uniform', `ablation mode must be zero or uniform, got ${String(mode)}`);
  // Random heads come from outside the top max(k, exclusion): there must be k of them.
  const exclusion = scaledExclusion(total);
  const largest = ks[ks.length - 1];
  check(total - Math.max(largest, exclusion) >= largest, `k = ${largest} random heads cannot be drawn from the ${total - Math.max(largest, exclusion)} heads outside the top ${Math.max(largest, exclusion)}`);
  return { ks, length, samples, draws, depths, seed, mode, exclusion, total };
}

/** The curve: every prompt decoded with no head, the top k, and each random draw of k heads ablated. */
export function ablationCheck(lm: LoadedModel, scores: Pick<HeadScores, 'scores' | 'layers' | 'heads'>, options: AblationOptions = {}): AblationCheck {
  const { config, model, tokenizer } = lm;
  check(scores.layers === config.numLayers && scores.heads === config.numHeads, `the scores are for ${scores.layers} × ${scores.heads} heads, the model has ${config.numLayers} × ${config.numHeads}`);
  check(scores.scores.length === scores.layers && scores.scores.every((row) => row.length === scores.heads && row.every(Number.isFinite)), `the scores must be ${scores.layers} rows of ${scores.heads} finite numbers`);
  const s = ablationSettings(lm, options);
  const largest = s.ks[s.ks.length - 1];
  const ranked = topHeads(scores.scores, config.numLayers * config.numHeads);
  const top = ranked.slice(0, largest);
  const rng = new Random(s.seed);
  const draws = s.ks.filter((k) => k > 0).flatMap((k) => Array.from({ length: s.draws }, () => ({ k, heads: randomHeads(rng, config, k, ranked.slice(0, Math.max(k, s.exclusion))), total: 0 })));
  const topTotals = new Map<number, number>(s.ks.map((k) => [k, 0]));
  let noneTotal = 0;
  const runs: AblationCheck['runs'] = [];
  for (let i = 0; i < s.samples; i++) {
    const instance = needleInstance(lm, { seed: s.seed + i, contextLength: s.length, depth: s.depths[i % s.depths.length] });
    const promptIds = needlePrompt(lm, instance);
    const answer = tokenizer.encode(instance.answers[0], { addSpecialTokens: false });
    const span = findNeedleSpan(promptIds, answer);
    if (!span) throw new AttendError(`niah_single (seed ${instance.seed}, ${s.length} tokens): the answer's tokens are not in the prompt`);
    check(promptIds.length < contextLength(config), `a ${promptIds.length}-token prompt leaves no room to decode in the model's ${contextLength(config)} positions`);
    // One prefill per prompt; every condition decodes on a copy of it (the ablation reaches decoding only).
    const cache = model.makeCache();
    if (promptIds.length > 1) prefill(model, cache, promptIds.slice(0, -1));
    const decode = (heads: readonly HeadRef[]) => {
      const { tokens } = decodeIds(lm, promptIds, span, { prefilled: cache, hooks: ablationHooksFor(lm, s.mode, heads) });
      const prediction = tokenizer.decode(tokens, { skipSpecialTokens: true }).trim();
      return { prediction, accuracy: score(instance, prediction) };
    };
    const none = decode([]);
    noneTotal += none.accuracy;
    const run: AblationCheck['runs'][number] = { seed: instance.seed, depth: instance.depth ?? 0, promptTokens: promptIds.length, none: none.prediction, top: {}, random: {} };
    for (const k of s.ks) {
      if (k === 0) continue;
      const r = decode(top.slice(0, k));
      topTotals.set(k, topTotals.get(k)! + r.accuracy);
      run.top[k] = r.prediction;
    }
    for (const d of draws) {
      const r = decode(d.heads);
      d.total += r.accuracy;
      (run.random[d.k] ??= []).push(r.prediction);
    }
    runs.push(run);
    options.progress?.(i + 1, s.samples);
  }
  const n = s.samples;
  return {
    model: lm.dir,
    task: 'niah_single',
    mode: s.mode,
    length: s.length,
    samples: n,
    draws: s.draws,
    depths: s.depths,
    seeds: [s.seed, s.seed + n - 1],
    topHeads: top,
    excluded: s.exclusion,
    // k = 0 ablates nothing: one measurement, the start of both curves.
    top: s.ks.map((k) => (k === 0 ? ablationPoint(0, noneTotal, n) : ablationPoint(k, topTotals.get(k)!, n))),
    random: s.ks.map((k) => {
      if (k === 0) return ablationPoint(0, noneTotal, n);
      const mine = draws.filter((d) => d.k === k);
      return ablationPoint(k, mine.reduce((a, d) => a + d.total, 0), n * mine.length);
    }),
    randomDraws: draws.map((d) => ({ k: d.k, heads: d.heads, accuracy: d.total / n })),
    runs,
  };
}

/** Scores read back from `attend heads --out FILE` JSON; one-line errors naming the file. */
export function parseScoresJson(text: string, file: string): Pick<HeadScores, 'probe' | 'scores' | 'layers' | 'heads' | 'threshold'> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new AttendError(`${file}: not JSON (${(e as Error).message})`);
  }
  const o = data as Partial<HeadScores> | null;
  check(o !== null && typeof o === 'object' && !Array.isArray(o), `${file}: expected the JSON object of attend heads --out`);
  check(Number.isInteger(o!.layers) && o!.layers! > 0 && Number.isInteger(o!.heads) && o!.heads! > 0, `${file}: expected whole-number "layers" and "heads" > 0`);
  const { layers, heads } = o as { layers: number; heads: number };
  const rows = o!.scores;
  check(Array.isArray(rows) && rows.length === layers && rows.every((r) => Array.isArray(r) && r.length === heads && r.every((x) => typeof x === 'number' && Number.isFinite(x))), `${file}: "scores" must be ${layers} rows of ${heads} finite numbers`);
  return { probe: String(o!.probe ?? ''), layers, heads, scores: rows as number[][], threshold: typeof o!.threshold === 'number' ? o!.threshold : undefined };
}
