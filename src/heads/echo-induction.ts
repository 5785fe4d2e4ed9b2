/**
 * Echo and induction heads (Tang et al. 2024, "RazorAttention: Efficient KV Cache Compression Through Retrieval
 * Heads", arXiv 2407.15891, Sec. 3.3). The paper publishes no code of its own; the rules below follow the paper and
 * the authors' company's implementations of it: Huawei msModelSlim's RARopeCompressor
 * (msmodelslim/pytorch/ra_compression, 2024), and MindSpore Golden Stick's RazorAttention
 * (mindspore_gs/sequence_compress/razor_attention, 2025), which applies the same masks but averages over the whole
 * attention matrix (a constant factor: the same ranking).
 *
 * Rules and defaults:
 *  - the input: `length` = 2500 random token ids, the whole block repeated `repeats` = 4 times (paper Sec. 3.3;
 *    DUMMY_INPUT_LENGTH, REPET_TIMES), after one leading token, the model's BOS where its config names one (Golden
 *    Stick prepends bos_token_id; msModelSlim the last id the tokenizer gives for ''). The ids are drawn uniformly from
 *    [low, low + length], both ends included, low = 10000 (`randint(10000, 10000 + DUMMY_INPUT_LENGTH)`), so the
 *    block may hold a few ids twice, as there;
 *  - the leading token's row and column are left out (`out[1:, 1:]`); with i the index in the random part, the query
 *    rows i ≥ length (the repeats) are scored;
 *  - echo score of a row: the attention it gives to every earlier occurrence of its token at the same place in an
 *    earlier copy, j = i − length, i − 2·length, … ≥ 0, summed; induction score: the attention to the token right
 *    after each of those, j + 1, summed (copying / prefix-matching scores there);
 *  - a head's score: the mean of its rows' scores, per query head (the official code scores every query head
 *    against its repeated KV head);
 *  - retrieval heads (retrievalHeads): per KV head the maximum over its group of query heads (`max_every_group`);
 *    over all layers × KV heads, the top 14% by induction score and the top 1% by echo score (RETRIEVAL_SHARES;
 *    paper Sec. 3.3: top 14% induction heads and top 1% echo heads; induction_head_ratio=0.14,
 *    echo_head_ratio=0.01 in both implementations); k = round(units · share) with Python's round (half to even),
 *    and every unit whose score equals one of the top k values is taken (ties in); the retrieval heads are the union
 *    of both sets.
 * Attend's choices: the ids come from a seeded generator (`seed`, default 0) rather than an unseeded one, so that a
 * probe is repeatable, and `samples` > 1 averages the scores over as many sequences (seeds seed, seed + 1, …; the
 * official code runs one); the attention is read block by block through an AttentionObserver during a chunked
 * prefill on a fresh cache, where a head's entry index is the token's position, never as a tokens × tokens matrix.
 * HeadScores.scores are per query head; HeadScores.threshold is the best score among the KV heads the share leaves
 * out (query heads above it belong to chosen KV heads), and details.retrievalHeads the union of both selections.
 * The official 2500 ids from 10000 on assume a large vocabulary and a long-context model: on attend-mini (16k
 * vocabulary) those ids are rare tokens and the 10,001 positions run past its 8,192-token context, and no head
 * stands out; shorter copies (`lengths` 64; common ids with `low` 1000) show its induction heads.
 */
import type { AttentionBlock, AttentionObserver } from '../backend/backend.js';
import { check } from '../errors.js';
import { prefill } from '../generate/prefill.js';
import { Random } from '../generate/random.js';
import type { ModelConfig } from '../models/config.js';
import type { LoadedModel } from '../models/load.js';
import { roundHalfEven } from '../presses/lukv.js'; // Python's round(), as the selection shares are computed
import type { HeadScores, ProbeOptions } from './probe.js';

export interface EchoInductionOptions {
  /** Random tokens per copy (2500). */
  length?: number;
  /** Copies of the block (4). */
  repeats?: number;
  /** Lowest token id drawn (10000); ids go up to low + length. */
  low?: number;
  seed?: number;
  /** Prefill chunk (tokens per forward). */
  chunkSize?: number;
}

export const ECHO_INDUCTION_DEFAULTS = { length: 2500, repeats: 4, low: 10000, seed: 0, chunkSize: 512 };

/** The probe's input: `ids` = [lead token?] + block × repeats; `offset` is where the random part starts. */
export interface RepeatedTokens {
  ids: number[];
  offset: number;
  length: number;
  repeats: number;
}

/** Model dimensions a recorder needs. */
type Shape = Pick<ModelConfig, 'numLayers' | 'numHeads' | 'numKvHeads'>;

/** The paper's input: `length` random ids in [low, low + length] repeated `repeats` times, after the BOS if any. */
export function repeatedRandomTokens(vocabSize: number, bos: number | undefined, opts: EchoInductionOptions = {}): RepeatedTokens {
  const { length, repeats, low, seed } = { ...ECHO_INDUCTION_DEFAULTS, ...defined(opts) };
  check(Number.isInteger(length) && length >= 2, `echo/induction: length must be a whole number ≥ 2, got ${length}`);
  check(Number.isInteger(repeats) && repeats >= 2, `echo/induction: repeats must be a whole number ≥ 2, got ${repeats}`);
  check(Number.isInteger(low) && low >= 0, `echo/induction: low must be a token id, got ${low}`);
  check(low + length < vocabSize, `echo/induction: ids up to ${low + length} do not fit a vocabulary of ${vocabSize} (lower 'low' or 'length')`);
  const random = new Random(seed);
  const block = Array.from({ length }, () => low + Math.floor(random.next() * (length + 1)));
  const lead = bos === undefined ? [] : [bos];
  return { ids: [...lead, ...Array.from({ length: repeats }, () => block).flat()], offset: lead.length, length, repeats };
}

/**
 * Sums, per layer and query head, the echo and induction attention of the repeat rows as blocks stream by. Needs
 * blocks over a fresh cache (entry index = position) and whole KV groups (no per-query-head entry lists).
 */
export class EchoInductionRecorder implements AttentionObserver {
  readonly echo: Float64Array[];
  readonly induction: Float64Array[];
  /** Repeat rows seen, per layer and query head. */
  readonly rows: Float64Array[];

  constructor(
    private readonly shape: Shape,
    private readonly layout: Omit<RepeatedTokens, 'ids'>,
  ) {
    const make = () => Array.from({ length: shape.numLayers }, () => new Float64Array(shape.numHeads));
    this.echo = make();
    this.induction = make();
    this.rows = make();
  }

  observe(block: AttentionBlock): void {
    const group = this.shape.numHeads / this.shape.numKvHeads;
    check(block.groupSize === group, `echo/induction reads whole KV groups (${group} query heads), got a block of ${block.groupSize}`);
    const { offset, length, repeats } = this.layout;
    const { probs, cols, queryPositions } = block;
    for (let t = 0; t < queryPositions.length; t++) {
      const i = queryPositions[t] - offset;
      if (i < length || i >= length * repeats) continue;
      for (let g = 0; g < group; g++) {
        const h = block.kvHead * group + g;
        const row = (t * group + g) * cols;
        let echo = 0;
        let induction = 0;
        for (let j = i - length; j >= 0; j -= length) {
          echo += probs[row + offset + j];
          induction += probs[row + offset + j + 1];
        }
        this.echo[block.layer][h] += echo;
        this.induction[block.layer][h] += induction;
        this.rows[block.layer][h] += 1;
      }
    }
  }

  /** Mean per repeat row, layer × query head. */
  scores(): { echo: number[][]; induction: number[][] } {
    const mean = (sums: Float64Array[]) => sums.map((s, l) => Array.from(s, (v, h) => (this.rows[l][h] > 0 ? v / this.rows[l][h] : 0)));
    return { echo: mean(this.echo), induction: mean(this.induction) };
  }
}

/**
 * Echo and induction scores of every head: one repeated-random-token prefill per sample (seeds seed, seed + 1, …;
 * the official code runs one), the scores averaged over the samples. `progress` is called after each sample.
 */
export function echoInductionScores(
  lm: LoadedModel,
  opts: EchoInductionOptions & { samples?: number } = {},
  progress?: (done: number, total: number) => void,
): { echo: HeadScores; induction: HeadScores } {
  const o = { ...ECHO_INDUCTION_DEFAULTS, samples: 1, ...defined(opts) };
  check(Number.isInteger(o.chunkSize) && o.chunkSize > 0, `echo/induction: chunkSize must be a whole number > 0, got ${o.chunkSize}`);
  check(Number.isInteger(o.samples) && o.samples > 0, `echo/induction: samples must be a whole number > 0, got ${o.samples}`);
  check(Number.isInteger(o.seed) && o.seed >= 0, `echo/induction: seed must be a whole number ≥ 0, got ${o.seed}`);
  const c = lm.config;
  const sum = { echo: zeros(c.numLayers, c.numHeads), induction: zeros(c.numLayers, c.numHeads) };
  let tokens = 0;
  for (let s = 0; s < o.samples; s++) {
    const input = repeatedRandomTokens(c.vocabSize, c.bosTokenId, { ...o, seed: o.seed + s });
    tokens = input.ids.length;
    const recorder = new EchoInductionRecorder(c, input);
    prefill(lm.model, lm.model.makeCache(), input.ids, { chunkSize: o.chunkSize, observer: recorder });
    const got = recorder.scores();
    for (const kind of ['echo', 'induction'] as const) got[kind].forEach((row, l) => row.forEach((x, h) => (sum[kind][l][h] += x / o.samples)));
    progress?.(s + 1, o.samples);
  }
  const group = c.numHeads / c.numKvHeads;
  const details = { length: o.length, repeats: o.repeats, low: o.low, seed: o.seed, tokens, group };
  const make = (probe: 'echo' | 'induction'): HeadScores => ({
    probe,
    model: lm.dir,
    layers: c.numLayers,
    heads: c.numHeads,
    scores: sum[probe],
    threshold: selectionThreshold(groupMax(sum[probe], group), RETRIEVAL_SHARES[probe]),
    samples: o.samples,
    details: { ...details, share: RETRIEVAL_SHARES[probe], retrievalHeads: retrievalHeads(sum.echo, sum.induction, group) },
  });
  return { echo: make('echo'), induction: make('induction') };
}

/** The registry's entry point: `lengths` = [block length], `samples`, `seed`; no depths. */
export function runEchoInduction(lm: LoadedModel, options: ProbeOptions): { echo: HeadScores; induction: HeadScores } {
  check(options.depths === undefined, 'echo/induction: no needle depths (the input is random tokens repeated)');
  check(options.lengths === undefined || options.lengths.length === 1, 'echo/induction: give one length (random tokens per copy)');
  return echoInductionScores(lm, { length: options.lengths?.[0], samples: options.samples, seed: options.seed }, options.progress);
}

/** The options that are set: an option passed as undefined keeps its default. */
export function defined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function zeros(layers: number, heads: number): number[][] {
  return Array.from({ length: layers }, () => new Array<number>(heads).fill(0));
}

/** The paper's shares of KV heads kept as retrieval heads (Sec. 3.3; echo_head_ratio, induction_head_ratio). */
export const RETRIEVAL_SHARES = { echo: 0.01, induction: 0.14 };

export interface RetrievalHead {
  layer: number;
  kvHead: number;
  echo: boolean;
  induction: boolean;
}

/**
 * The retrieval heads by KV head: the top `induction` share by induction score and the top `echo` share by echo
 * score, each over all layers × KV heads after a max over each KV head's query heads; their union, by layer then head.
 */
export function retrievalHeads(
  echo: number[][],
  induction: number[][],
  group: number,
  shares: { echo?: number; induction?: number } = {},
): RetrievalHead[] {
  const s = { ...RETRIEVAL_SHARES, ...shares };
  for (const [name, v] of Object.entries(s)) check(v >= 0 && v <= 1, `retrieval heads: the ${name} share must be in [0, 1], got ${v}`);
  const e = groupMax(echo, group);
  const ind = groupMax(induction, group);
  const eCut = shareCut(e, s.echo);
  const iCut = shareCut(ind, s.induction);
  const out: RetrievalHead[] = [];
  e.forEach((row, layer) =>
    row.forEach((_, kvHead) => {
      const isEcho = eCut !== undefined && e[layer][kvHead] >= eCut;
      const isInduction = iCut !== undefined && ind[layer][kvHead] >= iCut;
      if (isEcho || isInduction) out.push({ layer, kvHead, echo: isEcho, induction: isInduction });
    }),
  );
  return out;
}

/** Per layer, the maximum over each run of `group` query heads (one KV head's group). */
export function groupMax(scores: number[][], group: number): number[][] {
  check(Number.isInteger(group) && group >= 1, `group must be a whole number ≥ 1, got ${group}`);
  return scores.map((row) => Array.from({ length: Math.ceil(row.length / group) }, (_, g) => Math.max(...row.slice(g * group, (g + 1) * group))));
}

/**
 * The lowest score still in the top `share` of all units (k = round(units · share), half to even as Python rounds);
 * undefined when k is 0. Every unit scoring at least this is in: the official code takes the units whose value is
 * among the top k values, ties included.
 */
export function shareCut(scores: number[][], share: number): number | undefined {
  const all = scores.flat().sort((a, b) => b - a);
  const k = roundHalfEven(all.length * share);
  return k === 0 ? undefined : all[Math.min(k, all.length) - 1];
}

/**
 * HeadScores.threshold for a share: the best score among the KV heads left out, so that the query heads scoring above
 * it are the chosen KV heads' own; when none is chosen, the top score (no head above); when all are, undefined.
 */
export function selectionThreshold(scores: number[][], share: number): number | undefined {
  const all = scores.flat();
  const cut = shareCut(scores, share);
  if (cut === undefined) return Math.max(...all);
  const left = all.filter((x) => x < cut);
  return left.length === 0 ? undefined : Math.max(...left);
}

