/**
 * NumPy's .npy format (numpy.lib.format), read and written for the float arrays trained press parts are published
 * in (LU-KV's budget curves): magic "\x93NUMPY", a version byte pair, the header's length (u16 for version 1.0, u32
 * for 2.0 and 3.0), the header — a Python dict literal {'descr': '<f8', 'fortran_order': False, 'shape': (99, 32, 8), }
 * padded with spaces and a newline — then the data. Read: little- or big-endian f2/f4/f8 (widened or narrowed to
 * f64 values here), C or Fortran order (Fortran arrays are transposed to C order); anything else (object arrays,
 * pickles, structured dtypes) is refused with one line. Written: version 1.0, '<f8' or '<f4', C order.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { AttendError } from '../errors.js';

export interface NpyArray {
  shape: number[];
  /** The values in C (row-major) order. */
  data: Float64Array;
  /** The stored dtype, e.g. '<f8'. */
  descr: string;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Parses the header dict literal (only the three keys numpy writes, as Python literals). */
function parseHeader(text: string, source: string): { descr: string; fortran: boolean; shape: number[] } {
  const fail = (why: string): never => {
    throw new AttendError(`${source}: not a .npy file numpy writes (${why})`);
  };
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text)?.[1] ?? fail('no descr');
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1] ?? fail('no fortran_order');
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1] ?? fail('no shape');
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => (/^\d+$/.test(s) ? Number(s) : fail(`shape (${shapeText})`)));
  return { descr, fortran: fortran === 'True', shape };
}

/** Reads a .npy file of floats. */
export function readNpy(path: string): NpyArray {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new AttendError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return parseNpy(bytes, path);
}

export function parseNpy(bytes: Uint8Array, source = '.npy'): NpyArray {
  if (bytes.length < 10 || MAGIC.some((m, i) => bytes[i] !== m)) throw new AttendError(`${source}: not a .npy file (no \\x93NUMPY magic)`);
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLength: number;
  let at: number;
  if (major === 1) {
    headerLength = view.getUint16(8, true);
    at = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new AttendError(`${source}: truncated .npy header`);
    headerLength = view.getUint32(8, true);
    at = 12;
  } else {
    throw new AttendError(`${source}: .npy version ${major}.${bytes[7]} is not one numpy writes (1.0, 2.0, 3.0)`);
  }
  if (at + headerLength > bytes.length) throw new AttendError(`${source}: truncated .npy header`);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(at, at + headerLength));
  const { descr, fortran, shape } = parseHeader(header, source);
  const m = /^([<>|=])f([248])$/.exec(descr);
  if (!m) throw new AttendError(`${source}: dtype '${descr}' is not a float array (only f2, f4 and f8 are read)`);
  const little = m[1] !== '>';
  const width = Number(m[2]);
  const count = shape.reduce((a, b) => a * b, 1);
  const start = at + headerLength;
  if (bytes.length - start !== count * width) {
    throw new AttendError(`${source}: shape (${shape.join(', ')}) of ${descr} needs ${count * width} data bytes, the file has ${bytes.length - start}`);
  }
  const values = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const o = start + i * width;
    values[i] = width === 8 ? view.getFloat64(o, little) : width === 4 ? view.getFloat32(o, little) : half(view.getUint16(o, little));
  }
  return { shape, data: fortran ? fortranToC(values, shape) : values, descr };
}

/** IEEE half precision bits → value. */
function half(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Column-major values → row-major. */
function fortranToC(values: Float64Array, shape: number[]): Float64Array {
  const out = new Float64Array(values.length);
  const n = shape.length;
  const index = new Array<number>(n).fill(0);
  for (let f = 0; f < values.length; f++) {
    // f enumerates column-major order: the first index fastest.
    let c = 0;
    for (let d = 0; d < n; d++) c = c * shape[d] + index[d];
    out[c] = values[f];
    for (let d = 0; d < n; d++) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

/** Writes a .npy file (version 1.0, C order) of f8 or f4 values. */
export function writeNpy(path: string, shape: number[], data: ArrayLike<number>, descr: '<f8' | '<f4' = '<f8'): void {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`writeNpy: shape (${shape.join(', ')}) holds ${count} values, got ${data.length}`);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // numpy pads magic + length + header + '\n' to a multiple of 64 bytes.
  const pad = (64 - ((10 + header.length + 1) % 64)) % 64;
  header += ' '.repeat(pad) + '\n';
  const width = descr === '<f8' ? 8 : 4;
  const out = new Uint8Array(10 + header.length + count * width);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  const view = new DataView(out.buffer);
  view.setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  const start = 10 + header.length;
  for (let i = 0; i < count; i++) {
    if (width === 8) view.setFloat64(start + i * 8, data[i], true);
    else view.setFloat32(start + i * 4, data[i], true);
  }
  writeFileSync(path, out);
}
