/**
 * Remapped reads: a selector that both chooses what each head reads and moves it to other positions (LongHeads,
 * selectors/longheads.ts: the chunks a head picks are read as if they sat next to each other inside the trained
 * window). The visibility's `remap` (attention/visibility.ts) gives, per query row and query head, spans of
 * consecutive entries of its KV head, each read as if its keys sat `keyShift` positions after their original
 * positions, and the row's query as if it sat `queryShift` after its own. With rotary embeddings only the
 * difference of the two positions matters, so a backend may turn the stored (post-RoPE) keys by keyShift and the
 * query by queryShift (attention/reference.ts does that, literally), or, cheaper, turn only the query by
 * queryShift − keyShift once per span and dot it with the stored keys as they are (the CPU backend,
 * backend/cpu/attention/remapped.ts): the cache is never rewritten.
 *
 * The rule, for row r at original position p and query head h (unit u = r·numHeads + h): the row reads entry i of
 * its KV head when i lies in one of the unit's spans and the entry's original position is ≤ p (causal as always);
 * its score is q·k with q turned by queryShifts[u] and k by keyShifts[span]. Spans of one unit are ascending and do
 * not overlap. A backend multiplies the rows that read the same span together, so a selector that reads whole
 * chunks should give one span per chunk (and let causality clip the last one) rather than merge neighbours.
 * Remapped reads replace entry lists, windows and tree masks (not combined with them), feed no observer, and turn
 * keys with rotary embeddings only (the model's inverse frequencies, `inverseFrequencies`).
 */
import { countUpTo } from '../cache/positions.js';
import type { Visibility } from './visibility.js';

export interface RemappedReads {
  /** Unit u = row·numHeads + queryHead reads spans offsets[u] … offsets[u + 1] − 1 (rows·numHeads + 1 offsets). */
  offsets: Int32Array;
  /** Per span: its first entry index in the KV head, and one past its last. */
  starts: Int32Array;
  ends: Int32Array;
  /** Per span: the position its keys are read at minus their original position. */
  keyShifts: Int32Array;
  /** Per unit: the position the row's query is read at minus its original position. */
  queryShifts: Int32Array;
  /** RoPE inverse frequencies the shifts turn by (rope.ts inverseFrequencies; the first 2·length dims turn). */
  inverseFrequencies: Float32Array;
}

/** Whether a selector's answer is remapped reads (rather than entry lists). */
export function isRemap(x: unknown): x is RemappedReads {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && 'offsets' in x && 'queryShifts' in x;
}

/**
 * Checks a call's remapped reads: alone in its visibility, no observer reading probabilities, and the arrays' shapes
 * and each unit's spans against the call (rows, query heads, the KV heads' lengths).
 */
export function checkRemap(
  vis: Visibility & { observer?: { observe?: unknown; accumulate?: unknown } },
  rows: number,
  numHeads: number,
  headLengths: readonly number[],
  headDim: number,
): void {
  const remap = vis.remap!;
  if (vis.window !== null || vis.entries || vis.queryEntries || vis.tree) throw new Error('remapped reads replace entry lists, windows and tree masks: give them alone');
  if (vis.observer?.observe || vis.observer?.accumulate) throw new Error('remapped reads feed no attention observer');
  const units = rows * numHeads;
  const { offsets, starts, ends, keyShifts, queryShifts, inverseFrequencies } = remap;
  if (offsets.length !== units + 1 || queryShifts.length !== units) {
    throw new Error(`remapped reads: ${offsets.length} offsets and ${queryShifts.length} query shifts for ${rows} rows × ${numHeads} query heads`);
  }
  const spans = offsets[units];
  if (offsets[0] !== 0 || starts.length < spans || ends.length < spans || keyShifts.length < spans) {
    throw new Error(`remapped reads: offsets must start at 0 and name at most the ${Math.min(starts.length, ends.length, keyShifts.length)} spans given`);
  }
  if (2 * inverseFrequencies.length > headDim) throw new Error(`remapped reads: ${inverseFrequencies.length} rotary frequencies for head size ${headDim}`);
  const group = numHeads / headLengths.length;
  for (let u = 0; u < units; u++) {
    const length = headLengths[Math.floor((u % numHeads) / group)];
    if (offsets[u + 1] < offsets[u]) throw new Error('remapped reads: offsets must not decrease');
    for (let s = offsets[u], last = 0; s < offsets[u + 1]; s++) {
      if (starts[s] < last || ends[s] < starts[s] || ends[s] > length) {
        throw new Error(`remapped reads: spans of a unit must be ascending, not overlapping and within the head's ${length} entries`);
      }
      last = ends[s];
    }
  }
}

/** The span of unit `unit` that holds entry `index`, or −1. */
export function spanOf(remap: RemappedReads, unit: number, index: number): number {
  const lo = remap.offsets[unit];
  const hi = remap.offsets[unit + 1];
  // Spans ascend: the last one starting at or before `index` is the only candidate.
  const s = lo + countUpTo(remap.starts.subarray(lo, hi), index) - 1;
  return s >= lo && index < remap.ends[s] ? s : -1;
}

/**
 * `x` (headDim values; the first 2·inv.length turn, in the rotate-half layout of rope.ts) turned by RoPE through
 * `shift` positions, into `out`: angles shift·inv[i] in f64.
 */
export function turn(x: ArrayLike<number>, shift: number, inv: Float32Array, out: Float64Array | Float32Array): void {
  const half = inv.length;
  for (let i = 0; i < x.length; i++) out[i] = x[i];
  if (shift === 0) return;
  for (let i = 0; i < half; i++) {
    const c = Math.cos(shift * inv[i]);
    const s = Math.sin(shift * inv[i]);
    const a = x[i];
    const b = x[i + half];
    out[i] = a * c - b * s;
    out[i + half] = b * c + a * s;
  }
}
