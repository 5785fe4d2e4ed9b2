import { AttendError } from '../errors.js';
import type { DType } from './dtype.js';

/** Element storage for each dtype: f32 values, or raw 16-bit words for f16/bf16. */
export type Storage = Float32Array | Uint16Array;

/**
 * A dense row-major tensor. On the CPU backend `data` is the host array itself; device backends will keep
 * their buffers behind the same shape/dtype description. Compute kernels take f32 tensors; f16/bf16 tensors
 * are storage (weights, cache entries) that kernels widen as they read.
 */
export class Tensor {
  readonly size: number;

  constructor(
    readonly shape: readonly number[],
    readonly data: Storage,
    readonly dtype: DType = data instanceof Float32Array ? 'f32' : 'bf16',
  ) {
    this.size = shape.reduce((a, b) => a * b, 1);
    if (this.size !== data.length) {
      throw new Error(`tensor shape [${shape.join(', ')}] holds ${this.size} elements, data has ${data.length}`);
    }
    if ((dtype === 'f32') !== data instanceof Float32Array) throw new Error(`dtype ${dtype} does not match its storage`);
  }

  static zeros(shape: readonly number[]): Tensor {
    return new Tensor(shape, new Float32Array(shape.reduce((a, b) => a * b, 1)));
  }

  /** The f32 data; throws if this tensor holds 16-bit storage. */
  get f32(): Float32Array {
    if (!(this.data instanceof Float32Array)) throw new Error(`expected an f32 tensor, got ${this.dtype}`);
    return this.data;
  }

  get rows(): number {
    return this.shape.length === 1 ? 1 : this.size / this.shape[this.shape.length - 1];
  }

  get cols(): number {
    return this.shape[this.shape.length - 1];
  }

  reshape(shape: readonly number[]): Tensor {
    return new Tensor(shape, this.data, this.dtype);
  }

  /** Row `i` of a 2-D f32 tensor, as a view. */
  row(i: number): Float32Array {
    const n = this.cols;
    return this.f32.subarray(i * n, (i + 1) * n);
  }

  get bytes(): number {
    return this.data.byteLength;
  }
}

export function assertShape(t: Tensor, shape: readonly number[], what: string): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new AttendError(`${what} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
  }
}
