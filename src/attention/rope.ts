/**
 * Rotary position embeddings (RoFormer, Su et al. 2021) in the Hugging Face "rotate half" layout: dimension i
 * pairs with i + dim/2. Frequencies follow transformers' rope initialisers, computed in float32 as it does:
 * - default: θ^(−2i/d);
 * - linear (position interpolation): default / factor;
 * - dynamic (NTK-aware): base grows with the sequence once it passes the original length,
 *   θ' = θ · (factor · len / max − (factor − 1))^(d / (d − 2)); as in transformers, `len` is the largest position
 *   of the current forward step + 1, and keys already cached keep the rotation they were written with;
 * - llama3: wavelengths beyond original/low_freq_factor are divided by factor, those under
 *   original/high_freq_factor are kept, and the band between is interpolated smoothly.
 */
import type { RopeConfig } from '../models/config.js';

const f = Math.fround;

export function inverseFrequencies(rope: RopeConfig, seqLen: number): Float32Array {
  const { dim, factor } = rope;
  let base = rope.theta;
  if (rope.type === 'dynamic' && seqLen > rope.originalMaxPositions) {
    const max = rope.originalMaxPositions;
    base = base * ((factor * seqLen) / max - (factor - 1)) ** (dim / (dim - 2));
  }
  const inv = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) inv[i] = f(1 / f(f(base) ** f((2 * i) / dim)));
  if (rope.type === 'linear') for (let i = 0; i < inv.length; i++) inv[i] = f(inv[i] / factor);
  if (rope.type === 'llama3') applyLlama3(rope, inv);
  return inv;
}

function applyLlama3(rope: RopeConfig, inv: Float32Array): void {
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions: original } = rope;
  const lowFreqWavelen = original / lowFreqFactor;
  const highFreqWavelen = original / highFreqFactor;
  for (let i = 0; i < inv.length; i++) {
    const wavelen = (2 * Math.PI) / inv[i];
    if (wavelen < highFreqWavelen) continue;
    if (wavelen > lowFreqWavelen) {
      inv[i] = f(inv[i] / factor);
      continue;
    }
    const smooth = (original / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    inv[i] = f((1 - smooth) * (inv[i] / factor) + smooth * inv[i]);
  }
}

/** cos and sin tables, [positions × dim/2], for the given positions. */
export function ropeTables(inv: Float32Array, positions: Int32Array): { cos: Float32Array; sin: Float32Array } {
  const half = inv.length;
  const cos = new Float32Array(positions.length * half);
  const sin = new Float32Array(positions.length * half);
  for (let t = 0; t < positions.length; t++) {
    for (let i = 0; i < half; i++) {
      const angle = f(positions[t] * inv[i]);
      cos[t * half + i] = Math.cos(angle);
      sin[t * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/**
 * Rotates, in place, `heads` heads of `headDim` in each row of x ([rows × heads·headDim]); only the first
 * `2·half` dimensions of each head turn (partial rotary).
 */
export function applyRope(
  x: Float32Array,
  rows: number,
  heads: number,
  headDim: number,
  tables: { cos: Float32Array; sin: Float32Array },
): void {
  const half = tables.cos.length / rows;
  for (let t = 0; t < rows; t++) {
    const c = tables.cos.subarray(t * half, (t + 1) * half);
    const s = tables.sin.subarray(t * half, (t + 1) * half);
    for (let h = 0; h < heads; h++) {
      const o = (t * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const a = x[o + i];
        const b = x[o + i + half];
        x[o + i] = a * c[i] - b * s[i];
        x[o + i + half] = b * c[i] + a * s[i];
      }
    }
  }
}
