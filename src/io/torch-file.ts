/**
 * Reads files written by torch.save (the zip format torch uses since 1.6), for trained press parts published that
 * way (Fast KVzip's gates: a dict whose "module" is a list of per-layer state dicts). No code in the file runs: the
 * pickle is interpreted by a small machine that knows the opcodes of protocols 0-5 and builds plain values — dicts
 * (PyDict, insertion-ordered Map), lists, tuples (arrays), strings, numbers, bytes, None/True/False — and tensors
 * (torch._utils._rebuild_tensor_v2 / _rebuild_parameter over the archive's storages). Every other global a file
 * names (numpy arrays in a training log, optimiser classes…) becomes an opaque PyObject that records its name and
 * arguments and is never called, so such entries load without being understood. The legacy (pre-1.6, non-zip)
 * format is refused with one line.
 *
 * Archive: a zip (entries stored, or deflated) holding `<name>/data.pkl`, `<name>/data/<key>` (one per storage, raw
 * little-endian elements unless `<name>/byteorder` says big) and `<name>/version`.
 */
import { readFileSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { AttendError } from '../errors.js';

/** A Python dict (or OrderedDict): insertion-ordered, keys as the pickle gave them. */
export class PyDict extends Map<unknown, unknown> {
  /** Attributes a BUILD set on it (an OrderedDict state_dict's `_metadata`). */
  attributes?: unknown;
}

/** A global the machine does not build (its module and name), or an object made by calling one. */
export class PyObject {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly args: unknown[] = [],
    public state: unknown = undefined,
  ) {}
}

export type TorchDType = 'f64' | 'f32' | 'f16' | 'bf16' | 'i64' | 'i32' | 'i16' | 'i8' | 'u8' | 'bool';

const STORAGE_TYPES: Record<string, { dtype: TorchDType; bytes: number }> = {
  DoubleStorage: { dtype: 'f64', bytes: 8 },
  FloatStorage: { dtype: 'f32', bytes: 4 },
  HalfStorage: { dtype: 'f16', bytes: 2 },
  BFloat16Storage: { dtype: 'bf16', bytes: 2 },
  LongStorage: { dtype: 'i64', bytes: 8 },
  IntStorage: { dtype: 'i32', bytes: 4 },
  ShortStorage: { dtype: 'i16', bytes: 2 },
  CharStorage: { dtype: 'i8', bytes: 1 },
  ByteStorage: { dtype: 'u8', bytes: 1 },
  BoolStorage: { dtype: 'bool', bytes: 1 },
};

/** A storage of the archive (persistent id ('storage', type, key, location, numel)). */
interface StorageRef {
  dtype: TorchDType;
  bytes: number;
  key: string;
  numel: number;
}

/** A tensor of the file: its dtype, shape and values (C order). */
export class TorchTensor {
  constructor(
    readonly dtype: TorchDType,
    readonly shape: number[],
    private readonly read: () => Float64Array,
  ) {}

  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** The values in C order, as f32 (what Attend computes in). */
  f32(): Float32Array {
    return Float32Array.from(this.read());
  }

  /** The values in C order, exactly (f64 holds every stored dtype's values). */
  f64(): Float64Array {
    return this.read();
  }
}

/** The zip entries of a file, by name. */
function zipEntries(bytes: Uint8Array, source: string): Map<string, Uint8Array> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (why: string): never => {
    throw new AttendError(`${source}: not a torch.save zip archive (${why})`);
  };
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
    if (view.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    // torch.save's legacy format starts with a pickled magic number, not a zip.
    if (bytes[0] === 0x80) throw new AttendError(`${source}: a legacy (pre-1.6) torch file; only the zip format torch.save writes since 1.6 is read`);
    fail('no end of central directory');
  }
  let count = view.getUint16(eocd + 10, true);
  let dirOffset = view.getUint32(eocd + 16, true);
  if (count === 0xffff || dirOffset === 0xffffffff) {
    // Zip64: the locator right before the end record points at the zip64 end record.
    const locator = eocd - 20;
    if (locator < 0 || view.getUint32(locator, true) !== 0x07064b50) fail('zip64 without its locator');
    const end64 = Number(view.getBigUint64(locator + 8, true));
    if (view.getUint32(end64, true) !== 0x06064b50) fail('zip64 end record missing');
    count = Number(view.getBigUint64(end64 + 32, true));
    dirOffset = Number(view.getBigUint64(end64 + 48, true));
  }
  const out = new Map<string, Uint8Array>();
  let p = dirOffset;
  for (let e = 0; e < count; e++) {
    if (p + 46 > bytes.length || view.getUint32(p, true) !== 0x02014b50) fail('bad central directory entry');
    const method = view.getUint16(p + 10, true);
    let compressed = view.getUint32(p + 20, true);
    let size = view.getUint32(p + 24, true);
    const nameLength = view.getUint16(p + 28, true);
    const extraLength = view.getUint16(p + 30, true);
    const commentLength = view.getUint16(p + 32, true);
    let local = view.getUint32(p + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLength));
    // Zip64 extra field: the 64-bit values of the fields saturated at 0xffffffff, in order.
    let x = p + 46 + nameLength;
    const xEnd = x + extraLength;
    while (x + 4 <= xEnd) {
      const id = view.getUint16(x, true);
      const len = view.getUint16(x + 2, true);
      if (id === 0x0001) {
        let q = x + 4;
        if (size === 0xffffffff) (size = Number(view.getBigUint64(q, true))), (q += 8);
        if (compressed === 0xffffffff) (compressed = Number(view.getBigUint64(q, true))), (q += 8);
        if (local === 0xffffffff) local = Number(view.getBigUint64(q, true));
      }
      x += 4 + len;
    }
    p = xEnd + commentLength;
    if (view.getUint32(local, true) !== 0x04034b50) fail(`entry ${name} has no local header`);
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const raw = bytes.subarray(start, start + compressed);
    if (raw.length !== compressed) fail(`entry ${name} is truncated`);
    if (method === 0) out.set(name, raw);
    else if (method === 8) out.set(name, new Uint8Array(inflateRawSync(raw)));
    else fail(`entry ${name} uses compression method ${method}`);
    if (out.get(name)!.length !== size) fail(`entry ${name} has ${out.get(name)!.length} bytes, its header says ${size}`);
  }
  return out;
}

const MARK = Symbol('mark');

/** Interprets a pickle; `persistent` resolves persistent ids, `globals` builds the globals it knows. */
function unpickle(data: Uint8Array, source: string, persistent: (pid: unknown) => unknown, call: (fn: PyObject, args: unknown[]) => unknown): unknown {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  const metastack: unknown[][] = [];
  let p = 0;
  const fail = (why: string): never => {
    throw new AttendError(`${source}: cannot read its pickle (${why})`);
  };
  const need = (n: number) => {
    if (p + n > data.length) fail('truncated');
  };
  const u8 = () => (need(1), data[p++]);
  const u16 = () => (need(2), (p += 2), view.getUint16(p - 2, true));
  const u32 = () => (need(4), (p += 4), view.getUint32(p - 4, true));
  const i32 = () => (need(4), (p += 4), view.getInt32(p - 4, true));
  const u64 = () => (need(8), (p += 8), Number(view.getBigUint64(p - 8, true)));
  const take = (n: number) => (need(n), (p += n), data.subarray(p - n, p));
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  const latin1 = (b: Uint8Array) => Array.from(b, (c) => String.fromCharCode(c)).join('');
  const line = () => {
    const end = data.indexOf(0x0a, p);
    if (end < 0) fail('unterminated line');
    const s = latin1(data.subarray(p, end));
    p = end + 1;
    return s;
  };
  const pop = () => (stack.length ? stack.pop() : fail('stack underflow'));
  const popMark = (): unknown[] => {
    const items = stack.splice(0);
    const outer = metastack.pop() ?? fail('no mark');
    stack.push(...outer);
    return items;
  };
  const top = () => (stack.length ? stack[stack.length - 1] : fail('stack underflow'));
  const setItems = (target: unknown, items: unknown[]) => {
    if (!(target instanceof PyDict)) fail('SETITEMS on a non-dict');
    for (let i = 0; i + 1 < items.length; i += 2) (target as PyDict).set(items[i], items[i + 1]);
  };
  const append = (target: unknown, items: unknown[]) => {
    if (Array.isArray(target)) target.push(...items);
    else if (target instanceof PyObject) target.args.push(...items);
    else fail('APPEND on a non-list');
  };
  const signedLE = (b: Uint8Array) => {
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b.length && b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return Number(v);
  };
  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: u8(); break; // PROTO
      case 0x95: u64(); break; // FRAME
      case 0x2e: return pop(); // STOP
      case 0x28: metastack.push(stack.splice(0)); break; // MARK
      case 0x7d: stack.push(new PyDict()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x8f: stack.push([]); break; // EMPTY_SET
      case 0x64: { const d = new PyDict(); setItems(d, popMark()); stack.push(d); break; } // DICT
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x91: stack.push(popMark()); break; // FROZENSET
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(); stack.push([pop(), b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); stack.push([pop(), b, c]); break; } // TUPLE3
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x61: { const v = pop(); append(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); append(top(), items); break; } // APPENDS
      case 0x90: { const items = popMark(); append(top(), items); break; } // ADDITEMS
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(signedLE(take(u8()))); break; // LONG1
      case 0x8b: stack.push(signedLE(take(u32()))); break; // LONG4
      case 0x49: { const s = line(); stack.push(s === '01' ? true : s === '00' ? false : Number(s)); break; } // INT
      case 0x4c: stack.push(Number(line().replace(/L$/, ''))); break; // LONG
      case 0x46: stack.push(Number(line())); break; // FLOAT
      case 0x47: need(8); stack.push(view.getFloat64(p, false)); p += 8; break; // BINFLOAT
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x58: stack.push(text(take(u32()))); break; // BINUNICODE
      case 0x8c: stack.push(text(take(u8()))); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(text(take(u64()))); break; // BINUNICODE8
      case 0x56: stack.push(line()); break; // UNICODE (raw-unicode-escape; ASCII suffices here)
      case 0x54: stack.push(latin1(take(u32()))); break; // BINSTRING
      case 0x55: stack.push(latin1(take(u8()))); break; // SHORT_BINSTRING
      case 0x53: stack.push(line().replace(/^['"]|['"]$/g, '')); break; // STRING
      case 0x42: stack.push(take(u32()).slice()); break; // BINBYTES
      case 0x43: stack.push(take(u8()).slice()); break; // SHORT_BINBYTES
      case 0x8e: stack.push(take(u64()).slice()); break; // BINBYTES8
      case 0x96: stack.push(take(u64()).slice()); break; // BYTEARRAY8
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x70: memo.set(Number(line()), top()); break; // PUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: { const k = u8(); if (!memo.has(k)) fail(`memo ${k} unset`); stack.push(memo.get(k)); break; } // BINGET
      case 0x6a: { const k = u32(); if (!memo.has(k)) fail(`memo ${k} unset`); stack.push(memo.get(k)); break; } // LONG_BINGET
      case 0x67: { const k = Number(line()); if (!memo.has(k)) fail(`memo ${k} unset`); stack.push(memo.get(k)); break; } // GET
      case 0x63: { const module = line(); const name = line(); stack.push(new PyObject(module, name)); break; } // GLOBAL
      case 0x93: { const name = pop(); const module = pop(); stack.push(new PyObject(String(module), String(name))); break; } // STACK_GLOBAL
      case 0x52: { const args = pop(); const fn = pop(); if (!(fn instanceof PyObject)) fail('REDUCE of a non-global'); stack.push(call(fn as PyObject, args as unknown[])); break; } // REDUCE
      case 0x81: { const args = pop(); const cls = pop() as PyObject; stack.push(new PyObject(cls.module, cls.name, args as unknown[])); break; } // NEWOBJ
      case 0x92: { pop(); const args = pop(); const cls = pop() as PyObject; stack.push(new PyObject(cls.module, cls.name, args as unknown[])); break; } // NEWOBJ_EX
      case 0x62: { // BUILD
        const state = pop();
        const obj = top();
        if (obj instanceof PyDict) obj.attributes = state;
        else if (obj instanceof PyObject) obj.state = state;
        break;
      }
      case 0x51: stack.push(persistent(pop())); break; // BINPERSID
      case 0x50: stack.push(persistent(line())); break; // PERSID
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      default:
        fail(`opcode 0x${op.toString(16)} at byte ${p - 1}`);
    }
  }
}

function elementReader(dtype: TorchDType, view: DataView, little: boolean): (offset: number) => number {
  switch (dtype) {
    case 'f64': return (o) => view.getFloat64(o, little);
    case 'f32': return (o) => view.getFloat32(o, little);
    case 'f16': return (o) => halfBits(view.getUint16(o, little));
    case 'bf16': {
      const scratch = new DataView(new ArrayBuffer(4));
      return (o) => {
        scratch.setUint32(0, view.getUint16(o, little) << 16);
        return scratch.getFloat32(0);
      };
    }
    case 'i64': return (o) => Number(view.getBigInt64(o, little));
    case 'i32': return (o) => view.getInt32(o, little);
    case 'i16': return (o) => view.getInt16(o, little);
    case 'i8': return (o) => view.getInt8(o);
    case 'u8': case 'bool': return (o) => view.getUint8(o);
  }
}

function halfBits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Reads a torch.save file: the object it holds, tensors as TorchTensor. */
export function readTorchFile(path: string): unknown {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new AttendError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return parseTorchFile(bytes, path);
}

export function parseTorchFile(bytes: Uint8Array, source = 'torch file'): unknown {
  const entries = zipEntries(bytes, source);
  const pkl = [...entries.keys()].find((n) => n === 'data.pkl' || n.endsWith('/data.pkl'));
  if (!pkl) throw new AttendError(`${source}: not a torch.save archive (no data.pkl)`);
  const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
  const order = entries.get(`${prefix}byteorder`);
  const little = order ? new TextDecoder().decode(order).trim() !== 'big' : true;
  const persistent = (pid: unknown): StorageRef => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || !(pid[1] instanceof PyObject)) throw new AttendError(`${source}: a persistent id that is not a storage`);
    const type = STORAGE_TYPES[pid[1].name];
    if (!type) throw new AttendError(`${source}: storage type ${pid[1].module}.${pid[1].name} is not one this reader knows`);
    return { ...type, key: String(pid[2]), numel: Number(pid[4]) };
  };
  const tensor = (storage: unknown, offset: unknown, size: unknown, stride: unknown): TorchTensor => {
    const s = storage as StorageRef;
    if (!s || typeof s.key !== 'string') throw new AttendError(`${source}: a tensor without a storage`);
    const shape = (size as unknown[]).map(Number);
    const strides = (stride as unknown[]).map(Number);
    const start = Number(offset);
    return new TorchTensor(s.dtype, shape, () => {
      const raw = entries.get(`${prefix}data/${s.key}`);
      if (!raw) throw new AttendError(`${source}: storage ${s.key} is missing from the archive`);
      if (raw.length < s.numel * s.bytes) throw new AttendError(`${source}: storage ${s.key} holds ${raw.length} bytes, not ${s.numel} × ${s.bytes}`);
      const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      const at = elementReader(s.dtype, view, little);
      const n = shape.reduce((a, b) => a * b, 1);
      const out = new Float64Array(n);
      const index = new Array<number>(shape.length).fill(0);
      for (let i = 0; i < n; i++) {
        let e = start;
        for (let d = 0; d < shape.length; d++) e += index[d] * strides[d];
        if (e >= s.numel) throw new AttendError(`${source}: a tensor reads past its storage ${s.key}`);
        out[i] = at(e * s.bytes);
        for (let d = shape.length - 1; d >= 0; d--) {
          if (++index[d] < shape[d]) break;
          index[d] = 0;
        }
      }
      return out;
    });
  };
  const call = (fn: PyObject, args: unknown[]): unknown => {
    const name = `${fn.module}.${fn.name}`;
    switch (name) {
      case 'torch._utils._rebuild_tensor_v2':
      case 'torch._utils._rebuild_tensor':
        return tensor(args[0], args[1], args[2], args[3]);
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state':
        return args[0];
      case 'collections.OrderedDict':
      case 'builtins.dict': {
        const d = new PyDict();
        const items = args[0];
        if (Array.isArray(items)) for (const kv of items) if (Array.isArray(kv)) d.set(kv[0], kv[1]);
        return d;
      }
      case '_codecs.encode':
        return Uint8Array.from(String(args[0]), (c) => c.charCodeAt(0) & 0xff);
      default:
        return new PyObject(fn.module, fn.name, [...args]);
    }
  };
  return unpickle(entries.get(pkl)!, source, persistent, call);
}

/** A tensor to write (f32, C order). */
export interface TensorToWrite {
  shape: number[];
  data: Float32Array;
}

/**
 * Writes `value` as torch.save would (zip archive, pickle protocol 2): PyDict/Map as collections.OrderedDict, arrays
 * as lists, strings, numbers (integers as ints, others as floats), booleans, null, and {shape, data} f32 tensors
 * (FloatStorage, torch._utils._rebuild_tensor_v2). For tests and fixtures; torch.load reads the result.
 */
export function torchFileBytes(value: unknown, archive = 'archive'): Uint8Array {
  const out: number[] = [];
  const storages: Float32Array[] = [];
  const bytes = (...b: number[]) => out.push(...b);
  const u32 = (n: number) => bytes(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  const str = (s: string) => {
    const b = new TextEncoder().encode(s);
    bytes(0x58);
    u32(b.length);
    bytes(...b);
  };
  const global = (module: string, name: string) => bytes(0x63, ...new TextEncoder().encode(`${module}\n${name}\n`));
  const int = (n: number) => {
    bytes(0x4a);
    u32(n | 0);
  };
  const ordered = () => {
    global('collections', 'OrderedDict');
    bytes(0x29, 0x52); // EMPTY_TUPLE REDUCE
  };
  const emit = (v: unknown): void => {
    if (v === null || v === undefined) bytes(0x4e);
    else if (v === true) bytes(0x88);
    else if (v === false) bytes(0x89);
    else if (typeof v === 'string') str(v);
    else if (typeof v === 'number') {
      if (Number.isInteger(v) && Math.abs(v) < 2 ** 31) int(v);
      else {
        bytes(0x47);
        const b = new DataView(new ArrayBuffer(8));
        b.setFloat64(0, v, false);
        for (let i = 0; i < 8; i++) bytes(b.getUint8(i));
      }
    } else if (Array.isArray(v)) {
      bytes(0x5d, 0x28); // EMPTY_LIST MARK
      v.forEach(emit);
      bytes(0x65); // APPENDS
    } else if (v instanceof Map) {
      ordered();
      bytes(0x28);
      for (const [k, x] of v) {
        emit(k);
        emit(x);
      }
      bytes(0x75); // SETITEMS
    } else if (typeof v === 'object' && 'shape' in v && 'data' in v && (v as TensorToWrite).data instanceof Float32Array) {
      const t = v as TensorToWrite;
      const key = storages.length;
      storages.push(t.data);
      global('torch._utils', '_rebuild_tensor_v2');
      bytes(0x28); // MARK (the arguments)
      bytes(0x28); // MARK (the persistent id)
      str('storage');
      global('torch', 'FloatStorage');
      str(String(key));
      str('cpu');
      int(t.data.length);
      bytes(0x74, 0x51); // TUPLE BINPERSID
      int(0);
      bytes(0x28);
      t.shape.forEach(int);
      bytes(0x74);
      const strides = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
      bytes(0x28);
      strides.forEach(int);
      bytes(0x74);
      bytes(0x89); // requires_grad False
      ordered(); // backward hooks
      bytes(0x74, 0x52); // TUPLE REDUCE
    } else if (typeof v === 'object') {
      emit(new Map(Object.entries(v as Record<string, unknown>)));
    } else throw new Error(`torchFileBytes: cannot write ${typeof v}`);
  };
  bytes(0x80, 2);
  emit(value);
  bytes(0x2e);
  const files: [string, Uint8Array][] = [
    [`${archive}/data.pkl`, Uint8Array.from(out)],
    [`${archive}/byteorder`, new TextEncoder().encode('little')],
    ...storages.map((s, i): [string, Uint8Array] => [`${archive}/data/${i}`, new Uint8Array(s.buffer.slice(s.byteOffset, s.byteOffset + s.byteLength))]),
    [`${archive}/version`, new TextEncoder().encode('3\n')],
  ];
  return zipStored(files);
}

/** A zip archive of stored (uncompressed) entries. */
function zipStored(files: [string, Uint8Array][]): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const header = (size: number) => new DataView(new ArrayBuffer(size));
  for (const [name, data] of files) {
    const n = new TextEncoder().encode(name);
    const crc = crc32(data);
    const local = header(30);
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true);
    local.setUint32(14, crc, true);
    local.setUint32(18, data.length, true);
    local.setUint32(22, data.length, true);
    local.setUint16(26, n.length, true);
    const dir = header(46);
    dir.setUint32(0, 0x02014b50, true);
    dir.setUint16(4, 20, true);
    dir.setUint16(6, 20, true);
    dir.setUint32(16, crc, true);
    dir.setUint32(20, data.length, true);
    dir.setUint32(24, data.length, true);
    dir.setUint16(28, n.length, true);
    dir.setUint32(42, offset, true);
    parts.push(new Uint8Array(local.buffer), n, data);
    central.push(new Uint8Array(dir.buffer), n);
    offset += 30 + n.length + data.length;
  }
  const dirSize = central.reduce((s, p) => s + p.length, 0);
  const end = header(22);
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, files.length, true);
  end.setUint16(10, files.length, true);
  end.setUint32(12, dirSize, true);
  end.setUint32(16, offset, true);
  const all = [...parts, ...central, new Uint8Array(end.buffer)];
  const result = new Uint8Array(all.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of all) {
    result.set(p, at);
    at += p.length;
  }
  return result;
}

function crc32(data: Uint8Array): number {
  let c = ~0;
  for (let i = 0; i < data.length; i++) {
    c ^= data[i];
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}
