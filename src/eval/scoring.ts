/**
 * Scoring of `attend bench` answers: RULER's string match (Hsieh et al., 2024; NVIDIA/RULER
 * scripts/eval/synthetic/constants.py, commit c3f5e3b), made strict about where an answer ends, applied to one
 * prediction after RULER's `postprocess_pred` (scripts/eval/evaluate.py):
 *
 *     string_match_all:  sum(found(r, pred) for r in ref) / len(ref)     (niah, vt, cwe, fwe)
 *     string_match_part: max(found(r, pred) for r in ref)                (qa)
 *
 * The rule (`found`): an answer counts only as a whole token of the prediction — case-insensitive, and neither
 * preceded nor followed directly by a letter or digit (any script). RULER's own `r in pred` is a plain substring
 * test, which scores the runaway prediction " 4011696666666666666" right for the needle 4011696, or "912345678" for
 * 1234567: the model did not give the number, it gave a longer one. Punctuation, spaces and line breaks delimit,
 * so "4011696.", "4011696\n…", "(4011696)" and "The number is 4011696, …" all count. An answer that itself starts
 * or ends with punctuation ("19,625,353") is delimited the same way by what stands outside it.
 *
 * The average over instances and ×100 is RULER's; here one instance scores 0…1 and summaries average.
 */
import { check } from '../errors.js';
import type { TaskInstance } from './types.js';

/** RULER's `postprocess_pred`: strip, control characters (\x00–\x1f) become newlines, strip again. */
export function postprocess(prediction: string): string {
  return prediction.trim().replace(/[\x00-\x1f]/g, '\n').trim();
}

const WORD_CHAR = /[\p{L}\p{N}]/u;

/** Whether `answer` occurs in `text` as a whole token: no letter or digit right before or right after it. */
export function containsWhole(text: string, answer: string): boolean {
  if (answer.length === 0) return false;
  for (let at = text.indexOf(answer); at !== -1; at = text.indexOf(answer, at + 1)) {
    const before = at > 0 ? text[at - 1]! : '';
    const after = text[at + answer.length] ?? '';
    if (!WORD_CHAR.test(before) && !WORD_CHAR.test(after)) return true;
  }
  return false;
}

function found(prediction: string, answers: readonly string[]): number[] {
  check(answers.length > 0, 'a task instance needs at least one answer');
  const pred = postprocess(prediction).toLowerCase();
  return answers.map((a) => (containsWhole(pred, a.toLowerCase()) ? 1 : 0));
}

/** string_match_all for one prediction: the fraction of the answers it contains as whole tokens (case-insensitive). */
export function scoreAll(prediction: string, answers: readonly string[]): number {
  const hits = found(prediction, answers);
  return hits.reduce((a, b) => a + b, 0) / hits.length;
}

/** string_match_part for one prediction: 1 when it contains any of the answers as a whole token, else 0. */
export function scorePart(prediction: string, answers: readonly string[]): number {
  return Math.max(...found(prediction, answers));
}

/** The score of a prediction for an instance, by the instance's metric. */
export function score(instance: Pick<TaskInstance, 'answers' | 'metric'>, prediction: string): number {
  return instance.metric === 'all' ? scoreAll(prediction, instance.answers) : scorePart(prediction, instance.answers);
}

/** Perplexity from a sum of negative log-likelihoods (natural log) over `tokens` predicted tokens. */
export function perplexityOf(nllSum: number, tokens: number): number {
  check(tokens > 0, 'perplexity needs at least one predicted token');
  return Math.exp(nllSum / tokens);
}

/**
 * The 95% Wilson score interval (Wilson, 1927) of a proportion: `successes` of `n` (successes may be fractional,
 * the sum of part-credit scores, an approximation then). [0, 0] for n = 0.
 */
export function wilson(successes: number, n: number, z = 1.959963984540054): { lo: number; hi: number } {
  if (n <= 0) return { lo: 0, hi: 0 };
  const p = successes / n;
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return { lo: Math.max(0, centre - half), hi: Math.min(1, centre + half) };
}
