/**
 * The second kind of layer memory: a recurrent state instead of entries. Linear-attention layers (Katharopoulos et
 * al. 2020, "Transformers are RNNs"; and the linear and recurrent kernels that follow it: Based, Lightning
 * Attention, RetNet-style decay) keep, per head, a fixed-size summary of everything seen:
 *
 *   S ← λ·S + φ(k)ᵀ v    (keyDim × valueDim)        z ← λ·z + φ(k)    (keyDim)
 *   out = φ(q) S / (φ(q) · z)                         (normalised; `normalise: false` gives φ(q) S)
 *
 * with λ = 1 (no decay) or a per-head decay in (0, 1]. Its size does not grow with the sequence, so there is nothing
 * to evict: presses do not apply (they need entries), and a rollback cannot drop tokens from a sum. Rollback is by
 * checkpoint instead: `checkpoint()` before a speculative block, `restore` to it, exactly as `KVCache.trim` drops
 * entries. The feature map φ belongs to the kernel that uses the state; the state takes φ(q) and φ(k) as given.
 * Host memory, like HeadStore; a device backend keeps S and z where it computes.
 */
import { AttendError } from '../errors.js';

export interface StateShape {
  heads: number;
  keyDim: number;
  valueDim: number;
  /** Per head λ in (0, 1]; absent: 1 for every head (plain linear attention). */
  decay?: Float32Array;
  /** Divide by φ(q)·z (Katharopoulos et al.'s normalised form); default true. */
  normalise?: boolean;
}

/** A copy of a state at one position, to roll back to. */
export interface StateCheckpoint {
  readonly position: number;
  readonly s: Float64Array;
  readonly z: Float64Array;
}

export class RecurrentState {
  readonly kind = 'state';
  /** Per head S, row-major keyDim × valueDim, heads one after another (f64: sums over long sequences). */
  private s: Float64Array;
  private z: Float64Array;
  /** Tokens absorbed: the position the next token takes. */
  position = 0;

  constructor(readonly shape: StateShape) {
    const { heads, keyDim, valueDim, decay } = shape;
    for (const [name, v] of [['heads', heads], ['keyDim', keyDim], ['valueDim', valueDim]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new AttendError(`recurrent state: ${name} must be a whole number ≥ 1, got ${v}`);
    }
    if (decay && (decay.length !== heads || decay.some((l) => !(l > 0 && l <= 1)))) {
      throw new AttendError(`recurrent state: decay needs one value in (0, 1] per head (${heads})`);
    }
    this.s = new Float64Array(heads * keyDim * valueDim);
    this.z = new Float64Array(heads * keyDim);
  }

  /** Bytes the state holds: S and z in f64, whatever the sequence length. */
  bytes(): number {
    return this.s.byteLength + this.z.byteLength;
  }

  clone(): RecurrentState {
    const copy = new RecurrentState(this.shape);
    copy.s.set(this.s);
    copy.z.set(this.z);
    copy.position = this.position;
    return copy;
  }

  checkpoint(): StateCheckpoint {
    return { position: this.position, s: this.s.slice(), z: this.z.slice() };
  }

  /** Back to a checkpoint of this state's shape (the tokens after it are forgotten). */
  restore(c: StateCheckpoint): void {
    if (c.s.length !== this.s.length || c.z.length !== this.z.length) throw new AttendError('recurrent state: checkpoint of another shape');
    if (c.position > this.position) throw new AttendError(`recurrent state: cannot restore forward, to position ${c.position} from ${this.position}`);
    this.s.set(c.s);
    this.z.set(c.z);
    this.position = c.position;
  }

  /**
   * Runs `rows` tokens causally: each row's φ(k), v enter the state, then its φ(q) reads it (a token sees itself, as
   * causal attention does). fq, fk: [rows × heads·keyDim]; v: [rows × heads·valueDim]; returns [rows × heads·valueDim].
   */
  step(fq: Float32Array, fk: Float32Array, v: Float32Array, rows: number): Float32Array {
    const { heads, keyDim: dk, valueDim: dv, decay } = this.shape;
    const normalise = this.shape.normalise ?? true;
    if (fq.length < rows * heads * dk || fk.length < rows * heads * dk || v.length < rows * heads * dv) {
      throw new Error(`recurrent state: inputs too short for ${rows} rows`);
    }
    const out = new Float32Array(rows * heads * dv);
    for (let t = 0; t < rows; t++) {
      for (let h = 0; h < heads; h++) {
        const lambda = decay ? decay[h] : 1;
        const S = this.s.subarray(h * dk * dv, (h + 1) * dk * dv);
        const z = this.z.subarray(h * dk, (h + 1) * dk);
        const k = fk.subarray((t * heads + h) * dk, (t * heads + h + 1) * dk);
        const val = v.subarray((t * heads + h) * dv, (t * heads + h + 1) * dv);
        for (let i = 0; i < dk; i++) {
          z[i] = lambda * z[i] + k[i];
          for (let j = 0; j < dv; j++) S[i * dv + j] = lambda * S[i * dv + j] + k[i] * val[j];
        }
        const q = fq.subarray((t * heads + h) * dk, (t * heads + h + 1) * dk);
        let norm = 0;
        for (let i = 0; i < dk; i++) norm += q[i] * z[i];
        const o = (t * heads + h) * dv;
        for (let j = 0; j < dv; j++) {
          let acc = 0;
          for (let i = 0; i < dk; i++) acc += q[i] * S[i * dv + j];
          out[o + j] = normalise ? acc / norm : acc;
        }
      }
      this.position++;
    }
    return out;
  }
}
