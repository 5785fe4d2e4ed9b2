/**
 * Reads named weights out of a checkpoint in their stored dtype (f32, f16 or bf16: F64 is narrowed to f32), with
 * shape checks and clear errors. The model hands each finished weight to its backend (Backend.weight), which widens
 * it, or keeps it 16-bit, or uploads it, as that backend computes.
 */
import { AttendError } from '../errors.js';
import type { SafetensorsArchive } from '../io/safetensors.js';
import { widen } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';

/**
 * Tensors of a shapes-only reader: the right shape, all zeros, sharing one buffer that nothing ever writes, so
 * that untouched they take no resident memory. A model built on them must never run.
 */
const placeholders = new WeakSet<Tensor>();
let placeholderBuffer = new ArrayBuffer(0);

function placeholder(shape: number[]): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  if (placeholderBuffer.byteLength < 4 * size) placeholderBuffer = new ArrayBuffer(4 * size);
  const t = new Tensor(shape, new Float32Array(placeholderBuffer, 0, size));
  placeholders.add(t);
  return t;
}

export interface WeightReaderOptions {
  /**
   * Check every requested tensor's presence and shape against the header but read no data, returning
   * placeholders (see above): what `attend info` needs to know the checkpoint matches its config.
   */
  shapesOnly?: boolean;
}

export class WeightReader {
  private readonly shapesOnly: boolean;

  constructor(
    private readonly archive: SafetensorsArchive,
    private readonly source: string,
    opts: WeightReaderOptions = {},
  ) {
    this.shapesOnly = opts.shapesOnly ?? false;
  }

  has(name: string): boolean {
    return this.archive.has(name);
  }

  /** The tensor `name` as stored; its shape must equal `shape`. */
  get(name: string, shape: number[]): Tensor {
    if (!this.archive.has(name)) throw new AttendError(`${this.source}: missing tensor "${name}"`);
    const entry = this.archive.entry(name);
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      throw new AttendError(
        `${this.source}: tensor "${name}" has shape [${entry.shape.join(', ')}], expected [${shape.join(', ')}]`,
      );
    }
    if (this.shapesOnly) return placeholder(shape);
    const t = this.archive.read(name);
    const bad = t.data instanceof Float32Array ? firstNonFinite(t.data) : firstNonFiniteHalf(t.dtype as 'f16' | 'bf16', t.data);
    if (bad >= 0) {
      const index = unravel(bad, shape);
      const value = t.data instanceof Float32Array ? t.data[bad] : widen(t.dtype as 'f16' | 'bf16', t.data.subarray(bad, bad + 1))[0];
      throw new AttendError(
        `${entry.file}: tensor "${name}" holds ${value} at [${index.join(', ')}] (element ${bad} of ${t.data.length}); the checkpoint is corrupt (weights must be finite)`,
      );
    }
    return t.data instanceof Float32Array ? new Tensor(shape, t.data) : new Tensor(shape, t.data, t.dtype as 'f16' | 'bf16');
  }

  /** Rows of several tensors stacked into one, so that one matrix product computes them all. */
  stackRows(parts: Tensor[]): Tensor {
    if (parts.some((p) => placeholders.has(p))) {
      const rows = parts.reduce((n, p) => n + p.shape[0], 0);
      return placeholder(parts[0].shape.length === 1 ? [rows] : [rows, parts[0].cols]);
    }
    // One dtype for the stack: the parts' own if they agree (a checkpoint's usually do), else all widened to f32.
    const same = parts.every((p) => p.dtype === parts[0].dtype);
    const size = parts.reduce((n, p) => n + p.size, 0);
    const data = same && parts[0].dtype !== 'f32' ? new Uint16Array(size) : new Float32Array(size);
    let offset = 0;
    for (const p of parts) {
      if (data instanceof Uint16Array) data.set(p.data as Uint16Array, offset);
      else data.set(asF32(p), offset);
      offset += p.size;
    }
    const shape = parts[0].shape.length === 1 ? [size] : [size / parts[0].cols, parts[0].cols];
    return data instanceof Uint16Array ? new Tensor(shape, data, parts[0].dtype as 'f16' | 'bf16') : new Tensor(shape, data);
  }
}

/**
 * Index of the first NaN or ±Infinity in `data`, or -1 (x - x is 0 for every finite x, NaN otherwise).
 *
 * Weights are checked as they are read rather than lazily on first use: the check is one pass over memory the
 * read has just written, and a corrupt checkpoint then fails at load with the tensor's name, not mid-generation.
 * Measured on the bundled attend-mini (30.9M parameters, 74 tensors), loadModel, median of 7 runs on the 2-core
 * development machine while shared (load average about 10, so noisy): 158-470 ms without the check, 304-649 ms
 * with it, over three interleaved rounds; the scan alone, over the 30.9M widened floats, 49-72 ms (median of 9),
 * about 15-25% of a load. Checking lazily would not save it: the first forward pass reads every weight, so the
 * same scan would only move to the first token, and would need a flag per tensor in the forward paths.
 */
export function firstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) {
    const x = data[i];
    if (x - x !== 0) return i;
  }
  return -1;
}

/** Index of the first NaN or ±Infinity among 16-bit words (exponent bits all ones), or -1. */
export function firstNonFiniteHalf(dtype: 'f16' | 'bf16', data: Uint16Array): number {
  const mask = dtype === 'f16' ? 0x7c00 : 0x7f80;
  for (let i = 0; i < data.length; i++) if ((data[i] & mask) === mask) return i;
  return -1;
}

/** f32 values of a stored tensor (a view for f32 storage, a widened copy for 16-bit). */
export function asF32(t: Tensor): Float32Array {
  return t.data instanceof Float32Array ? t.data : widen(t.dtype as 'f16' | 'bf16', t.data);
}

/** The multi-index of flat element `i` in a row-major tensor of `shape`. */
function unravel(i: number, shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    out[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return out;
}

/** [in × out] → [out × in]: GPT-2's Conv1D stores weights transposed relative to Linear. */
export function transpose(t: Tensor): Tensor {
  const [r, c] = t.shape;
  if (placeholders.has(t)) return placeholder([c, r]);
  const src = t.data;
  const out = src instanceof Float32Array ? new Float32Array(t.size) : new Uint16Array(t.size);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = src[i * c + j];
  return out instanceof Float32Array ? new Tensor([c, r], out) : new Tensor([c, r], out, t.dtype as 'f16' | 'bf16');
}
