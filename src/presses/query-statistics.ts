/**
 * Shared pieces of the "scorers" group's presses (ExpectedAttention, CAP, KeyDiff, LagKV, CUR), all in f64 on the
 * host: the prompt's pre-RoPE queries and their per-head mean and covariance, a matrix applied to them (kvpress's
 * averaged future RoPE, presses/rotary.ts averageRotation), one head's keys or values as rows, and the sink
 * padding kvpress's expected-attention-style presses use (the first entries score the layer's maximum + 1).
 */
import { AttendError } from '../errors.js';
import type { HeadMemory } from '../cache/head-memory.js';
import type { LayerView } from './press.js';
import { unrotated } from './rotary.js';

/** Per query head: the mean of its pre-RoPE queries (d) and, if asked, their covariance (d × d, row-major). */
export interface QueryStatistics {
  mean: Float64Array[];
  cov?: Float64Array[];
}

/**
 * The recorded queries of `view` from row `skip` on, rotated back to before RoPE (kvpress's
 * get_prerope_query_states of the prompt's hidden states after the first `skip`): [rows × numHeads·headDim].
 */
export function preRopeQueries(view: LayerView, skip: number, press: string): { rows: number; data: Float32Array } {
  const q = view.queries;
  const width = view.config.numHeads * view.config.headDim;
  const total = q?.positions.length ?? 0;
  if (!q || total <= skip) {
    throw new AttendError(`${press}: needs more than ${skip} recorded queries of the prompt (the first ${skip} are sinks), got ${total}`);
  }
  const positions = q.positions.subarray(skip);
  return { rows: total - skip, data: unrotated(view.config, q.data.subarray(skip * width), view.config.numHeads, positions) };
}

/**
 * Mean and covariance of each query head's rows of `data` ([rows × heads·d]); the covariance is the centred
 * outer products summed and divided by `divisor` (kvpress's ExpectedAttentionPress divides by the rows).
 */
export function queryStatistics(data: Float32Array, rows: number, heads: number, d: number, covariance: boolean, divisor = rows): QueryStatistics {
  const mean = Array.from({ length: heads }, () => new Float64Array(d));
  for (let t = 0; t < rows; t++) {
    for (let h = 0; h < heads; h++) {
      const o = (t * heads + h) * d;
      const m = mean[h];
      for (let i = 0; i < d; i++) m[i] += data[o + i];
    }
  }
  for (const m of mean) for (let i = 0; i < d; i++) m[i] /= rows;
  if (!covariance) return { mean };
  const cov = Array.from({ length: heads }, () => new Float64Array(d * d));
  const c = new Float64Array(d);
  for (let t = 0; t < rows; t++) {
    for (let h = 0; h < heads; h++) {
      const o = (t * heads + h) * d;
      const m = mean[h];
      const C = cov[h];
      for (let i = 0; i < d; i++) c[i] = data[o + i] - m[i];
      for (let i = 0; i < d; i++) {
        const ci = c[i];
        for (let j = 0; j < d; j++) C[i * d + j] += ci * c[j];
      }
    }
  }
  for (const C of cov) for (let i = 0; i < d * d; i++) C[i] /= divisor;
  return { mean, cov };
}

/** R·x for a d × d row-major R. */
export function matVec(R: Float64Array, x: ArrayLike<number>, d: number): Float64Array {
  const out = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += R[i * d + j] * x[j];
    out[i] = s;
  }
  return out;
}

/** R·C·Rᵀ for d × d row-major matrices. */
export function congruence(R: Float64Array, C: ArrayLike<number>, d: number): Float64Array {
  const RC = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let k = 0; k < d; k++) {
      const r = R[i * d + k];
      if (r === 0) continue;
      for (let j = 0; j < d; j++) RC[i * d + j] += r * C[k * d + j];
    }
  }
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += RC[i * d + k] * R[j * d + k];
      out[i * d + j] = s;
    }
  }
  return out;
}

/** Keys or values of entries [start, length) of a head, as f32 rows [count × headDim]. */
export function rowsOf(head: HeadMemory, which: 'keys' | 'values', start = 0): Float32Array {
  const count = Math.max(0, head.length - start);
  return which === 'keys' ? head.keys(start, count) : head.values(start, count);
}

/** L2 norm of row i of `rows` ([n × d]). */
export function rowNorm(rows: Float32Array, i: number, d: number): number {
  let s = 0;
  for (let c = 0; c < d; c++) s += rows[i * d + c] * rows[i * d + c];
  return Math.sqrt(s);
}

/**
 * Scores of every entry of each head, given the scores of its entries after the first `sinks` (`rest[h]`): the
 * sinks get the largest score of the layer's heads + 1 (f32), as kvpress pads them (F.pad with scores.max() + 1).
 */
export function padSinks(rest: Float32Array[], sinks: number): Float32Array[] {
  let max = -Infinity;
  for (const r of rest) for (const x of r) if (x > max) max = x;
  const pad = Math.fround(max + 1);
  return rest.map((r) => {
    const out = new Float32Array(r.length + sinks);
    out.fill(pad, 0, sinks);
    out.set(r, sinks);
    return out;
  });
}

/** Refuses a layer whose heads hold no more than `sinks` entries, as kvpress asserts (nothing to score). */
export function checkLongerThanSinks(view: LayerView, sinks: number, press: string, option: string): void {
  const shortest = Math.min(...view.cache.heads.map((h) => h.length));
  if (shortest <= sinks) {
    throw new AttendError(`${press}: a head holds ${shortest} entries, not more than ${option}=${sinks} (the sinks): nothing to score`);
  }
}

/** Throws a one-line AttendError unless `value` is a whole number ≥ `min`. */
export function checkInt(press: string, option: string, value: number, min: number, what: string): void {
  if (!(Number.isInteger(value) && value >= min)) throw new AttendError(`${press}: option ${option} must be a whole number ≥ ${min} (${what}), got ${value}`);
}

/** Throws a one-line AttendError unless `value` is finite and ≥ `min`. */
export function checkNumber(press: string, option: string, value: number, min: number, what: string): void {
  if (!(Number.isFinite(value) && value >= min)) throw new AttendError(`${press}: option ${option} must be a number ≥ ${min} (${what}), got ${value}`);
}
