/**
 * Scoring of `attend bench` answers: RULER's string match (Hsieh et al., 2024), exactly as NVIDIA/RULER defines it in
 * scripts/eval/synthetic/constants.py (commit c3f5e3b), applied to one prediction after RULER's `postprocess_pred`
 * (scripts/eval/evaluate.py):
 *
 *     string_match_all:  sum(r.lower() in pred.lower() for r in ref) / len(ref)     (niah, vt, cwe, fwe)
 *     string_match_part: max(r.lower() in pred.lower() for r in ref)                (qa)
 *
 * RULER averages these over the samples of a task and reports ×100, rounded to 2 decimals; here one instance
 * scores 0…1 and the report averages.
 */
import { check } from '../errors.js';
import type { TaskInstance } from './types.js';

/** RULER's `postprocess_pred`: strip, control characters (\x00–\x1f) become newlines, strip again. */
export function postprocess(prediction: string): string {
  return prediction.trim().replace(/[\x00-\x1f]/g, '\n').trim();
}

function found(prediction: string, answers: readonly string[]): number[] {
  check(answers.length > 0, 'a task instance needs at least one answer');
  const pred = postprocess(prediction).toLowerCase();
  return answers.map((a) => (pred.includes(a.toLowerCase()) ? 1 : 0));
}

/** RULER string_match_all for one prediction: the fraction of the answers it contains (case-insensitive). */
export function scoreAll(prediction: string, answers: readonly string[]): number {
  const hits = found(prediction, answers);
  return hits.reduce((a, b) => a + b, 0) / hits.length;
}

/** RULER string_match_part for one prediction: 1 when it contains any of the answers (case-insensitive), else 0. */
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
