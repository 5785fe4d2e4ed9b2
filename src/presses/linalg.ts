/**
 * Small dense linear algebra and statistics in f64 for the sketch presses (leverage scores, non-causal attention,
 * Compactor): Cholesky factorisation with kvpress's adaptive jitter, a Cholesky solve, and the z-score over every
 * score of a layer that kvpress's scorers apply (one mean and one unbiased standard deviation for all heads).
 */
import { AttendError } from '../errors.js';

/**
 * Lower Cholesky factor L of the symmetric n×n matrix `a` (row-major) with `shift`·I added, such that
 * L·Lᵀ = a + shift·I; null when it is not positive definite (a pivot ≤ 0 or not finite), as cholesky_ex reports.
 */
export function cholesky(a: Float64Array, n: number, shift = 0): Float64Array | null {
  const L = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * n + j] + (i === j ? shift : 0);
      for (let t = 0; t < j; t++) s -= L[i * n + t] * L[j * n + t];
      if (i === j) {
        if (!(s > 0) || !Number.isFinite(s)) return null;
        L[i * n + i] = Math.sqrt(s);
      } else {
        L[i * n + j] = s / L[j * n + j];
      }
    }
  }
  return L;
}

/**
 * kvpress's LeverageScorePress.chol_with_jitter: tries a + jitter·I, and after each failure a jitter of
 * max(1e-8, 1e-2 if it was 0 else 10·jitter), `maxTries` times in all; `who` names the press in the error.
 */
export function choleskyWithJitter(a: Float64Array, n: number, jitter: number, maxTries: number, who: string): Float64Array {
  let cur = jitter;
  for (let t = 0; t < maxTries; t++) {
    const L = cholesky(a, n, cur);
    if (L) return L;
    cur = Math.max(1e-8, cur === 0 ? 1e-2 : 10 * cur);
  }
  throw new AttendError(`${who}: the sketched key Gram matrix is not positive definite even with jitter (Cholesky failed after ${maxTries} tries)`);
}

/** Solves (L·Lᵀ)·y = b for y, L lower triangular n×n (torch.cholesky_solve with upper=False); b is not changed. */
export function choleskySolve(L: Float64Array, n: number, b: Float64Array): Float64Array {
  const y = Float64Array.from(b);
  for (let i = 0; i < n; i++) {
    let s = y[i];
    for (let t = 0; t < i; t++) s -= L[i * n + t] * y[t];
    y[i] = s / L[i * n + i];
  }
  for (let i = n - 1; i >= 0; i--) {
    let s = y[i];
    for (let t = i + 1; t < n; t++) s -= L[t * n + i] * y[t];
    y[i] = s / L[i * n + i];
  }
  return y;
}

/**
 * (x − mean)/max(std, 1e-6) with one mean and one unbiased standard deviation over every value of every array,
 * as kvpress's `(scores - scores.mean()) / scores.std().clamp_min(1e-6)` over a layer's (1, H_kv, S) tensor.
 * With fewer than two values torch's std is NaN; here it counts as 0 (every score becomes 0).
 */
export function zScoreAll(scores: Float64Array[]): Float64Array[] {
  let n = 0;
  let sum = 0;
  for (const s of scores) for (const x of s) (sum += x), n++;
  const mean = n > 0 ? sum / n : 0;
  let sq = 0;
  for (const s of scores) for (const x of s) sq += (x - mean) * (x - mean);
  const std = n > 1 ? Math.sqrt(sq / (n - 1)) : 0;
  const div = Math.max(std, 1e-6);
  return scores.map((s) => s.map((x) => (x - mean) / div));
}
