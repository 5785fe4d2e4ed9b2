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
 *
 * As strict as the format's reference implementation (huggingface/safetensors), so that a corrupt file fails
 * instead of loading shifted: the header is at most 100,000,000 bytes, each name appears once, and the tensors
 * tile the data section exactly (no gaps, no overlaps, nothing after the last one). Only regular files are
 * opened (a FIFO would block). Limits: MAX_HEADER_BYTES, MAX_TENSORS_PER_FILE.
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

/**
 * The format's limit: the reference implementation (huggingface/safetensors, `MAX_HEADER_SIZE`) refuses headers
 * over 100,000,000 bytes, so a file with a larger header is one no other tool reads; real headers are well under
 * 10 MB. Not configurable for that reason.
 */
export const MAX_HEADER_BYTES = 100_000_000;
/**
 * Nesting allowed inside header fields we do not know and skip (serde_json, which the reference parses with,
 * stops at 128 too). Known fields are at most two deep.
 */
const MAX_JSON_DEPTH = 128;
/**
 * The most tensors one file may list. Each entry costs about 0.5 KB of memory once parsed (the entry, its shape,
 * its name and the map), so a 100 MB header of tiny entries (about 1.7 million) would take close to a gigabyte;
 * this bounds a header's cost at about 100 MB beyond its own bytes. Real checkpoints are far below it (the
 * largest mixture-of-experts models list tens of thousands of tensors over all their shards). A checkpoint with
 * more tensors can be split into shards (model.safetensors.index.json), each under the limit.
 */
export const MAX_TENSORS_PER_FILE = 200_000;
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

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a plain file';
}

/**
 * Refuses anything but a regular file before it is opened: opening a FIFO blocks until a writer appears (a FIFO
 * as a shard hung the process), and a device never ends. `what` names the file's role for the message.
 */
function checkRegularFile(file: string, what: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    throw new AttendError(`${file}: cannot open ${what} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  check(!st.isDirectory(), `${file}: is a directory, not a ${what}`);
  check(st.isFile(), `${file}: is not a regular file (${kindOf(st)}); a ${what} must be a plain file`);
}

/** One open, validated safetensors file: its fd, entries (with absolute offsets) and metadata. */
interface OpenFile {
  file: string;
  fd: number;
  entries: Map<string, TensorEntry>;
  metadata: Record<string, string>;
}

function parseFile(file: string): OpenFile {
  checkRegularFile(file, 'safetensors file');
  let fd: number;
  try {
    // O_NONBLOCK: should the path have become a FIFO since the check, opening it still does not block (the
    // fstat below then refuses it); on a regular file the flag changes nothing.
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (e) {
    throw new AttendError(`${file}: cannot open safetensors file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  try {
    const st = fs.fstatSync(fd);
    check(st.isFile(), `${file}: is not a regular file (${kindOf(st)}); a safetensors file must be a plain file`);
    return { file, fd, ...parseHeader(file, fd, st.size) };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

function parseHeader(file: string, fd: number, size: number): Pick<OpenFile, 'entries' | 'metadata'> {
  check(size >= 8, `${file}: file is ${size} bytes, too short to hold the 8-byte safetensors header length`);
  const lenBytes = new Uint8Array(8);
  readFully(fd, lenBytes, 0, file);
  const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
  check(headerLen <= BigInt(MAX_HEADER_BYTES),
    `${file}: header length ${headerLen} exceeds the safetensors format's limit of ${MAX_HEADER_BYTES} bytes (the reference implementation's; not raisable); the file is corrupt or not safetensors`);
  const n = Number(headerLen);
  check(8 + n <= size, `${file}: header length ${n} runs past the end of the file (${size} bytes); the file is truncated or not safetensors`);
  const text = readHeaderText(fd, n, file);
  const dataStart = 8 + n;
  const { entries, metadata } = new HeaderParser(text, file, dataStart, size - dataStart).parse();
  checkTiling(file, entries, dataStart, size);
  return { entries, metadata };
}

/** The header's n bytes as text (a function of its own, so that the bytes are garbage once it is decoded). */
function readHeaderText(fd: number, n: number, file: string): string {
  const headerBytes = new Uint8Array(n);
  readFully(fd, headerBytes, 8, file);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new AttendError(`${file}: header is not valid JSON (it is not UTF-8)`);
  }
}

/**
 * The reference implementation's rule: the tensors, sorted by offset, tile the data section exactly, from its
 * first byte to the end of the file. A gap, an overlap or trailing bytes mean a wrong header length field (the
 * audit's "4 bytes short" header read every tensor 4 bytes early and loaded) or a corrupt file.
 */
function checkTiling(file: string, entries: Map<string, TensorEntry>, dataStart: number, size: number): void {
  const sorted = [...entries.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  const rel = (x: number) => x - dataStart;
  let pos = dataStart;
  let prev: TensorEntry | undefined;
  for (const e of sorted) {
    if (e.begin < pos) {
      throw new AttendError(`${file}: tensors '${prev!.name}' and '${e.name}' overlap (data_offsets [${rel(prev!.begin)}, ${rel(prev!.end)}] and [${rel(e.begin)}, ${rel(e.end)}])`);
    }
    if (e.begin > pos) {
      throw new AttendError(prev
        ? `${file}: ${e.begin - pos} unused bytes between tensors '${prev.name}' (ends at data offset ${rel(pos)}) and '${e.name}' (begins at ${rel(e.begin)}); safetensors data must be contiguous (a wrong header length field or a corrupt file)`
        : `${file}: ${e.begin - pos} unused bytes before the first tensor '${e.name}' (begins at data offset ${rel(e.begin)}); safetensors data must start at offset 0 (a wrong header length field or a corrupt file)`);
    }
    pos = e.end;
    prev = e;
  }
  if (pos < size) {
    throw new AttendError(prev && pos > dataStart
      ? `${file}: ${size - pos} bytes after the end of the last tensor '${prev.name}' (the data section is ${size - dataStart} bytes, the tensors end at ${rel(pos)}); safetensors data must end exactly at the end of the file (trailing bytes, or a wrong header length field)`
      : `${file}: ${size - pos} bytes after the end of the header, but the header lists no tensor data; safetensors data must end exactly at the end of the file (trailing bytes, or a wrong header length field)`);
  }
}

const enum Ch { Space = 32, Tab = 9, Lf = 10, Cr = 13, Quote = 34, Backslash = 92, Comma = 44, Colon = 58, Minus = 45,
  Zero = 48, Nine = 57, LBracket = 91, RBracket = 93, LBrace = 123, RBrace = 125 }

/** A shape or data_offsets value: the integers, or what was wrong with it (the text, for the message). */
type IntList = number[] | { notArray: true } | { bad: string };

/**
 * A strict, single-pass parser for the safetensors header, written for it rather than using JSON.parse:
 * - duplicate names (tensors, fields of an entry, metadata keys) are refused; JSON.parse silently keeps the last;
 * - it builds only the entries, never a generic object tree, and stops at MAX_TENSORS_PER_FILE: on a 68 MB header
 *   of 1.15 million tiny entries JSON.parse peaked at 1,019 MB resident (the audit saw 867 MB), this parser
 *   without the bound at 669 MB, with it (refused after 200,000 entries) at 242 MB (76 MB of it the bare process);
 * - integers in shapes and offsets must be written as integers (no 1.0 or 1e3, as the reference's serde).
 * Unknown fields of an entry are skipped (validated as JSON, nesting bounded by MAX_JSON_DEPTH).
 */
class HeaderParser {
  private i = 0;
  private readonly len: number;

  constructor(
    private readonly s: string,
    private readonly file: string,
    private readonly dataStart: number,
    private readonly dataSize: number,
  ) {
    this.len = s.length;
  }

  parse(): { entries: Map<string, TensorEntry>; metadata: Record<string, string> } {
    const entries = new Map<string, TensorEntry>();
    const metadata: Record<string, string> = {};
    let sawMetadata = false;
    if (this.peek() !== Ch.LBrace) {
      this.skipValue(0);
      this.end();
      throw new AttendError(`${this.file}: header is not a JSON object`);
    }
    this.i++;
    if (this.peek() === Ch.RBrace) {
      this.i++;
    } else {
      for (;;) {
        if (this.peek() !== Ch.Quote) this.fail('expected a tensor name');
        const name = this.string();
        this.expect(Ch.Colon, "':'");
        if (name === '__metadata__') {
          check(!sawMetadata, `${this.file}: '__metadata__' appears twice in the header`);
          sawMetadata = true;
          this.metadata(metadata);
        } else {
          if (entries.has(name)) throw new AttendError(`${this.file}: tensor name '${name}' appears twice in the header; each name may appear once`);
          if (entries.size >= MAX_TENSORS_PER_FILE) {
            throw new AttendError(`${this.file}: header lists more than ${MAX_TENSORS_PER_FILE} tensors, attend's limit per file (MAX_TENSORS_PER_FILE, which bounds the memory a header costs); to hold more, split the checkpoint into shards with a model.safetensors.index.json`);
          }
          entries.set(name, this.entry(name));
        }
        const c = this.peek();
        this.i++;
        if (c === Ch.RBrace) break;
        if (c !== Ch.Comma) { this.i--; this.fail("expected ',' or '}' after an entry"); }
      }
    }
    this.end();
    return { entries, metadata };
  }

  private fail(what: string): never {
    const found = this.i < this.len ? `${JSON.stringify(this.s[this.i])} at character ${this.i}` : `the end of the header at character ${this.i}`;
    throw new AttendError(`${this.file}: header is not valid JSON (${what}, found ${found})`);
  }

  private end(): void {
    if (this.peek() !== -1) this.fail('expected the end of the header');
  }

  /** Skips JSON whitespace; the next char code, or -1 at the end. */
  private peek(): number {
    const s = this.s;
    let i = this.i;
    for (; i < this.len; i++) {
      const c = s.charCodeAt(i);
      if (c !== Ch.Space && c !== Ch.Lf && c !== Ch.Cr && c !== Ch.Tab) break;
    }
    this.i = i;
    return i < this.len ? s.charCodeAt(i) : -1;
  }

  private expect(c: number, what: string): void {
    if (this.peek() !== c) this.fail(`expected ${what}`);
    this.i++;
  }

  /** Scans a string at the cursor (at its quote); returns its value, decoded only when it has escapes. */
  private string(): string {
    const s = this.s;
    const start = this.i;
    let i = start + 1;
    let escaped = false;
    for (;;) {
      if (i >= this.len) { this.i = i; this.fail('unterminated string'); }
      const c = s.charCodeAt(i);
      if (c === Ch.Quote) break;
      if (c < 0x20) { this.i = i; this.fail('control character in a string'); }
      if (c === Ch.Backslash) {
        escaped = true;
        const e = s[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(s.slice(i + 2, i + 6))) { this.i = i; this.fail('bad \\u escape'); }
          i += 6;
        } else {
          if (e === undefined || !'"\\/bfnrt'.includes(e)) { this.i = i; this.fail('bad escape'); }
          i += 2;
        }
        continue;
      }
      i++;
    }
    this.i = i + 1;
    return escaped ? (JSON.parse(s.slice(start, i + 1)) as string) : s.slice(start + 1, i);
  }

  /** Scans a number at the cursor per the JSON grammar; returns its text. */
  private number(): string {
    const s = this.s;
    const start = this.i;
    let i = start;
    const digits = () => { const d = i; while (i < this.len && s.charCodeAt(i) >= Ch.Zero && s.charCodeAt(i) <= Ch.Nine) i++; return i > d; };
    if (s.charCodeAt(i) === Ch.Minus) i++;
    if (s.charCodeAt(i) === Ch.Zero) i++;
    else if (!digits()) { this.i = i; this.fail('expected a digit'); }
    if (s[i] === '.') { i++; if (!digits()) { this.i = i; this.fail('expected a digit after the decimal point'); } }
    if (s[i] === 'e' || s[i] === 'E') {
      i++;
      if (s[i] === '+' || s[i] === '-') i++;
      if (!digits()) { this.i = i; this.fail('expected a digit in the exponent'); }
    }
    this.i = i;
    return s.slice(start, i);
  }

  /** Skips (and so validates) any JSON value at the cursor. */
  private skipValue(depth: number): void {
    if (depth > MAX_JSON_DEPTH) this.fail(`nested more than ${MAX_JSON_DEPTH} deep`);
    const c = this.peek();
    if (c === Ch.Quote) { this.string(); return; }
    if (c === Ch.Minus || (c >= Ch.Zero && c <= Ch.Nine)) { this.number(); return; }
    if (c === Ch.LBrace || c === Ch.LBracket) {
      const close = c === Ch.LBrace ? Ch.RBrace : Ch.RBracket;
      this.i++;
      if (this.peek() === close) { this.i++; return; }
      for (;;) {
        if (c === Ch.LBrace) {
          if (this.peek() !== Ch.Quote) this.fail('expected a string key');
          this.string();
          this.expect(Ch.Colon, "':'");
        }
        this.skipValue(depth + 1);
        const d = this.peek();
        this.i++;
        if (d === close) return;
        if (d !== Ch.Comma) { this.i--; this.fail(`expected ',' or '${String.fromCharCode(close)}'`); }
      }
    }
    for (const lit of ['true', 'false', 'null']) {
      if (this.s.startsWith(lit, this.i)) { this.i += lit.length; return; }
    }
    this.fail('expected a value');
  }

  /** The text of the value from `start` to the cursor, shortened and on one line, for messages. */
  private snippet(start: number): string {
    const t = this.s.slice(start, Math.min(this.i, start + 64)).replace(/\s+/g, ' ');
    return this.i - start > 64 ? `${t}...` : t;
  }

  /** An array of non-negative integers (shape, data_offsets), or what it was instead. */
  private intList(): IntList {
    const start = this.i;
    if (this.peek() !== Ch.LBracket) { this.skipValue(1); return { notArray: true }; }
    this.i++;
    const out: number[] = [];
    let ok = true;
    if (this.peek() === Ch.RBracket) { this.i++; return out; }
    for (;;) {
      const c = this.peek();
      if (c >= Ch.Zero && c <= Ch.Nine) {
        const t = this.number();
        const v = Number(t);
        // Integers as integers: no sign, fraction, exponent or leading zero (the reference's serde refuses 1.0).
        if ((t.length === 1 || t.charCodeAt(0) !== Ch.Zero) && Number.isSafeInteger(v) && !/[.eE]/.test(t)) out.push(v);
        else ok = false;
      } else {
        this.skipValue(2);
        ok = false;
      }
      const d = this.peek();
      this.i++;
      if (d === Ch.RBracket) break;
      if (d !== Ch.Comma) { this.i--; this.fail("expected ',' or ']'"); }
    }
    return ok ? out : { bad: this.snippet(start) };
  }

  private metadata(into: Record<string, string>): void {
    const file = this.file;
    if (this.peek() !== Ch.LBrace) { this.skipValue(1); throw new AttendError(`${file}: __metadata__ is not an object`); }
    this.i++;
    if (this.peek() === Ch.RBrace) { this.i++; return; }
    for (;;) {
      if (this.peek() !== Ch.Quote) this.fail('expected a string key');
      const k = this.string();
      this.expect(Ch.Colon, "':'");
      check(this.peek() === Ch.Quote, () => `${file}: __metadata__ value for '${k}' is not a string`);
      const v = this.string();
      check(!Object.hasOwn(into, k), () => `${file}: __metadata__ key '${k}' appears twice in the header`);
      // defineProperty, not assignment: a key '__proto__' must be data, not the object's prototype.
      Object.defineProperty(into, k, { value: v, enumerable: true, writable: true, configurable: true });
      const d = this.peek();
      this.i++;
      if (d === Ch.RBrace) return;
      if (d !== Ch.Comma) { this.i--; this.fail("expected ',' or '}'"); }
    }
  }

  private entryFail(name: string, what: string): never {
    throw new AttendError(`${this.file}: tensor '${name}' ${what}`);
  }

  private entry(name: string): TensorEntry {
    // Messages are built only on failure (no closure or string per entry: this runs once per tensor).
    if (this.peek() !== Ch.LBrace) { this.skipValue(1); this.entryFail(name, 'is not an object'); }
    this.i++;
    let dtype: string | null | undefined; // null: present, not a string
    let shape: IntList | undefined;
    let offsets: IntList | undefined;
    if (this.peek() === Ch.RBrace) {
      this.i++;
    } else {
      for (;;) {
        if (this.peek() !== Ch.Quote) this.fail('expected a string key');
        const key = this.string();
        this.expect(Ch.Colon, "':'");
        if (key === 'dtype') {
          if (dtype !== undefined) this.entryFail(name, "has field 'dtype' twice");
          if (this.peek() === Ch.Quote) dtype = this.string();
          else { this.skipValue(1); dtype = null; }
        } else if (key === 'shape') {
          if (shape !== undefined) this.entryFail(name, "has field 'shape' twice");
          shape = this.intList();
        } else if (key === 'data_offsets') {
          if (offsets !== undefined) this.entryFail(name, "has field 'data_offsets' twice");
          offsets = this.intList();
        } else {
          this.skipValue(1);
        }
        const d = this.peek();
        this.i++;
        if (d === Ch.RBrace) break;
        if (d !== Ch.Comma) { this.i--; this.fail("expected ',' or '}'"); }
      }
    }
    if (dtype === undefined) return this.entryFail(name, 'has no dtype');
    if (shape === undefined) return this.entryFail(name, 'has no shape');
    if (offsets === undefined) return this.entryFail(name, 'has no data_offsets');
    if (dtype === null) return this.entryFail(name, 'has a dtype that is not a string');
    if (!Object.hasOwn(SAFETENSORS_DTYPE_BYTES, dtype)) this.entryFail(name, `has unknown dtype '${dtype}' (known: ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')})`);
    if (!Array.isArray(shape)) return this.entryFail(name, 'notArray' in shape ? 'has a shape that is not an array' : `has shape ${shape.bad}; dims must be non-negative integers`);
    if (!Array.isArray(offsets) || offsets.length !== 2) {
      const text = Array.isArray(offsets) ? JSON.stringify(offsets) : 'bad' in offsets ? offsets.bad : 'that are not an array';
      return this.entryFail(name, `has data_offsets ${text}; expected [begin, end] of non-negative integers`);
    }
    const [begin, end] = offsets;
    if (begin > end) this.entryFail(name, `has data_offsets [${begin}, ${end}] with begin after end`);
    if (end > this.dataSize) this.entryFail(name, `has data_offsets [${begin}, ${end}] beyond the end of the data section (${this.dataSize} bytes)`);
    let elements = 1;
    for (const d of shape) elements *= d;
    const bytes = elements * SAFETENSORS_DTYPE_BYTES[dtype as SafetensorsDType];
    if (bytes !== end - begin) {
      this.entryFail(name, `has shape [${shape.join(', ')}] of ${dtype} (${bytes} bytes) but data_offsets [${begin}, ${end}] span ${end - begin} bytes`);
    }
    return { name, dtype: dtype as SafetensorsDType, shape, file: this.file, begin: this.dataStart + begin, end: this.dataStart + end };
  }
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
    checkRegularFile(indexPath, 'shard index');
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
