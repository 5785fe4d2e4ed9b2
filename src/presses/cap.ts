/**
 * CapKV ("Rethinking KV Cache Eviction via a Unified Information-Theoretic Objective", arXiv 2604.25975), as
 * kvpress's CapPress (cap_press.py).
 * Rule, per layer and query head: the anchor μ is the mean of the prompt's pre-RoPE queries after the first
 * `n-sink`, each turned by the RoPE rotation averaged over the next `n-future-positions` positions (from the tokens
 * seen on; rotary.ts averageRotation). Each entry i after the first n-sink gets the weight
 * wᵢ = exp(τ·cᵢ − maxⱼ τ·cⱼ), cᵢ = cos(μ, kᵢ) clamped to [−1, 1]; with A = I + Σᵢ (wᵢ + ε)·vᵢvᵢᵀ its score is
 * wᵢ · vᵢᵀA⁻¹vᵢ (weight × leverage of the value in the weighted capacity matrix). Scores are averaged over the
 * query heads of each KV group, and the first n-sink entries score the layer's maximum + 1 (kept).
 * Defaults are kvpress's: tau 5, n_future_positions 512, n_sink 4, epsilon 1e-6.
 * kvpress differs from the paper (and this press follows kvpress): keys and anchor are L2-normalised, a per-head
 * max shift before exp, the averaged future RoPE on the queries, and the value vector as the output direction.
 * kvpress refuses a cache of at most n_sink entries; so does this press (a one-line error). A⁻¹vᵢ is solved here
 * in f64 by Cholesky (A is symmetric positive definite); kvpress solves in f32 (torch.linalg.solve). The queries
 * are recorded as for expected-attention.ts (every query of the sequence, rotated back before RoPE).
 */
import { AttendError } from '../errors.js';
import type { LayerView, Press } from './press.js';
import { checkInt, checkLongerThanSinks, checkNumber, matVec, padSinks, preRopeQueries, queryStatistics, rowsOf } from './query-statistics.js';
import { averageRotation } from './rotary.js';

export interface CapOptions {
  tau: number;
  nFuturePositions: number;
  nSink: number;
  epsilon: number;
}

export const CAP_DEFAULTS: CapOptions = { tau: 5, nFuturePositions: 512, nSink: 4, epsilon: 1e-6 };

export class CapPress implements Press {
  readonly name = 'cap';
  readonly needs = { queryWindow: Infinity };

  constructor(readonly options: CapOptions = CAP_DEFAULTS) {
    checkNumber('cap', 'tau', options.tau, -Infinity, 'temperature of the query-key alignment');
    checkInt('cap', 'n-future-positions', options.nFuturePositions, 0, 'future positions the RoPE rotation is averaged over');
    checkInt('cap', 'n-sink', options.nSink, 0, 'initial entries always kept');
    checkNumber('cap', 'epsilon', options.epsilon, 0, 'added to the weights in the capacity matrix');
  }

  score(view: LayerView): Float32Array[] {
    const { tau, nFuturePositions, nSink, epsilon } = this.options;
    const { numHeads, numKvHeads, headDim: d } = view.config;
    checkLongerThanSinks(view, nSink, this.name, 'n-sink');
    // The mean of the rotated queries is the rotation of their mean (R is linear).
    const pre = preRopeQueries(view, nSink, this.name);
    const R = averageRotation(view.config, view.seen, nFuturePositions);
    const anchors = queryStatistics(pre.data, pre.rows, numHeads, d, false).mean.map((m) => unit(matVec(R, m, d)));
    const group = numHeads / numKvHeads;
    const rest = view.cache.heads.map((head, g) => {
      const n = head.length - nSink;
      const keys = rowsOf(head, 'keys', nSink);
      const values = rowsOf(head, 'values', nSink);
      const keyNorms = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let c = 0; c < d; c++) s += keys[i * d + c] ** 2;
        keyNorms[i] = Math.max(Math.sqrt(s), 1e-12);
      }
      const acc = new Float64Array(n);
      const w = new Float64Array(n);
      for (let j = 0; j < group; j++) {
        const a = anchors[g * group + j];
        let max = -Infinity;
        for (let i = 0; i < n; i++) {
          let s = 0;
          for (let c = 0; c < d; c++) s += a[c] * keys[i * d + c];
          w[i] = tau * Math.min(1, Math.max(-1, s / keyNorms[i]));
          if (w[i] > max) max = w[i];
        }
        for (let i = 0; i < n; i++) w[i] = Math.exp(w[i] - max);
        // A = I + Σ (w + ε) v vᵀ
        const A = new Float64Array(d * d);
        for (let c = 0; c < d; c++) A[c * d + c] = 1;
        for (let i = 0; i < n; i++) {
          const s = w[i] + epsilon;
          const o = i * d;
          for (let r = 0; r < d; r++) {
            const vr = s * values[o + r];
            for (let c = 0; c <= r; c++) A[r * d + c] += vr * values[o + c];
          }
        }
        const L = cholesky(A, d);
        const y = new Float64Array(d);
        for (let i = 0; i < n; i++) acc[i] += (w[i] * leverage(L, values, i * d, d, y)) / group;
      }
      return Float32Array.from(acc);
    });
    return padSinks(rest, nSink);
  }
}

/** x / max(‖x‖, 1e-12) (F.normalize). */
function unit(x: Float64Array): Float64Array {
  let s = 0;
  for (const v of x) s += v * v;
  const n = Math.max(Math.sqrt(s), 1e-12);
  return x.map((v) => v / n);
}

/** Lower Cholesky factor of the symmetric positive definite A (its lower triangle is read), row-major. */
export function cholesky(A: Float64Array, d: number): Float64Array {
  const L = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * d + j];
      for (let k = 0; k < j; k++) s -= L[i * d + k] * L[j * d + k];
      if (i === j) {
        if (!(s > 0)) throw new AttendError(`cap: the capacity matrix is not positive definite (pivot ${s} at ${i}); the values are not finite`);
        L[i * d + i] = Math.sqrt(s);
      } else L[i * d + j] = s / L[j * d + j];
    }
  }
  return L;
}

/** vᵀA⁻¹v = ‖L⁻¹v‖² for A = LLᵀ, v the row at `o` of `rows`; `y` is scratch. */
function leverage(L: Float64Array, rows: Float32Array, o: number, d: number, y: Float64Array): number {
  let q = 0;
  for (let i = 0; i < d; i++) {
    let s = rows[o + i];
    for (let k = 0; k < i; k++) s -= L[i * d + k] * y[k];
    y[i] = s / L[i * d + i];
    q += y[i] * y[i];
  }
  return q;
}
