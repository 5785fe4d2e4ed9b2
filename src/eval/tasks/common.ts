/**
 * What every task generator shares: seeded random streams, the prompt layout of tools/train/tasks.py, and the
 * fitting of a prompt to a token length.
 *
 * - Seeds: an instance draws from `taskRandom(task, seed, stream)`, a `Random` seeded by a hash of the three; the
 *   'content' stream (template, keys, values, needle depths) does not depend on the length or depth, so a sweep
 *   over lengths or depths moves the same needle through haystacks of another size; the 'haystack' stream draws
 *   the haystack alone.
 * - Layout (tasks.py `_assemble`): `{intro}\n\n{haystack}\n\n{question}\nAnswer:`. The context is
 *   `{intro}\n\n{haystack}` and the question is `\n\n{question}\nAnswer:`: with the blank line on the question's
 *   side, tokenizing context (with BOS) and question (without special tokens) apart gives the same ids as the whole
 *   prompt at once (a trailing "\n\n" would be one token alone but two before a word).
 * - Length: tokens are counted as the sweep runner feeds them, encode(context) + encode(question, no specials);
 *   `fitLength` finds the largest haystack with at most `contextLength` tokens (RULER and tasks.py search the
 *   haystack size the same way), stopping within 1% of it.
 */
import { AttendError } from '../../errors.js';
import { Random } from '../../generate/random.js';
import type { TextTokenizer } from '../../io/tokenizer.js';

export const ANSWER_CUE = 'Answer:';

/** Tokens generated beyond the reference answer (room for a short preamble or another separator). */
export const EXTRA_NEW_TOKENS = 12;

/** FNV-1a over the UTF-16 code units, then a murmur3 finalizer. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** The random stream `stream` of instance `seed` of `task`. */
export function taskRandom(task: string, seed: number, stream: 'content' | 'haystack'): Random {
  return new Random(hash32(`${task}|${seed}|${stream}`));
}

/** A random number with exactly `digits` digits (no leading zero). */
export function randomNumber(rng: Random, digits: number): string {
  const lo = 10 ** (digits - 1);
  return String(lo + Math.floor(rng.next() * 9 * lo));
}

export interface PromptParts {
  context: string;
  question: string;
}

/** tasks.py `_assemble`, split before the question (see the top of this file). */
export function assemble(intro: string, body: string, question: string): PromptParts {
  return { context: `${intro}\n\n${body.trimEnd()}`, question: `\n\n${question}\n${ANSWER_CUE}` };
}

/** Prompt tokens as the sweep runner counts them: the context with BOS, then the question without. */
export function promptTokens(tokenizer: TextTokenizer, parts: PromptParts): number {
  return tokenizer.encode(parts.context).length + tokenizer.encode(parts.question, { addSpecialTokens: false }).length;
}

/** maxNewTokens for an answer: its tokens (as a continuation after "Answer:") plus EXTRA_NEW_TOKENS. */
export function newTokensFor(tokenizer: TextTokenizer, answerText: string): number {
  return tokenizer.encode(' ' + answerText, { addSpecialTokens: false }).length + EXTRA_NEW_TOKENS;
}

export interface Fit<T> {
  /** How many units the prompt uses. */
  n: number;
  tokens: number;
  value: T;
}

/**
 * The largest n in [0, maxN] whose prompt `build(n)` has at most `limit` tokens (`count` of the built value), found
 * by interpolating on `weight(n)`, a monotone estimate of the tokens of n units (characters / 4 for text), with
 * a bisection step every third probe. Stops within 1% below the limit. Throws when even n = 0 does not fit.
 * `n === maxN` means the units ran out: the caller should supply more.
 */
export function fitLength<T>(
  limit: number,
  maxN: number,
  build: (n: number) => T,
  count: (value: T) => number,
  weight: (n: number) => number,
  what: string,
): Fit<T> {
  const probe = (n: number) => {
    const value = build(n);
    return { n, value, tokens: count(value) };
  };
  let lo = probe(0);
  if (lo.tokens > limit) throw new AttendError(`${what}: cannot fit into ${limit} tokens (the prompt alone has ${lo.tokens})`);
  const base = lo.tokens;
  let hi: { n: number; tokens: number } = { n: maxN + 1, tokens: Infinity };
  const goal = limit - Math.max(1, Math.floor(limit * 0.01));
  for (let step = 0; hi.n - lo.n > 1 && lo.tokens < goal; step++) {
    let target: number; // the weight expected to reach `goal`
    if (Number.isFinite(hi.tokens)) {
      target = weight(lo.n) + ((goal - lo.tokens) * (weight(hi.n) - weight(lo.n))) / (hi.tokens - lo.tokens);
    } else if (lo.n === 0) {
      target = 0.8 * (goal - base); // first probe: on the safe side of the estimate
    } else {
      target = weight(lo.n) + ((goal - lo.tokens) * weight(lo.n)) / Math.max(1, lo.tokens - base);
    }
    let n = lowerBound(lo.n + 1, Math.min(hi.n - 1, maxN), (m) => weight(m) >= target);
    if (step % 3 === 2) n = Math.floor((lo.n + Math.min(hi.n, maxN + 1)) / 2);
    n = Math.max(lo.n + 1, Math.min(hi.n - 1, maxN, n));
    const p = probe(n);
    if (p.tokens <= limit) lo = p;
    else hi = p;
  }
  return lo;
}

/** The smallest m in [lo, hi] with pred(m) (pred monotone), or hi when none. */
function lowerBound(lo: number, hi: number, pred: (m: number) => boolean): number {
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (pred(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Prefix sums of the lengths of `units` / 4: a token estimate for fitLength's `weight`. */
export function charWeights<U>(units: readonly U[], length: (u: U) => number): (n: number) => number {
  const cum = new Float64Array(units.length + 1);
  for (let i = 0; i < units.length; i++) cum[i + 1] = cum[i] + length(units[i]) / 4;
  return (n) => cum[Math.min(n, units.length)];
}

/** Words of a text, each with the whitespace after it: words(s).join('') === s. */
export function words(text: string): string[] {
  return text.match(/\s*\S+\s*/g) ?? [];
}

/** How a unit is cut to its first k words, to fill the last tokens of a prompt. */
export interface Cut<U> {
  pieces(u: U): number;
  take(u: U, k: number): U;
}

const cutString: Cut<unknown> = {
  pieces: (u) => words(String(u)).length,
  take: (u, k) => words(String(u)).slice(0, k).join(''),
};

/**
 * Fits a haystack prompt: `supply(nchars)` gives haystack units (a deterministic function of nchars), `build`
 * the prompt from the first n of them. Starts with ~6 characters per token and doubles the supply while the
 * prompt still fits with all of it. When whole units leave more than 1% free, the next unit is cut to as many of
 * its first words as fit (RULER cuts its haystacks at words too), so even coarse units (long verses) fill the
 * length to 1%.
 */
export function fitHaystack<U, V>(
  contextLength: number,
  supply: (nchars: number) => U[],
  build: (units: U[]) => V,
  count: (value: V) => number,
  what: string,
  length: (u: U) => number = (u) => String(u).length,
  cut: Cut<U> = cutString as Cut<U>,
): Fit<V> {
  for (let nchars = contextLength * 6; ; nchars *= 2) {
    const units = supply(nchars);
    const fit = fitLength(contextLength, units.length, (n) => build(units.slice(0, n)), count, charWeights(units, length), what);
    if (fit.n === units.length) continue;
    if (fit.tokens >= contextLength - Math.max(1, Math.floor(contextLength * 0.01))) return fit;
    const whole = units.slice(0, fit.n);
    const next = units[fit.n];
    const part = fitLength(contextLength, cut.pieces(next) - 1, (k) => build(k > 0 ? [...whole, cut.take(next, k)] : whole), count, (k) => 1.5 * k, what);
    return { ...part, n: fit.n + (part.n > 0 ? 1 : 0) };
  }
}
