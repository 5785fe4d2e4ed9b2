/**
 * Safetensors reading and writing.
 *
 * Model files run to many gigabytes, so nothing here reads a whole file: opening reads the 8-byte header length
 * and the JSON header with positional reads and validates every entry up front (so a corrupt download fails at
 * load time with one clear line, not halfway through a forward pass); tensors are then read one at a time at
 * their offsets into fresh, aligned buffers. A model directory holds either `model.safetensors` or
 * `model.safetensors.index.json` plus the shards its `weight_map` names. The writer exists for tests and tools.
 *
 * Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]},
 * "__metadata__"?: {string: string}}, then the data section; offsets are relative to the data section.
 */
/// <reference types="node" />
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AttendError, check } from '../errors.js';
import { type DType, widen } from '../tensor/dtype.js';

export type SafetensorsDType =
  | 'F64' | 'F32' | 'F16' | 'BF16'
  | 'I64' | 'I32' | 'I16' | 'I8'
  | 'U64' | 'U32' | 'U16' | 'U8'
  | 'BOOL' | 'F8_E4M3' | 'F8_E5M2';

/** Bytes per element of every dtype the format defines (that we accept in a header). */
export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<SafetensorsDType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2,
  I64: 8, I32: 4, I16: 2, I8: 1,
  U64: 8, U32: 4, U16: 2, U8: 1,
  BOOL: 1, F8_E4M3: 1, F8_E5M2: 1,
};

export interface TensorEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** The file that holds the tensor. */
  file: string;
  /** Absolute byte range of the tensor's data within `file`. */
  begin: number;
  end: number;
}

export interface ReadTensor {
  dtype: DType;
  shape: number[];
  data: Float32Array | Uint16Array;
}

/** Above this the header is certainly corrupt (real headers are well under 10 MB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** fs.readSync refuses lengths of 2 GiB and more, so large tensors are read in chunks. */
const READ_CHUNK = 1 << 30;

const SINGLE_FILE = 'model.safetensors';
const INDEX_FILE = 'model.safetensors.index.json';

let endianChecked = false;
function checkEndianness(): void {
  if (endianChecked) return;
  check(os.endianness() === 'LE', 'attend reads safetensors only on little-endian CPUs; this one is big-endian');
  endianChecked = true;
}

/** Fills `out` with the bytes at `position`, or fails naming the file. */
function readFully(fd: number, out: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < out.length) {
    const n = fs.readSync(fd, out, done, Math.min(READ_CHUNK, out.length - done), position + done);
    check(n > 0, () => `${file}: unexpected end of file at byte ${position + done} (was the file truncated while open?)`);
    done += n;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** One open, validated safetensors file: its fd, entries (with absolute offsets) and metadata. */
interface OpenFile {
  file: string;
  fd: number;
  entries: Map<string, TensorEntry>;
  metadata: Record<string, string>;
}

function parseFile(file: string): OpenFile {
  let fd: number;
  try {
    check(!fs.statSync(file).isDirectory(), `${file}: is a directory, not a safetensors file`);
    fd = fs.openSync(file, 'r');
  } catch (e) {
    if (e instanceof AttendError) throw e;
    throw new AttendError(`${file}: cannot open safetensors file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  try {
    return { file, fd, ...parseHeader(file, fd) };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

function parseHeader(file: string, fd: number): Pick<OpenFile, 'entries' | 'metadata'> {
  const size = fs.fstatSync(fd).size;
  check(size >= 8, `${file}: file is ${size} bytes, too short to hold the 8-byte safetensors header length`);
  const lenBytes = new Uint8Array(8);
  readFully(fd, lenBytes, 0, file);
  const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
  check(headerLen <= BigInt(MAX_HEADER_BYTES), `${file}: header length ${headerLen} is absurdly large (over 100 MB); not a safetensors file?`);
  const n = Number(headerLen);
  check(8 + n <= size, `${file}: header length ${n} runs past the end of the file (${size} bytes); the file is truncated or not safetensors`);
  const headerBytes = new Uint8Array(n);
  readFully(fd, headerBytes, 8, file);

  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw new AttendError(`${file}: header is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  check(isPlainObject(header), `${file}: header is not a JSON object`);

  const dataStart = 8 + n;
  const dataSize = size - dataStart;
  const metadata: Record<string, string> = {};
  const entries = new Map<string, TensorEntry>();
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      check(isPlainObject(raw), `${file}: __metadata__ is not an object`);
      for (const [k, v] of Object.entries(raw)) {
        check(typeof v === 'string', `${file}: __metadata__ value for '${k}' is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    entries.set(name, parseEntry(file, name, raw, dataStart, dataSize));
  }

  // Tensors may leave gaps, but may not share bytes.
  const sorted = [...entries.values()].filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const [a, b] = [sorted[i - 1], sorted[i]];
    check(b.begin >= a.end, `${file}: tensors '${a.name}' and '${b.name}' overlap (data_offsets [${a.begin - dataStart}, ${a.end - dataStart}] and [${b.begin - dataStart}, ${b.end - dataStart}])`);
  }
  return { entries, metadata };
}

function parseEntry(file: string, name: string, raw: unknown, dataStart: number, dataSize: number): TensorEntry {
  const where = `${file}: tensor '${name}'`;
  check(isPlainObject(raw), `${where} is not an object`);
  const { dtype, shape, data_offsets: offsets } = raw;
  check(dtype !== undefined, `${where} has no dtype`);
  check(shape !== undefined, `${where} has no shape`);
  check(offsets !== undefined, `${where} has no data_offsets`);
  check(typeof dtype === 'string', `${where} has a dtype that is not a string`);
  check(dtype in SAFETENSORS_DTYPE_BYTES, `${where} has unknown dtype '${dtype}' (known: ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')})`);
  check(Array.isArray(shape), `${where} has a shape that is not an array`);
  check(shape.every(isCount), `${where} has shape ${JSON.stringify(shape)}; dims must be non-negative integers`);
  check(Array.isArray(offsets) && offsets.length === 2 && offsets.every(isCount),
    `${where} has data_offsets ${JSON.stringify(offsets)}; expected [begin, end] of non-negative integers`);
  const [begin, end] = offsets as [number, number];
  check(begin <= end, `${where} has data_offsets [${begin}, ${end}] with begin after end`);
  check(end <= dataSize, `${where} has data_offsets [${begin}, ${end}] beyond the end of the data section (${dataSize} bytes)`);
  const elements = (shape as number[]).reduce((a, b) => a * b, 1);
  const bytes = elements * SAFETENSORS_DTYPE_BYTES[dtype as SafetensorsDType];
  check(bytes === end - begin,
    `${where} has shape [${shape.join(', ')}] of ${dtype} (${bytes} bytes) but data_offsets [${begin}, ${end}] span ${end - begin} bytes`);
  return { name, dtype: dtype as SafetensorsDType, shape: [...(shape as number[])], file, begin: dataStart + begin, end: dataStart + end };
}

export class SafetensorsArchive {
  /** Tensor bytes over all files (the size of the weights in memory at their stored dtypes). */
  readonly dataBytes: number;
  private closed = false;

  private constructor(
    /** The directory or file this archive was opened from, for messages. */
    readonly source: string,
    private readonly files: OpenFile[],
    private readonly entries: Map<string, TensorEntry>,
    readonly metadata: Record<string, string>,
  ) {
    let total = 0;
    for (const e of entries.values()) total += e.end - e.begin;
    this.dataBytes = total;
  }

  /**
   * Opens a model directory: `model.safetensors` if present (as transformers prefers it), else
   * `model.safetensors.index.json` and its shards. A path to a single `.safetensors` file is accepted too.
   */
  static open(dir: string): SafetensorsArchive {
    checkEndianness();
    let stat: fs.Stats;
    try {
      stat = fs.statSync(dir);
    } catch {
      throw new AttendError(`${dir}: model directory does not exist`);
    }
    if (stat.isFile()) return SafetensorsArchive.openFile(dir);
    check(stat.isDirectory(), `${dir}: not a directory or a file`);
    const single = path.join(dir, SINGLE_FILE);
    if (fs.existsSync(single)) return SafetensorsArchive.openFile(single);
    const index = path.join(dir, INDEX_FILE);
    if (fs.existsSync(index)) return SafetensorsArchive.openSharded(dir, index);
    const found = fs.readdirSync(dir).filter((f) => /\.(safetensors|bin|pt|pth|gguf)$/.test(f));
    throw new AttendError(`${dir}: no ${SINGLE_FILE} or ${INDEX_FILE} found` +
      (found.length ? ` (weight-like files present: ${found.slice(0, 5).join(', ')}${found.length > 5 ? ', ...' : ''}; only safetensors with those names are read)` : ''));
  }

  /** Opens one safetensors file. */
  static openFile(file: string): SafetensorsArchive {
    checkEndianness();
    const f = parseFile(file);
    return new SafetensorsArchive(file, [f], f.entries, f.metadata);
  }

  private static openSharded(dir: string, indexPath: string): SafetensorsArchive {
    let index: unknown;
    try {
      index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
    } catch (e) {
      throw new AttendError(`${indexPath}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
    }
    check(isPlainObject(index) && isPlainObject(index.weight_map), `${indexPath}: has no weight_map object`);
    const weightMap = index.weight_map;
    const shardNames = new Set<string>();
    for (const [name, shard] of Object.entries(weightMap)) {
      check(typeof shard === 'string', `${indexPath}: weight_map entry for '${name}' is not a file name`);
      check(!path.isAbsolute(shard) && !shard.split(/[\\/]/).includes('..'),
        `${indexPath}: weight_map names shard '${shard}', which is outside the model directory`);
      shardNames.add(shard);
    }
    check(shardNames.size > 0, `${indexPath}: weight_map is empty`);

    const files: OpenFile[] = [];
    const byShard = new Map<string, OpenFile>();
    try {
      for (const shard of shardNames) {
        const file = path.join(dir, shard);
        check(fs.existsSync(file), `${indexPath}: shard '${shard}' named in weight_map is missing (${file})`);
        const f = parseFile(file);
        files.push(f);
        byShard.set(shard, f);
      }
      // The map decides which shard a tensor comes from; tensors a shard holds beyond the map are kept too.
      const entries = new Map<string, TensorEntry>();
      for (const [name, shard] of Object.entries(weightMap) as [string, string][]) {
        const entry = byShard.get(shard)!.entries.get(name);
        check(entry, `${indexPath}: tensor '${name}' is mapped to shard '${shard}', which does not contain it`);
        entries.set(name, entry);
      }
      for (const f of files) for (const [name, e] of f.entries) if (!entries.has(name)) entries.set(name, e);
      const metadata: Record<string, string> = {};
      for (const f of files) Object.assign(metadata, f.metadata);
      return new SafetensorsArchive(dir, files, entries, metadata);
    } catch (e) {
      for (const f of files) fs.closeSync(f.fd);
      throw e;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  entry(name: string): TensorEntry {
    const e = this.entries.get(name);
    check(e, () => `${this.source}: no tensor named '${name}'`);
    return e;
  }

  /** The raw little-endian bytes of one tensor, in a fresh buffer (offset 0, so any typed view is aligned). */
  readBytes(name: string): Uint8Array {
    check(!this.closed, () => `${this.source}: archive is closed`);
    const e = this.entry(name);
    const f = this.files.find((x) => x.file === e.file)!;
    const out = new Uint8Array(e.end - e.begin);
    readFully(f.fd, out, e.begin, e.file);
    return out;
  }

  /** Reads one tensor: F32 as f32, F16/BF16 as their 16-bit words, F64 narrowed to f32; other dtypes fail. */
  read(name: string): ReadTensor {
    const e = this.entry(name);
    const shape = [...e.shape];
    switch (e.dtype) {
      case 'F32':
        return { dtype: 'f32', shape, data: new Float32Array(this.readBytes(name).buffer) };
      case 'F16':
      case 'BF16':
        return { dtype: e.dtype === 'F16' ? 'f16' : 'bf16', shape, data: new Uint16Array(this.readBytes(name).buffer) };
      case 'F64':
        return { dtype: 'f32', shape, data: Float32Array.from(new Float64Array(this.readBytes(name).buffer)) };
      default:
        throw new AttendError(`${e.file}: tensor '${name}' has dtype ${e.dtype}; only F32, F16, BF16 and F64 can be loaded as weights`);
    }
  }

  /** Reads one float tensor widened (or narrowed, for F64) to f32. */
  readF32(name: string): Float32Array {
    const t = this.read(name);
    return t.data instanceof Float32Array ? t.data : widen(t.dtype as 'f16' | 'bf16', t.data);
  }

  /** Closes the file descriptors; reads after this fail. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const f of this.files) fs.closeSync(f.fd);
  }
}

const WRITE_DTYPE: Record<DType, SafetensorsDType> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

/**
 * Writes a standard safetensors file: `__metadata__` first when given, tensors in the given order with
 * contiguous offsets, header padded with spaces to 8 bytes. Written to a temp file and renamed into place, so a
 * failure leaves no half-written file behind.
 */
export function writeSafetensors(
  file: string,
  tensors: Record<string, { dtype: DType; shape: number[]; data: Float32Array | Uint16Array }>,
  metadata?: Record<string, string>,
): void {
  checkEndianness();
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const elements = t.shape.reduce((a, b) => a * b, 1);
    if (elements !== t.data.length) throw new Error(`writeSafetensors: '${name}' has shape [${t.shape.join(', ')}] but ${t.data.length} elements`);
    if ((t.dtype === 'f32') !== (t.data instanceof Float32Array)) throw new Error(`writeSafetensors: '${name}' is ${t.dtype} but its data is a ${t.data.constructor.name}`);
    header[name] = { dtype: WRITE_DTYPE[t.dtype], shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (jsonBytes % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));

  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, headerBytes);
    for (const t of Object.values(tensors)) {
      const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      for (let done = 0; done < bytes.length;) done += fs.writeSync(fd, bytes, done, Math.min(READ_CHUNK, bytes.length - done));
    }
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (e) {
    try { fs.closeSync(fd); } catch { /* already closed */ }
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
