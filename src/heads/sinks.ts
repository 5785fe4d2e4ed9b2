/**
 * Hidden attention sinks (Yu et al. 2024, "Unveiling and Harnessing Hidden Attention Sinks: Enhancing Large
 * Language Models without Training through Attention Calibration", ICML 2024, arXiv 2406.15765; official code
 * GATECH-EIC/ACT, models/llama_modelling_aug.py `atten_process_cal` / `atten_process_eval`): tokens after the first
 * that draw a disproportionate share of a head's attention over a prompt.
 *
 * Rule, as the official code detects the sinks it then calibrates:
 *  - per query head, over the prompt's attention map (every query row of the prefill), a key's score is the
 *    attention it receives summed over the query rows, divided by the number of rows that can see it causally
 *    (`sum(dim=0) / arange(N, 0, -1)`: N − k rows for the key at position k): its mean received attention;
 *  - a key is a sink when that mean exceeds `threshold` = 0.1 (THRES=0.1 in scripts/calibration.sh and
 *    scripts/evaluation.sh; the MT-Bench script uses 0.15);
 *  - the first key that passes is not counted (`indices = indices[1:]`): the first token wherever that token is
 *    itself a sink, as it is in every trained model (the attention sink of StreamingLLM); the paper's hidden sinks are
 *    the ones after it. When the first token does not pass, the first hidden sink is the one left out, as there.
 * Checked against the official code (GATECH-EIC/ACT at a267af7, models/llama_modelling_aug.py): the threshold is the
 * fixed THRES on the mean received attention, with no dependence on the prompt's length (an earlier version of this
 * file also offered a multiple α of 1/N, from summaries of the paper: the official code has no such form, and it was
 * removed). On short prompts the rule flags many heads: the last keys are seen by few rows, so their mean is the
 * attention of a row or two (the key N − 1 is a sink when the last row gives itself more than 0.1), as in the
 * official code, which runs it on prompts of a few dozen to a few hundred tokens.
 * A head's score (HeadScores.scores) is the largest mean received attention of any key but the first that passes
 * (of every key when none does), averaged over the prompts: above the threshold on a prompt exactly when the head has
 * a hidden sink there (HeadScores.threshold is the same 0.1). Per prompt the details list each head's sinks
 * (position, token id, mean received attention) and the share of the head's attention mass, over all query rows,
 * that lands on them. Attention is read block by block through an AttentionObserver during a chunked prefill on a
 * fresh cache (entry index = position), never as a tokens × tokens matrix.
 */
import type { AttentionBlock, AttentionObserver } from '../backend/backend.js';
import { check } from '../errors.js';
import { prefill } from '../generate/prefill.js';
import type { ModelConfig } from '../models/config.js';
import type { LoadedModel } from '../models/load.js';
import type { HeadScores, ProbeOptions } from './probe.js';

export interface SinkOptions {
  /** A key is a sink when its mean received attention exceeds this (0.1). */
  threshold?: number;
  /** Prefill chunk (tokens per forward). */
  chunkSize?: number;
}

/** THRES of the official scripts (scripts/calibration.sh, scripts/evaluation.sh). */
export const SINK_THRESHOLD = 0.1;
export const SINK_DEFAULTS = { threshold: SINK_THRESHOLD, chunkSize: 512 };

/**
 * The official selection over one head's keys: the indices whose mean received attention exceeds `threshold`,
 * ascending, the first of them left out (`indices[1:]`). `means[k]` is key k's received attention divided by the
 * number of rows that see it.
 */
export function sinkIndices(means: ArrayLike<number>, threshold: number): number[] {
  const out: number[] = [];
  for (let k = 0; k < means.length; k++) if (means[k] > threshold) out.push(k);
  return out.slice(1);
}

export interface Sink {
  position: number;
  /** Mean attention the key receives from the query rows that see it. */
  mean: number;
}

/** One prompt's sinks: per layer, per query head, ascending positions. */
export interface PromptSinks {
  tokens: number;
  threshold: number;
  sinks: Sink[][][];
  /** Per layer and query head: share of the attention mass (all N query rows) on the hidden sinks. */
  share: number[][];
  /** Per layer and query head: the largest mean received attention of a key but the first that passes. */
  strongest: number[][];
}

type Shape = Pick<ModelConfig, 'numLayers' | 'numHeads' | 'numKvHeads'>;

/**
 * Adds up, per layer and query head, the attention each key of one prompt receives, as blocks stream by (blocks over
 * a fresh cache holding only this prompt: entry index = position; whole KV groups).
 */
export class SinkRecorder implements AttentionObserver {
  /** [layer][query head] → received attention per position. */
  readonly received: Float64Array[][];

  constructor(
    private readonly shape: Shape,
    /** The prompt's length (a field named `tokens` would read as AttentionObserver.tokens). */
    readonly length: number,
  ) {
    this.received = Array.from({ length: shape.numLayers }, () => Array.from({ length: shape.numHeads }, () => new Float64Array(length)));
  }

  observe(block: AttentionBlock): void {
    const group = this.shape.numHeads / this.shape.numKvHeads;
    check(block.groupSize === group, `sinks reads whole KV groups (${group} query heads), got a block of ${block.groupSize}`);
    const { probs, cols } = block;
    const n = Math.min(cols, this.length);
    for (let t = 0; t < block.queryPositions.length; t++) {
      for (let g = 0; g < group; g++) {
        const sum = this.received[block.layer][block.kvHead * group + g];
        const row = (t * group + g) * cols;
        for (let k = 0; k < n; k++) sum[k] += probs[row + k];
      }
    }
  }

  /** The sinks by the official rule: mean received over the N − k rows that see key k, above the threshold. */
  sinks(opts: SinkOptions = {}): PromptSinks {
    const o = { ...SINK_DEFAULTS, ...defined(opts) };
    const n = this.length;
    const threshold = o.threshold;
    const strongest = this.received.map((layer) => layer.map(() => 0));
    const sinks = this.received.map((layer, l) =>
      layer.map((sum, h) => {
        const means = Float64Array.from(sum, (x, k) => x / (n - k));
        const found = sinkIndices(means, threshold);
        // The key the rule leaves out: the first that passes, or none.
        const left = means.findIndex((m) => m > threshold);
        strongest[l][h] = means.reduce((best, m, k) => (k === left ? best : Math.max(best, m)), 0);
        return found.map((position) => ({ position, mean: means[position] }));
      }),
    );
    const share = sinks.map((layer, l) => layer.map((found, h) => found.reduce((s, x) => s + this.received[l][h][x.position], 0) / n));
    return { tokens: n, threshold, sinks, share, strongest };
  }
}

/** The hidden sinks of one prompt (token ids, run from position 0 on a fresh cache). */
export function promptSinks(lm: LoadedModel, ids: ArrayLike<number>, opts: SinkOptions = {}): PromptSinks {
  const o = { ...SINK_DEFAULTS, ...defined(opts) };
  check(o.threshold >= 0 && o.threshold <= 1, `sinks: threshold must be in [0, 1], got ${o.threshold}`);
  check(Number.isInteger(o.chunkSize) && o.chunkSize > 0, `sinks: chunkSize must be a whole number > 0, got ${o.chunkSize}`);
  const recorder = new SinkRecorder(lm.config, ids.length);
  prefill(lm.model, lm.model.makeCache(), ids, { chunkSize: o.chunkSize, observer: recorder });
  return recorder.sinks(o);
}

/** Prompts used when none are given: plain English of a few sentences each, with punctuation and line breaks. */
export const SINK_PROMPTS = [
  'The museum opens at nine. Tickets cost twelve euros, and the guided tour starts at ten.\nVisitors may leave bags at the desk.',
  'Question: Which planet is closest to the sun?\nA. Venus\nB. Mercury\nC. Mars\nD. Earth\nAnswer:',
  'She read the letter twice, folded it, and put it back in the drawer. Then, without a word, she left the house.',
];

/**
 * Hidden sinks of every head over `prompts` (texts, encoded with the model's tokenizer as the official code encodes
 * its prompts, BOS included where the tokenizer adds one). `progress` is called after each prompt.
 */
export function sinkScores(
  lm: LoadedModel,
  prompts: readonly string[] = SINK_PROMPTS,
  opts: SinkOptions = {},
  progress?: (done: number, total: number) => void,
): HeadScores {
  check(prompts.length > 0, 'sinks: no prompts');
  const c = lm.config;
  const perPrompt = prompts.map((text, i) => {
    const ids = lm.tokenizer.encode(text);
    check(ids.length >= 2, `sinks: the prompt ${JSON.stringify(text.slice(0, 40))} has fewer than 2 tokens`);
    const found = promptSinks(lm, ids, opts);
    progress?.(i + 1, prompts.length);
    return { ids, found };
  });
  const scores = Array.from({ length: c.numLayers }, (_, l) =>
    Array.from({ length: c.numHeads }, (_, h) => perPrompt.reduce((s, p) => s + p.found.strongest[l][h], 0) / perPrompt.length),
  );
  const o = { ...SINK_DEFAULTS, ...defined(opts) };
  return {
    probe: 'sinks',
    model: lm.dir,
    layers: c.numLayers,
    heads: c.numHeads,
    scores,
    threshold: o.threshold,
    samples: prompts.length,
    details: {
      rule: `mean received attention > ${o.threshold}, the first key that passes left out`,
      prompts: perPrompt.map(({ ids, found }) => ({
        tokens: found.tokens,
        threshold: found.threshold,
        // Only the heads that have hidden sinks, each sink with its token id.
        heads: found.sinks.flatMap((layer, l) =>
          layer.flatMap((sinks, h) =>
            sinks.length === 0 ? [] : [{ layer: l, head: h, share: found.share[l][h], sinks: sinks.map((s) => ({ ...s, token: ids[s.position] })) }],
          ),
        ),
      })),
    },
  };
}

/** The options that are set: an option passed as undefined keeps its default. */
function defined(options: SinkOptions): SinkOptions {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
}

/** The registry's entry point: `samples` = how many of the built-in prompts (all of them by default); no grid. */
export function runSinks(lm: LoadedModel, options: ProbeOptions): HeadScores {
  check(options.lengths === undefined && options.depths === undefined, 'sinks: no lengths or depths (it reads the built-in prompts)');
  check(options.seed === undefined, 'sinks: no seed (the prompts are fixed)');
  const n = options.samples ?? SINK_PROMPTS.length;
  check(Number.isInteger(n) && n >= 1 && n <= SINK_PROMPTS.length, `sinks: samples must be 1…${SINK_PROMPTS.length} (built-in prompts), got ${n}`);
  return sinkScores(lm, SINK_PROMPTS.slice(0, n), {}, options.progress);
}
