/** Reads named weights out of a checkpoint as f32 tensors, with shape checks and clear errors. */
import { AttendError } from '../errors.js';
import type { SafetensorsArchive } from '../io/safetensors.js';
import { Tensor } from '../tensor/tensor.js';

export class WeightReader {
  constructor(
    private readonly archive: SafetensorsArchive,
    private readonly source: string,
  ) {}

  has(name: string): boolean {
    return this.archive.has(name);
  }

  /** The tensor `name` widened to f32; its shape must equal `shape`. */
  get(name: string, shape: number[]): Tensor {
    if (!this.archive.has(name)) throw new AttendError(`${this.source}: missing tensor "${name}"`);
    const entry = this.archive.entry(name);
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      throw new AttendError(
        `${this.source}: tensor "${name}" has shape [${entry.shape.join(', ')}], expected [${shape.join(', ')}]`,
      );
    }
    return new Tensor(shape, this.archive.readF32(name));
  }

  /** The first of `names` that the checkpoint holds (checkpoints differ in prefixes). */
  first(names: string[], shape: number[]): Tensor {
    const name = names.find((n) => this.archive.has(n));
    if (!name) throw new AttendError(`${this.source}: missing tensor "${names[0]}"`);
    return this.get(name, shape);
  }

  /** Rows of several tensors stacked into one, so that one matrix product computes them all. */
  stackRows(parts: Tensor[]): Tensor {
    const data = new Float32Array(parts.reduce((n, p) => n + p.size, 0));
    let offset = 0;
    for (const p of parts) {
      data.set(p.f32, offset);
      offset += p.size;
    }
    const shape = parts[0].shape.length === 1 ? [data.length] : [data.length / parts[0].cols, parts[0].cols];
    return new Tensor(shape, data);
  }
}

/** [in × out] → [out × in]: GPT-2's Conv1D stores weights transposed relative to Linear. */
export function transpose(t: Tensor): Tensor {
  const [r, c] = t.shape;
  const src = t.f32;
  const out = new Float32Array(t.size);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = src[i * c + j];
  return new Tensor([c, r], out);
}
