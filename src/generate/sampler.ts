/**
 * Turns a row of logits into the next token, in the order transformers applies its processors: repetition
 * penalty, then temperature, top-k, top-p and min-p, then a draw (or argmax when greedy).
 *
 * Temperature is applied as (score - max) / T in float64: the best token scores 0 and every other score is
 * negative, so no T > 0 overflows (at T = 1e-38 the others go to -1e38 or -Infinity, whose exp is 0: greedy in
 * effect). Logits holding NaN or ±Infinity are refused (see finite.ts), never sampled.
 */
import { AttendError, check } from '../errors.js';
import { checkFiniteLogits } from './finite.js';
import { Random } from './random.js';

export interface SamplingOptions {
  /** 0 means greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  /** CTRL's penalty: > 1 discourages tokens already in the sequence. */
  repetitionPenalty?: number;
  seed?: number;
}

export function validateSampling(o: SamplingOptions): void {
  const bad = (what: string) => {
    throw new AttendError(what);
  };
  if (o.temperature !== undefined && !(o.temperature >= 0 && Number.isFinite(o.temperature))) {
    bad(`temperature must be a finite number ≥ 0, got ${o.temperature}`);
  }
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) bad(`top-k must be a whole number ≥ 0, got ${o.topK}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) bad(`top-p must be in (0, 1], got ${o.topP}`);
  if (o.minP !== undefined && !(o.minP >= 0 && o.minP <= 1)) bad(`min-p must be in [0, 1], got ${o.minP}`);
  if (o.repetitionPenalty !== undefined) {
    check(o.repetitionPenalty > 0, `repetition penalty must be > 0, got ${o.repetitionPenalty}`);
  }
}

export class Sampler {
  private readonly random: Random;

  constructor(private readonly opts: SamplingOptions) {
    validateSampling(opts);
    this.random = new Random(opts.seed ?? (Math.random() * 2 ** 32) >>> 0);
  }

  get greedy(): boolean {
    return !this.opts.temperature;
  }

  /** Picks the next token; `history` is every id of the sequence so far (prompt included, as transformers does). */
  sample(logits: Float32Array, history: ArrayLike<number>): number {
    const c = this.candidates(logits, history);
    if (typeof c === 'number') return c;
    const { order, probs } = c;
    let u = this.random.next();
    for (let i = 0; i < order.length; i++) {
      u -= probs[i];
      if (u < 0) return order[i];
    }
    return order[order.length - 1];
  }

  /**
   * The distribution `sample` draws from, after the same processors, as probabilities over the whole vocabulary
   * (one-hot at the argmax when greedy). Speculative decoding compares the target's and the draft's this way, so
   * that both are processed exactly as plain sampling processes them.
   */
  distribution(logits: Float32Array, history: ArrayLike<number>): Float64Array {
    const c = this.candidates(logits, history);
    const p = new Float64Array(logits.length);
    if (typeof c === 'number') p[c] = 1;
    else c.order.forEach((id, i) => (p[id] = c.probs[i]));
    return p;
  }

  /** The next uniform draw in [0, 1) from this sampler's seeded generator (speculative decoding draws from it too). */
  uniform(): number {
    return this.random.next();
  }

  /** The processors applied to `logits`: the greedy token, or the candidates best first with their probabilities. */
  private candidates(logits: Float32Array, history: ArrayLike<number>): number | { order: number[]; probs: number[] } {
    checkFiniteLogits(logits, 'sampler');
    const scores = Float32Array.from(logits);
    const penalty = this.opts.repetitionPenalty ?? 1;
    if (penalty !== 1) {
      for (const id of new Set(Array.from(history))) {
        scores[id] = scores[id] < 0 ? scores[id] * penalty : scores[id] / penalty;
      }
    }
    if (this.greedy) return argmax(scores);
    const t = this.opts.temperature!;
    const max = scores[argmax(scores)];
    const scaled = new Float64Array(scores.length);
    for (let i = 0; i < scores.length; i++) scaled[i] = (scores[i] - max) / t;
    // Candidates sorted by score, best first; each filter shortens the list.
    let order = Array.from(scaled.keys()).sort((a, b) => scaled[b] - scaled[a]);
    const k = this.opts.topK ?? 0;
    if (k > 0 && k < order.length) order = order.slice(0, k);
    let probs = softmaxOf(scaled, order);
    const topP = this.opts.topP ?? 1;
    if (topP < 1) {
      let cumulative = 0;
      let keep = 0;
      while (keep < order.length && cumulative < topP) cumulative += probs[keep++];
      order = order.slice(0, Math.max(1, keep));
      probs = softmaxOf(scaled, order);
    }
    const minP = this.opts.minP ?? 0;
    if (minP > 0) {
      const threshold = minP * probs[0];
      const keep = Math.max(1, probs.findIndex((p) => p < threshold) === -1 ? probs.length : probs.findIndex((p) => p < threshold));
      order = order.slice(0, keep);
      probs = softmaxOf(scaled, order);
    }
    return { order, probs };
  }
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

function softmaxOf(scores: Float64Array, order: number[]): number[] {
  const max = scores[order[0]];
  const e = order.map((i) => Math.exp(scores[i] - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}
