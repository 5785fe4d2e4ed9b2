/**
 * Speculative decoding with a draft model: Leviathan, Kalman and Matias 2023, "Fast Inference from Transformers
 * via Speculative Decoding" (ICML), and Chen, Borgeaud, Irving, Lespiau, Sifre and Jumper 2023, "Accelerating
 * Large Language Model Decoding with Speculative Sampling". A small draft model proposes K tokens one at a time;
 * the target scores the last accepted token and the K proposals in one forward of K + 1 rows, which costs little
 * more than one row because decoding reads the weights once either way. The output has exactly the target's
 * distribution (and under greedy decoding exactly its tokens); only the number of target forwards changes.
 *
 * The rule (Leviathan et al. Algorithm 1, Chen et al. Algorithm 2). With q_i the draft's distribution and p_i the
 * target's at proposal i, both after the same sampling processors (repetition penalty, temperature, top-k, top-p,
 * min-p: `Sampler.distribution`, the very code plain sampling draws from), proposals are checked left to right:
 * x_i is accepted with probability min(1, p_i(x_i) / q_i(x_i)); at the first rejection one token is drawn from
 * norm(max(0, p_i − q_i)) and the block ends; when all K are accepted, one bonus token is drawn from the target's
 * last row p_{K+1}. Each emitted token then has distribution p (the proof is Leviathan et al. Appendix A.1), so the
 * processed target distribution is what comes out, whatever the draft. Greedy decoding is the limit where p and q
 * are one-hot: a proposal is kept iff it is the target's argmax, and a rejection emits the target's argmax.
 * Exactness of greedy holds up to the kernels' rounding: a row of a (K+1)-row forward can differ from the same row
 * computed alone in the last bits (~3e-5 in attend-mini's logits on the WebAssembly path), which could only change
 * an argmax whose top two logits are that close.
 *
 * Caches: the target and the draft each keep their own KV cache, holding the same tokens at the same positions.
 * Rejected entries are taken back with `KVCache.trim` in both, so after a block both hold exactly the accepted
 * sequence (the draft may be one token behind after a fully accepted block; it catches up in its next forward).
 * Uniform draws (proposals, acceptance tests, residual and bonus draws) all come from the one seeded generator of
 * the `Sampler` (src/generate/random.ts), so a seed still fixes the output.
 *
 * Defaults and limits:
 * - K = 4 proposals per block (DEFAULT_DRAFT_TOKENS). Leviathan et al. (section 3.4, "Walltime improvement") give
 *   the expected speed-up (1 − α^(K+1)) / ((1 − α)(Kc + 1)) for a per-token acceptance rate α and a draft that
 *   costs c target forwards. Here c ≈ 0.15 (attend-mini-draft has 4.7 M parameters against attend-mini's 31 M,
 *   and decoding is bound by reading them); for α from 0.6 to 0.8 the formula peaks at K = 2 to 5 and K = 4 is
 *   within 5% of the peak throughout, in the range of small K the papers' experiments use. The measured rates
 *   on this project's models are in docs/performance.md ("Speculative decoding").
 * - K is lowered near the end: never more proposals than the tokens still allowed minus the one every block adds,
 *   and never past either model's context; with no room for one proposal a step is a plain decode step.
 * - Both models must share the tokenizer: the same vocabulary size, and the same ids for PROBE_TEXT.
 * - Press compression of the target's prompt (at the end of the prefill, or per chunk) works as without a draft;
 *   the draft keeps a full cache. Compression while decoding is refused for now (checkDraftCompression): the
 *   target's verification forward would feed rejected tokens' queries into the press statistics, which rolling
 *   back the entries cannot undo, so decode-time compression would no longer see what plain decoding sees.
 */
import { readOnce } from '../backend/backend.js';
import { check } from '../errors.js';
import type { KVCache } from '../cache/kv-cache.js';
import type { CompressionPlan } from '../presses/runner.js';
import type { LoadedModel } from '../models/load.js';
import { checkFiniteLogits } from './finite.js';
import type { Sampler } from './sampler.js';

/** Proposals per block when none is given (see the header for where 4 comes from). */
export const DEFAULT_DRAFT_TOKENS = 4;

/**
 * Text both tokenizers must encode to the same ids: letters, capitals, digits, spaces, a tab, newlines,
 * punctuation and non-ASCII characters, so that different merges, normalisers or byte fallbacks show up.
 */
export const PROBE_TEXT = 'Attend probe: The quick brown fox (no. 12345) jumps over 3 lazy dogs!\n\tnaïve café, 東京 — ±0.5%\n\n';

export interface DraftOptions {
  /** The draft model: the same tokenizer as the target, smaller and faster. */
  model: LoadedModel;
  /** Proposals per block, a whole number ≥ 1 (default DEFAULT_DRAFT_TOKENS). */
  tokens?: number;
  /**
   * The draft's cache, holding what the target's `cache` holds (needed when that one is given; a new one
   * otherwise). It is prefilled with the prompt alongside the target unless the prompt is already in both.
   */
  cache?: KVCache;
}

export interface SpeculativeStats {
  /** Proposals per block asked for (K). */
  draftTokens: number;
  /** Tokens the draft proposed, and how many of them the target accepted. */
  proposed: number;
  accepted: number;
  /** Target forwards while decoding: verification blocks, plus plain steps where no proposal fitted. */
  targetForwards: number;
  /** Draft forwards while decoding. */
  draftForwards: number;
  /** Time the draft took to prefill the prompt (included in the generation's prefillMs). */
  draftPrefillMs: number;
}

/** One-line errors unless `draft` can propose for `target`: the same vocabulary and the same tokenizer. */
export function checkDraftCompatible(target: LoadedModel, draft: LoadedModel): void {
  const tv = target.config.vocabSize;
  const dv = draft.config.vocabSize;
  check(tv === dv, `the draft model (${draft.dir}) has a vocabulary of ${dv} tokens and the target (${target.dir}) ${tv}: speculative decoding needs the same tokenizer`);
  const t = target.tokenizer.encode(PROBE_TEXT);
  const d = draft.tokenizer.encode(PROBE_TEXT);
  const same = t.length === d.length && t.every((id, i) => id === d[i]);
  check(same, `the draft model's tokenizer (${draft.dir}) encodes text differently from the target's (${target.dir}): speculative decoding needs the same tokenizer`);
}

/** Refuses decoding-time compression with a draft (see the header: rejected tokens would reach press statistics). */
export function checkDraftCompression(plan: CompressionPlan | undefined): void {
  const d = plan?.decode;
  check(
    !d || (d.every === undefined && d.maxSize === undefined),
    `a draft model (--draft) cannot be combined with compression while decoding (--compress-every, --compress-max, or ${plan?.press.name ?? 'a press'} evicting as it decodes) yet: only prefill compression`,
  );
}

export function validateDraftTokens(k: number): void {
  check(Number.isInteger(k) && k >= 1, `draft tokens must be a whole number ≥ 1, got ${k}`);
}

/**
 * A draw from a distribution over the vocabulary by inverse CDF with the uniform `u` in [0, 1): ids in ascending
 * order; the last id with mass if rounding leaves `u` above the total.
 */
export function drawFrom(p: Float64Array, u: number, total = 1): number {
  let rest = u * total;
  let last = -1;
  for (let i = 0; i < p.length; i++) {
    if (p[i] <= 0) continue;
    rest -= p[i];
    last = i;
    if (rest < 0) return i;
  }
  return last;
}

/**
 * The acceptance step for one proposal `x` drawn from `q`: kept with probability min(1, p(x)/q(x)); otherwise the
 * replacement is drawn from norm(max(0, p − q)). `uniform` gives draws in [0, 1).
 */
export function verifyProposal(p: Float64Array, q: Float64Array, x: number, uniform: () => number): { accepted: boolean; token: number } {
  // u < p/q, written without the division; q(x) > 0 since x was drawn from q.
  if (uniform() * q[x] < p[x]) return { accepted: true, token: x };
  const residual = new Float64Array(p.length);
  let total = 0;
  for (let i = 0; i < p.length; i++) {
    const r = p[i] - q[i];
    if (r > 0) {
      residual[i] = r;
      total += r;
    }
  }
  // A rejection has probability Σ max(0, q − p) = Σ max(0, p − q), so the residual has mass whenever one can
  // happen; only rounding (p ≈ q) can leave it empty, and then p itself is the right distribution.
  if (!(total > 0)) return { accepted: false, token: drawFrom(p, uniform()) };
  return { accepted: false, token: drawFrom(residual, uniform(), total) };
}

/**
 * One sequence's speculative decoding: the target and draft with their caches, which hold a prefix of the
 * sequence (`history`, where history[i] sits at position `offset + i`).
 */
export class SpeculativeDecoder {
  readonly stats: SpeculativeStats;
  private readonly k: number;

  constructor(
    private readonly target: LoadedModel,
    private readonly draft: LoadedModel,
    private readonly targetCache: KVCache,
    private readonly draftCache: KVCache,
    private readonly sampler: Sampler,
    private readonly offset: number,
    private readonly limits: { targetContext: number; draftContext: number },
    k = DEFAULT_DRAFT_TOKENS,
  ) {
    validateDraftTokens(k);
    this.k = k;
    this.stats = { draftTokens: k, proposed: 0, accepted: 0, targetForwards: 0, draftForwards: 0, draftPrefillMs: 0 };
  }

  /**
   * Proposals the next block can make when `remaining` tokens may still be emitted and the sequence (its last
   * token not yet in the target's cache) is `length` tokens long; 0 means a plain step.
   */
  proposalsFor(remaining: number, length: number): number {
    const end = this.offset + length; // positions the sequence fills
    // The target's forward writes the last token and K proposals: end + K ≤ its context. The draft writes all but
    // the last proposal: end + K − 1 ≤ its context. Every block emits one more token than it accepts.
    return Math.max(0, Math.min(this.k, remaining - 1, this.limits.targetContext - end, this.limits.draftContext - end + 1));
  }

  /**
   * Runs one block of `k` proposals after `history` (whose last token is not yet in the target's cache) and returns
   * the tokens it decides: the accepted proposals and one more (the residual draw or the bonus token), k + 1 at
   * most. Both caches end holding the sequence up to, not including, the last returned token.
   */
  block(history: readonly number[], k: number): number[] {
    const start = this.offset + history.length - 1; // the position of the last token
    check(this.targetCache.nextPosition === start, `speculative block: the target's cache is at position ${this.targetCache.nextPosition}, expected ${start}`);
    check(this.draftCache.nextPosition <= start, `speculative block: the draft's cache is ahead of the sequence`);
    const seen = [...history];

    // The draft proposes k tokens, one forward each; its first forward also catches up on what it has not seen.
    const proposals: number[] = [];
    const qs: Float64Array[] = [];
    let input = history.slice(this.draftCache.nextPosition - this.offset);
    for (let i = 0; i < k; i++) {
      const logits = readOnce(this.draft.model.backend, this.draft.model.forward(input, this.draftCache, { lastOnly: true }));
      this.stats.draftForwards++;
      checkFiniteLogits(logits, `the draft model, position ${start + i}`);
      const q = this.sampler.distribution(logits, seen);
      const x = drawFrom(q, this.sampler.uniform());
      qs.push(q);
      proposals.push(x);
      seen.push(x);
      input = [x];
    }

    // The target scores the last token and every proposal in one forward: row i is p for proposal i (row k: bonus).
    const vocab = this.target.config.vocabSize;
    const rows = readOnce(this.target.model.backend, this.target.model.forward([history[history.length - 1], ...proposals], this.targetCache));
    this.stats.targetForwards++;
    checkFiniteLogits(rows, (row) => `speculative verification (position ${row})`, vocab, start);
    this.stats.proposed += k;

    const out: number[] = [];
    const prefix = [...history];
    let rejected = false;
    for (let i = 0; i < k && !rejected; i++) {
      const p = this.sampler.distribution(rows.subarray(i * vocab, (i + 1) * vocab), prefix);
      const verdict = verifyProposal(p, qs[i], proposals[i], () => this.sampler.uniform());
      out.push(verdict.token);
      prefix.push(verdict.token);
      if (verdict.accepted) this.stats.accepted++;
      else rejected = true;
    }
    // All accepted: the bonus token from the target's last row, drawn as plain sampling draws.
    if (!rejected) out.push(this.sampler.sample(rows.subarray(k * vocab, (k + 1) * vocab), prefix));
    // Keep the last token and the accepted proposals; the token returned last is not in either cache yet.
    const keep = start + out.length;
    this.targetCache.trim(keep);
    this.draftCache.trim(Math.min(keep, this.draftCache.nextPosition));
    return out;
  }
}
