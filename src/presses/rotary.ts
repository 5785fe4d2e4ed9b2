/**
 * Rotary embeddings as presses need them outside a forward: keys and queries are cached after RoPE, and several
 * presses (ExpectedAttention, CAP, non-causal attention, leverage scores, ThinK, key rerotation) reason about them
 * before it or at positions not yet seen. Same tables as the model's (attention/rope.ts); a family without
 * rotary embeddings (GPT-2) makes every function here the identity.
 */
import { applyRope, inverseFrequencies, ropeTables } from '../attention/rope.js';
import type { ModelConfig } from '../models/config.js';

/**
 * In place: rows of `x` ([rows × heads·headDim]) rotated to `positions` (one per row), or back from them with
 * `inverse` (the rotation is orthogonal: its inverse is the rotation by −angle). `seqLen` picks dynamic-NTK
 * frequencies as the forward that wrote them did (the sequence length then); other rope types ignore it.
 */
export function rotate(config: ModelConfig, x: Float32Array, heads: number, positions: Int32Array, inverse = false, seqLen = maxPlusOne(positions)): void {
  const rope = config.rope;
  if (!rope || positions.length === 0) return;
  const tables = ropeTables(inverseFrequencies(rope, seqLen), positions);
  if (inverse) for (let i = 0; i < tables.sin.length; i++) tables.sin[i] = -tables.sin[i];
  applyRope(x, positions.length, heads, config.headDim, tables);
}

/** A copy of `x` rotated back from `positions`: pre-RoPE queries or keys. */
export function unrotated(config: ModelConfig, x: Float32Array, heads: number, positions: Int32Array, seqLen?: number): Float32Array {
  const out = x.slice(0, positions.length * heads * config.headDim);
  rotate(config, out, heads, positions, true, seqLen);
  return out;
}

/**
 * The rotation matrix R(p) = cos(p·θ)·I + sin(p·θ)·P (P the rotate-half permutation with signs) averaged over the
 * positions [from, from + count): [headDim × headDim], row-major, R[i][j]. Applied to a pre-RoPE query q as R·q it
 * gives the mean of q rotated to those positions (ExpectedAttention's and CAP's future queries).
 */
export function averageRotation(config: ModelConfig, from: number, count: number): Float64Array {
  const d = config.headDim;
  const R = new Float64Array(d * d);
  const rope = config.rope;
  if (!rope || count <= 0) {
    for (let i = 0; i < d; i++) R[i * d + i] = 1;
    return R;
  }
  const positions = Int32Array.from({ length: count }, (_, i) => from + i);
  const half = rope.dim / 2;
  const { cos, sin } = ropeTables(inverseFrequencies(rope, from + count), positions);
  for (let t = 0; t < count; t++) {
    for (let i = 0; i < half; i++) {
      const c = cos[t * half + i] / count;
      const s = sin[t * half + i] / count;
      // out[i] = c·q[i] − s·q[i+half]; out[i+half] = c·q[i+half] + s·q[i]
      R[i * d + i] += c;
      R[i * d + i + half] -= s;
      R[(i + half) * d + i + half] += c;
      R[(i + half) * d + i] += s;
    }
  }
  // Dimensions past the rotary part (partial rotary) are not turned.
  for (let i = 2 * half; i < d; i++) R[i * d + i] = 1;
  return R;
}

function maxPlusOne(positions: Int32Array): number {
  let m = -1;
  for (const p of positions) if (p > m) m = p;
  return m + 1;
}
