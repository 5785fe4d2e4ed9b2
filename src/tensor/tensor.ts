import { BYTES_PER_ELEMENT, type DType } from './dtype.js';

/** Element storage for each dtype: f32 values, or raw 16-bit words for f16/bf16. */
export type Storage = Float32Array | Uint16Array;

/**
 * A device backend's memory holding a tensor's elements (src/backend/cuda): the elements stay there, and only the
 * backend that made the tensor reads them (Backend.read copies them to the host).
 */
export interface DeviceStorage {
  readonly device: string;
  /** Device address of the first element. */
  readonly ptr: number;
}

function isDevice(data: Storage | DeviceStorage): data is DeviceStorage {
  return !ArrayBuffer.isView(data);
}

/**
 * A dense row-major tensor. On the CPU backend `data` is the host array itself; a device backend's tensors keep
 * their elements in device memory (`device`) behind the same shape/dtype description, and their `data` throws.
 * Compute kernels take f32 tensors; f16/bf16 tensors are storage (weights, cache entries) that kernels widen as they
 * read.
 */
export class Tensor {
  readonly size: number;
  readonly dtype: DType;
  /** Where a device backend keeps the elements; undefined for host tensors. */
  readonly device: DeviceStorage | undefined;
  private readonly host: Storage | undefined;

  /** f32 storage takes its dtype from the array; 16-bit words must say whether they are f16 or bf16. */
  constructor(shape: readonly number[], data: Float32Array, dtype?: 'f32');
  constructor(shape: readonly number[], data: Uint16Array, dtype: 'f16' | 'bf16');
  constructor(shape: readonly number[], data: Storage | DeviceStorage, dtype: DType);
  constructor(
    readonly shape: readonly number[],
    data: Storage | DeviceStorage,
    dtype?: DType,
  ) {
    this.size = shape.reduce((a, b) => a * b, 1);
    if (isDevice(data)) {
      if (dtype === undefined) throw new Error('a device tensor needs its dtype');
      this.device = data;
      this.host = undefined;
      this.dtype = dtype;
      return;
    }
    this.device = undefined;
    this.host = data;
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

  /** The host elements; a device tensor has none here (its backend's read() copies them out). */
  get data(): Storage {
    if (!this.host) throw new Error(`this tensor lives in ${this.device!.device} memory: read it through its backend (backend.read)`);
    return this.host;
  }

  static zeros(shape: readonly number[]): Tensor {
    return new Tensor(shape, new Float32Array(shape.reduce((a, b) => a * b, 1)));
  }

  /** The f32 data; throws if this tensor holds 16-bit storage. */
  get f32(): Float32Array {
    const data = this.data;
    if (!(data instanceof Float32Array)) throw new Error(`expected an f32 tensor, got ${this.dtype}`);
    return data;
  }

  get rows(): number {
    return this.shape.length === 1 ? 1 : this.size / this.shape[this.shape.length - 1];
  }

  get cols(): number {
    return this.shape[this.shape.length - 1];
  }

  reshape(shape: readonly number[]): Tensor {
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== this.size) throw new Error(`cannot reshape [${this.shape.join(', ')}] to [${shape.join(', ')}]`);
    return new Tensor(shape, this.host ?? this.device!, this.dtype);
  }

  get bytes(): number {
    return this.host ? this.host.byteLength : this.size * BYTES_PER_ELEMENT[this.dtype];
  }
}
