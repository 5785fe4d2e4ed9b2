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
  readonly dtype: DType;

  /** f32 storage takes its dtype from the array; 16-bit words must say whether they are f16 or bf16. */
  constructor(shape: readonly number[], data: Float32Array, dtype?: 'f32');
  constructor(shape: readonly number[], data: Uint16Array, dtype: 'f16' | 'bf16');
  constructor(shape: readonly number[], data: Storage, dtype: DType);
  constructor(
    readonly shape: readonly number[],
    readonly data: Storage,
    dtype?: DType,
  ) {
    this.size = shape.reduce((a, b) => a * b, 1);
    if (this.size !== data.length) {
      throw new Error(`tensor shape [${shape.join(', ')}] holds ${this.size} elements, data has ${data.length}`);
    }
    if (dtype === undefined) {
      if (!(data instanceof Float32Array)) throw new Error('a tensor of 16-bit storage needs its dtype: f16 or bf16');
      dtype = 'f32';
    }
    if ((dtype === 'f32') !== data instanceof Float32Array) throw new Error(`dtype ${dtype} does not match its storage`);
    this.dtype = dtype;
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

  get bytes(): number {
    return this.data.byteLength;
  }
}
