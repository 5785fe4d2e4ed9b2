/**
 * The finite-value guard on logits: a NaN or an infinity in a row of logits means the weights or the config gave
 * non-finite numbers somewhere upstream, and nothing sampled or written from that row means anything. Checked
 * before every sampling step and before `attend logits` writes its file; the error names the step or row.
 */
import { AttendError } from '../errors.js';

/** Index of the first NaN or ±Infinity in `x` from `start` to `end`, or -1. */
export function firstNonFinite(x: ArrayLike<number>, start = 0, end = x.length): number {
  for (let i = start; i < end; i++) {
    const v = x[i];
    // v - v is NaN for NaN and ±Infinity, 0 for every finite v.
    if (v - v !== 0) return i;
  }
  return -1;
}

/**
 * Throws an AttendError naming `where` (e.g. "decode step 3 (position 41)") if a row of logits holds a
 * non-finite value; `rowLength` splits `logits` into rows of one position each, `firstRow` numbers the first.
 */
export function checkFiniteLogits(logits: Float32Array, where: string | ((row: number) => string), rowLength = logits.length, firstRow = 0): void {
  const at = firstNonFinite(logits);
  if (at === -1) return;
  const row = Math.floor(at / rowLength);
  const rowStart = row * rowLength;
  let count = 0;
  for (let i = rowStart; i < rowStart + rowLength; i++) if (!Number.isFinite(logits[i])) count++;
  const name = typeof where === 'string' ? where : where(firstRow + row);
  throw new AttendError(
    `${name}: the logits are not finite (${logits[at]} at token id ${at - rowStart}; ${count} of ${rowLength} values non-finite): ` +
      'the weights or the config (e.g. rms_norm_eps, rope_theta) give non-finite numbers',
  );
}
