/**
 * Retrieval score (Wu et al. 2024, "Retrieval Head Mechanistically Explains Long-Context Factuality", arXiv
 * 2404.15574; official code nightdessert/Retrieval_Head, retrieval_head_detection.py): how often a head copies the
 * answer of a needle-in-a-haystack prompt from the needle to the output while the model decodes it.
 *
 * The rule, as `retrieval_calculate` applies it at every decoding step (the step's forward runs one query token and
 * yields the generated token w):
 *  - per layer and query head, the entry the head attends to most: the argmax over the context of that step's
 *    attention probabilities, for the step's (last) query row (`topk(1)`; ties here: the lowest entry);
 *  - the head copies when that entry lies in the needle span (the answer's tokens in the prompt,
 *    needle-decode.ts) and holds the token w; each step adds 1 / (span length), at most once per head;
 *  - a head's score on a sample is thus copying steps / needle tokens (the code counts steps, so a head that copies
 *    the same needle token at two steps counts twice; the paper's set notation |g_h ∩ k| / |k| would count it once);
 *  - only samples the model answers count (the code: ROUGE-1 recall of the answer > 50%; here the task's string
 *    match > 0.5), and a head's final score is the mean of its sample scores over them (`np.mean` of
 *    `head_counter`, the README's reading of head_score/*.json);
 *  - retrieval heads: score above 0.1 (the paper counts heads with retrieval score > 0.1 and finds 3–6% of them;
 *    read here through reviewed summaries of §3, the paper's own text was not at hand; the code sets no threshold).
 *
 * The grid (`LLMNeedleHaystackTester`): 20 context lengths evenly spaced from --s to --e (`np.linspace(s, e, 20)`,
 * rounded; the README runs 0…50000 on Llama-2-7B-80K, 81920 positions), 10 needle depths (`np.linspace(0, 100, 10)`
 * rounded: 0, 11, 22, 33, 44, 56, 67, 78, 89, 100 %), and 3 needles, each over the whole grid (needles.jsonl).
 * Scaled to attend-mini (8192 positions, one tenth): 20 lengths ending at 5000 (one tenth of 50000), 250 apart,
 * from 250 instead of 0 (the official 0 point is the needle with no haystack at all; Attend's tasks fit a haystack
 * to the length); the 10 depths as fractions; 3 samples (seeds 0, 1, 2) per grid point.
 *
 * Prompts: Attend's held-out niah_single (eval/tasks/niah.ts): a 7-digit number under a word key in held-out prose
 * (data/heldout), asked for after the haystack, instead of the official needle sentences over Paul Graham essays; a
 * seed fixes its needle (key, value, template) and its haystack at every length and depth, as each official needle
 * keeps its own haystack across the grid. The answer (the number) is the needle span, as `real_needle` is there.
 *
 * Streaming: the attention probabilities are read block by block through the AttentionObserver (each decoding step
 * is one query row per head), and only each head's argmax is kept: no tokens × tokens matrix.
 *
 * Checked against the official code (test/heads/retrieval-oracle.test.ts, fixture by
 * tools/fixtures/make_retrieval_oracle.py): on the official prompt ids, needle span and decoded tokens (`countCopies`
 * with `force`), every step's top-1 entry and copying heads, the counts, the scores and the mean over answered
 * samples are the official ones. Two choices differ from it by design, both measured there: the needle span (the
 * official 90% window starts two tokens early on an answer such as 8315738 whose last digits repeat earlier ones,
 * so its best head scores 6/7 where the exact span gives 7/7), and the stop rule (needle-decode.ts).
 */
import type { AttentionBlock, AttentionObserver } from '../backend/backend.js';
import type { KVCache } from '../cache/kv-cache.js';
import { AttendError, check } from '../errors.js';
import { niahSingle } from '../eval/tasks/niah.js';
import type { TaskInstance } from '../eval/types.js';
import type { ModelConfig } from '../models/config.js';
import type { LoadedModel } from '../models/load.js';
import { contextLength } from '../models/model.js';
import { decodeIds, decodeNeedle, type IdsRun, type NeedleDecodeOptions, type NeedleSpan } from './needle-decode.js';
import { type HeadScores, type ProbeOptions, rankHeads, zeroScores } from './probe.js';

/** The paper's retrieval-head threshold. */
export const RETRIEVAL_THRESHOLD = 0.1;

/** np.linspace(250, 5000, 20): the official 20 lengths, scaled to attend-mini (see the top of this file). */
export const RETRIEVAL_LENGTHS: readonly number[] = Array.from({ length: 20 }, (_, i) => 250 * (i + 1));

/** np.round(np.linspace(0, 100, 10)) percent, as fractions. */
export const RETRIEVAL_DEPTHS: readonly number[] = Array.from({ length: 10 }, (_, i) => Math.round((100 * i) / 9) / 100);

/** needles.jsonl holds 3 needles, each run over the whole grid. */
export const RETRIEVAL_SAMPLES = 3;

/**
 * Per layer and query head, the entry of largest attention probability in the row of the query at `position`
 * (set with `at` before each forward). Entry indices are the heads' own; with a full cache they are positions.
 */
export class ArgmaxRecorder implements AttentionObserver {
  /** [layer][query head]: the entry, or -1 where no row of that position was seen. */
  readonly entries: Int32Array[];
  private position = -1;
  private readonly group: number;

  constructor(config: Pick<ModelConfig, 'numLayers' | 'numHeads' | 'numKvHeads'>) {
    this.entries = Array.from({ length: config.numLayers }, () => new Int32Array(config.numHeads).fill(-1));
    this.group = config.numHeads / config.numKvHeads;
  }

  /** The next forward's rows to read: the query at `position`; forgets the last step. */
  at(position: number): void {
    this.position = position;
    for (const e of this.entries) e.fill(-1);
  }

  observe(block: AttentionBlock): void {
    // A block of one query head alone (per-query-head entry lists, a selector) does not say which head it is.
    check(block.groupSize === this.group, `the retrieval score reads full attention: a block of ${block.groupSize} of the ${this.group} query heads of a KV head came (run without a selector)`);
    const out = this.entries[block.layer];
    for (let t = 0; t < block.queryPositions.length; t++) {
      if (block.queryPositions[t] !== this.position) continue;
      for (let j = 0; j < block.groupSize; j++) {
        const row = (t * block.groupSize + j) * block.cols;
        let best = 0;
        for (let c = 1; c < block.cols; c++) if (block.probs[row + c] > block.probs[row + best]) best = c;
        out[block.kvHead * block.groupSize + j] = best;
      }
    }
  }
}

/**
 * The copy rule for one step: each head whose attended position lies in the span and holds the generated token
 * copies; its count in `copies` ([layer][head]) goes up by one. `attended` holds prompt positions (-1: none).
 * (The official code adds 1 / (span length) per copy; counting and dividing once gives the same score exactly.)
 */
export function addCopies(copies: number[][], attended: readonly Int32Array[], generated: number, span: NeedleSpan, promptIds: readonly number[]): void {
  attended.forEach((heads, layer) => {
    heads.forEach((p, head) => {
      if (p >= span.start && p < span.end && promptIds[p] === generated) copies[layer][head]++;
    });
  });
}

/** One sample: its retrieval scores (layer × head), the prediction and whether it counts. */
export interface RetrievalSample {
  scores: number[][];
  prediction: string;
  answer: string;
  correct: boolean;
  promptTokens: number;
  span: NeedleSpan;
}

/**
 * A head-copy counter to hand to the decoding loop (needle-decode.ts): its observer keeps each head's argmax of
 * the step's query row, and each step's copies go into `copies` ([layer][query head]).
 */
export function copyCounter(config: Pick<ModelConfig, 'numLayers' | 'numHeads' | 'numKvHeads'>): { copies: number[][]; options: NeedleDecodeOptions } {
  const recorder = new ArgmaxRecorder(config);
  const copies = zeroScores(config.numLayers, config.numHeads);
  const group = config.numHeads / config.numKvHeads;
  let start: { promptIds: readonly number[]; span: NeedleSpan; cache: KVCache } | undefined;
  const options: NeedleDecodeOptions = {
    observer: recorder,
    onStart: (s) => (start = s),
    beforeStep: (p) => recorder.at(p),
    onStep: (token) => {
      const { promptIds, span, cache } = start!;
      // Entry index → original position (the same on a full cache; kept general).
      const attended = recorder.entries.map((heads, layer) =>
        heads.map((e, h) => (e < 0 ? -1 : cache.layers[layer].heads[Math.floor(h / group)].positions[e])),
      );
      addCopies(copies, attended, token, span, promptIds);
    },
  };
  return { copies, options };
}

/** A sample's scores: copies / needle tokens. */
export function copyScores(copies: readonly (readonly number[])[], span: NeedleSpan): number[][] {
  const needleTokens = span.end - span.start;
  return copies.map((row) => row.map((c) => c / needleTokens));
}

/**
 * The copies of every head while decoding given prompt ids with a given needle span: greedy (the probe's loop), or
 * on `force`d tokens (teacher forcing; test/heads/retrieval-oracle.test.ts feeds the official code's tokens).
 */
export function countCopies(lm: LoadedModel, promptIds: readonly number[], span: NeedleSpan, opts: { force?: readonly number[]; maxSteps?: number } = {}): { copies: number[][] } & IdsRun {
  const counter = copyCounter(lm.config);
  const run = decodeIds(lm, promptIds, span, { ...counter.options, ...opts });
  return { copies: counter.copies, ...run };
}

/** Decodes one instance and scores every head's copying on it. */
export function scoreSample(lm: LoadedModel, instance: TaskInstance): RetrievalSample {
  const counter = copyCounter(lm.config);
  const run = decodeNeedle(lm, instance, counter.options);
  return {
    scores: copyScores(counter.copies, run.span),
    prediction: run.prediction,
    answer: instance.answers[0],
    correct: run.accuracy > 0.5,
    promptTokens: run.promptIds.length,
    span: run.span,
  };
}

/**
 * The final score of each head: the mean of its sample scores over the samples the model answered (the official
 * `head_counter` holds one score per answered sample, `np.mean` of it); 0 when none was answered.
 */
export function meanOverAnswered(samples: readonly Pick<RetrievalSample, 'scores' | 'correct'>[], layers: number, heads: number): { scores: number[][]; answered: number } {
  const sum = zeroScores(layers, heads);
  let answered = 0;
  for (const sample of samples) {
    if (!sample.correct) continue;
    answered++;
    sample.scores.forEach((row, l) => row.forEach((v, h) => (sum[l][h] += v)));
  }
  return { scores: sum.map((row) => row.map((v) => (answered > 0 ? v / answered : 0))), answered };
}

export interface RetrievalGrid {
  lengths: number[];
  depths: number[];
  samples: number;
  seed: number;
}

/**
 * The grid a run covers, with the defaults above; one-line errors for values out of range (a length must leave
 * the model's `context` room to decode).
 */
export function retrievalGrid(options: ProbeOptions, context: number): RetrievalGrid {
  const lengths = [...(options.lengths ?? RETRIEVAL_LENGTHS)];
  const depths = [...(options.depths ?? RETRIEVAL_DEPTHS)];
  const samples = options.samples ?? RETRIEVAL_SAMPLES;
  const seed = options.seed ?? 0;
  check(lengths.length > 0 && lengths.every((l) => Number.isInteger(l) && l > 0 && l < context), `lengths must be whole numbers of tokens in 1…${context - 1} (the model has ${context} positions), got ${lengths.join(',')}`);
  check(depths.length > 0 && depths.every((d) => d >= 0 && d <= 1), `depths must lie in [0, 1], got ${depths.join(',')}`);
  check(Number.isInteger(samples) && samples > 0, `samples must be a whole number > 0, got ${samples}`);
  check(Number.isInteger(seed) && seed >= 0, `seed must be a whole number ≥ 0, got ${seed}`);
  return { lengths, depths, samples, seed };
}

/** The grid's points, seeds outermost (each needle over the whole grid, as the official loop runs them). */
export function gridPoints(grid: RetrievalGrid): { seed: number; contextLength: number; depth: number }[] {
  const out: { seed: number; contextLength: number; depth: number }[] = [];
  for (let s = 0; s < grid.samples; s++) {
    for (const contextLength of grid.lengths) for (const depth of grid.depths) out.push({ seed: grid.seed + s, contextLength, depth });
  }
  return out;
}

/** The niah_single instance of a grid point. */
export function needleInstance(lm: LoadedModel, point: { seed: number; contextLength: number; depth: number }): TaskInstance {
  return niahSingle.generate({ ...point, tokenizer: lm.tokenizer }) as TaskInstance;
}

/** The retrieval probe: every head's retrieval score over the grid. */
export function retrievalScores(lm: LoadedModel, options: ProbeOptions = {}): HeadScores {
  const { config } = lm;
  const grid = retrievalGrid(options, contextLength(config));
  const points = gridPoints(grid);
  const samples: RetrievalSample[] = [];
  const runs: Record<string, unknown>[] = [];
  points.forEach((point, i) => {
    const sample = scoreSample(lm, needleInstance(lm, point));
    samples.push(sample);
    const best = rankHeads(sample.scores)[0];
    runs.push({
      ...point,
      promptTokens: sample.promptTokens,
      needle: sample.span,
      answer: sample.answer,
      prediction: sample.prediction,
      correct: sample.correct,
      topHead: best.score > 0 ? best : null,
    });
    options.progress?.(i + 1, points.length);
  });
  const { scores, answered: counted } = meanOverAnswered(samples, config.numLayers, config.numHeads);
  return {
    probe: 'retrieval',
    model: lm.dir,
    layers: config.numLayers,
    heads: config.numHeads,
    scores,
    threshold: RETRIEVAL_THRESHOLD,
    samples: counted,
    details: { task: niahSingle.name, grid, attempted: points.length, answered: counted, runs },
  };
}

/** Heads above the threshold, highest first. */
export function retrievalHeads(result: Pick<HeadScores, 'scores' | 'threshold'>): { layer: number; head: number; score: number }[] {
  const threshold = result.threshold ?? RETRIEVAL_THRESHOLD;
  if (!Number.isFinite(threshold)) throw new AttendError(`threshold ${threshold} is not a number`);
  return rankHeads(result.scores).filter((h) => h.score > threshold);
}
