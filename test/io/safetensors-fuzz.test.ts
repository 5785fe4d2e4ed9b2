/**
 * Seeded fuzz test of the safetensors reader: a small valid file (F32, F16, BF16, I64 and an empty tensor, with
 * metadata) mutated in its header (lengths, offsets, dtypes, shapes, names, duplicates, fields, metadata) and in
 * its bytes (truncation, trailing bytes, insertions, byte flips, the header length field). Every outcome must be
 * a valid load (the tensors tile the data section, every float tensor reads finite through WeightReader at its
 * shape) or an AttendError of one line naming the file; never another exception, a crash or a hang.
 *
 * The cases run in a child process (this file, re-run with ATTEND_FUZZ_CHILD=1) so that the parent can guard
 * against hangs (a synchronous hang cannot be interrupted in-process) and see a crash as a signal or status.
 * Seed and case count: ATTEND_FUZZ_SEED, ATTEND_FUZZ_CASES (defaults below), printed with the outcomes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AttendError } from '../../src/errors.js';
import { SafetensorsArchive } from '../../src/io/safetensors.js';
import { asF32, WeightReader } from '../../src/models/weights.js';
import { narrow } from '../../src/tensor/dtype.js';
import { Random } from '../../src/generate/random.js';

const SEED = Number(process.env.ATTEND_FUZZ_SEED ?? 20261201);
const CASES = Number(process.env.ATTEND_FUZZ_CASES ?? 3000);
/** Hang guards, far above the measured times (the whole run takes about a second or two). */
const CHILD_TIMEOUT_MS = 120_000;
const CASE_LIMIT_MS = 5_000;

/** The project's seeded generator (src/generate/random.ts), so a failing case can be found again from SEED. */
function rng(seed: number): () => number {
  const r = new Random(seed);
  return () => r.next();
}

/** JSON text given literally (duplicate keys, 1.0, odd numbers) inside an otherwise serialized header. */
class Raw {
  constructor(readonly text: string) {}
}

function ser(v: unknown): string {
  if (v instanceof Raw) return v.text;
  if (Array.isArray(v)) return `[${v.map(ser).join(',')}]`;
  if (v !== null && typeof v === 'object') return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}:${ser(x)}`).join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

type Pairs = [string, unknown][];

function baseFile(): { pairs: Pairs; data: Buffer } {
  const a = Float32Array.from([1, -2.5, 3.25, 0, 1e30, -1e-30]);
  const parts: [string, string, number[], Uint8Array][] = [
    ['a', 'F32', [2, 3], new Uint8Array(a.buffer)],
    ['b', 'F16', [4], new Uint8Array(narrow('f16', Float32Array.from([1, 2, -3, 0.5])).buffer)],
    ['c', 'BF16', [2, 2], new Uint8Array(narrow('bf16', Float32Array.from([7, -8, 9e20, 1e-20])).buffer)],
    ['d', 'I64', [1], new Uint8Array(new BigInt64Array([42n]).buffer)],
    ['e', 'F32', [0, 3], new Uint8Array(0)],
  ];
  const pairs: Pairs = [['__metadata__', { format: 'pt' }]];
  let offset = 0;
  for (const [name, dtype, shape, bytes] of parts) {
    pairs.push([name, { dtype, shape, data_offsets: [offset, offset + bytes.length] }]);
    offset += bytes.length;
  }
  return { pairs, data: Buffer.concat(parts.map((p) => p[3])) };
}

function assemble(pairs: Pairs, data: Buffer, pad: boolean): Buffer {
  let text = `{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${ser(v)}`).join(',')}}`;
  if (pad) text += ' '.repeat((8 - (Buffer.byteLength(text) % 8)) % 8);
  const h = Buffer.from(text, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

const ODD_NUMBERS: unknown[] = [-1, 0, 1, 3, 7, 1.5, 2 ** 31, 2 ** 53, 2 ** 64, 1e308, '4', null, true, [], {}, new Raw('1.0'), new Raw('1e2'), new Raw('-0'), new Raw('01')];
const DTYPES: unknown[] = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U64', 'U32', 'U16', 'U8', 'BOOL', 'F8_E4M3', 'F8_E5M2', 'f32', 'Q4_K', '', 5, null, ['F32']];
const NAMES = ['', 'a', 'b', '__metadata__', 'é', 'a"b', 'x\\y', 'model.layers.0.weight', 'n'.repeat(300), '\u0000', '😀'];

interface Case { kind: string[]; bytes: Buffer }

/** One mutated file: 1-3 header mutations and/or byte mutations, named for the outcome tally. */
function mutate(r: () => number): Case {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const { pairs, data } = baseFile();
  let body = data;
  const kind: string[] = [];
  const entry = (): Record<string, unknown> | undefined => {
    const tensors = pairs.filter(([k, v]) => k !== '__metadata__' && v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Raw));
    return tensors.length ? (pick(tensors)[1] as Record<string, unknown>) : undefined;
  };
  const headerOps: Record<string, () => void> = {
    offset: () => {
      const e = entry();
      if (!e || !Array.isArray(e.data_offsets)) return;
      const o = [...e.data_offsets];
      const j = int(0, 1);
      o[j] = r() < 0.6 ? (o[j] as number) + int(-8, 8) : pick(ODD_NUMBERS);
      e.data_offsets = o;
    },
    offsetShape: () => {
      const e = entry();
      if (!e) return;
      e.data_offsets = pick([[], [0], [0, 0, 0], [4, 0], 'x', null, [0, 2 ** 60]]);
    },
    dtype: () => { const e = entry(); if (e) e.dtype = pick(DTYPES); },
    shape: () => {
      const e = entry();
      if (!e || !Array.isArray(e.shape)) return;
      const s = [...e.shape];
      const op = int(0, 3);
      if (op === 0) s.push(pick([1, 2, 0, 3]));
      else if (op === 1) s.pop();
      else if (op === 2 && s.length) s[int(0, s.length - 1)] = pick(ODD_NUMBERS);
      else e.shape = pick([[], 'x', null, [[2]], [2 ** 26, 2 ** 26]]);
      if (op <= 2) e.shape = s;
    },
    rename: () => { const p = pick(pairs.filter(([k]) => k !== '__metadata__')); if (p) p[0] = pick(NAMES); },
    duplicate: () => { const p = pick(pairs); pairs.push([p[0], p[1]]); },
    dropField: () => { const e = entry(); if (e) delete e[pick(['dtype', 'shape', 'data_offsets'])]; },
    extraField: () => { const e = entry(); if (e) e[pick(['extra', 'dtype2', 'x'])] = pick([1, 'y', [1, [2, { z: null }]], { a: { b: [] } }, new Raw('[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]')]); },
    dupField: () => {
      const i = pairs.findIndex(([k, v]) => k !== '__metadata__' && v !== null && typeof v === 'object' && !(v instanceof Raw));
      if (i < 0) return;
      const e = pairs[i][1] as Record<string, unknown>;
      const f = pick(['dtype', 'shape', 'data_offsets']);
      pairs[i][1] = new Raw(`{${Object.entries(e).map(([k, x]) => `${JSON.stringify(k)}:${ser(x)}`).join(',')},${JSON.stringify(f)}:${ser(e[f] ?? 1)}}`);
    },
    entryType: () => { const p = pick(pairs.filter(([k]) => k !== '__metadata__')); if (p) p[1] = pick([3, 'x', null, [], true]); },
    metadata: () => {
      const m = pairs.find(([k]) => k === '__metadata__');
      if (m) m[1] = pick([{ format: 1 }, 'pt', null, [], {}, { a: 'b', c: 'd' }, new Raw('{"k":"1","k":"2"}'), { __proto__x: 'y' }, new Raw('{"__proto__":"x"}')]);
    },
    reorder: () => { pairs.reverse(); },
    removeTensor: () => { const i = int(1, pairs.length - 1); if (i < pairs.length) pairs.splice(i, 1); },
  };
  const byteOps: Record<string, (b: Buffer) => Buffer> = {
    truncate: (b) => b.subarray(0, int(0, b.length - 1)),
    trailing: (b) => Buffer.concat([b, Buffer.from(Array.from({ length: int(1, 16) }, () => int(0, 255)))]),
    insert: (b) => { const at = int(0, b.length); return Buffer.concat([b.subarray(0, at), Buffer.alloc(int(1, 8), int(0, 255)), b.subarray(at)]); },
    flip: (b) => { const c = Buffer.from(b); for (let k = int(1, 4); k > 0; k--) c[int(0, c.length - 1)] = int(0, 255); return c; },
    flipHeader: (b) => { if (b.length < 8) return b; const c = Buffer.from(b); const n = Number(c.readBigUInt64LE(0)); c[8 + int(0, Math.max(0, n - 1))] = pick([0x22, 0x2c, 0x3a, 0x7b, 0x7d, 0x5b, 0x5d, 0x20, 0x30, 0x39, 0x2d, 0x5c, 0x00, 0xff, int(0, 255)]); return c; },
    flipData: (b) => { if (b.length < 8) return b; const c = Buffer.from(b); const n = Number(c.readBigUInt64LE(0)); if (c.length > 8 + n) c[int(8 + n, c.length - 1)] = int(0, 255); return c; },
    lengthField: (b) => {
      if (b.length < 8) return b;
      const c = Buffer.from(b);
      const n = c.readBigUInt64LE(0);
      const v = r() < 0.7 ? n + BigInt(int(-16, 16)) : pick([0n, 1n, 2n ** 63n, 2n ** 64n - 1n, 100_000_000n, 100_000_001n, BigInt(c.length)]);
      c.writeBigUInt64LE(BigInt.asUintN(64, v));
      return c;
    },
  };
  const nHeader = r() < 0.6 ? int(1, 3) : 0;
  for (let k = 0; k < nHeader; k++) {
    const op = pick(Object.keys(headerOps));
    kind.push(op);
    headerOps[op]();
  }
  if (kind.includes('removeTensor') && r() < 0.5) body = Buffer.alloc(0); // sometimes with no data at all
  let bytes = assemble(pairs, body, r() < 0.7);
  const nBytes = nHeader === 0 ? int(1, 2) : r() < 0.3 ? 1 : 0;
  for (let k = 0; k < nBytes; k++) {
    const op = pick(Object.keys(byteOps));
    kind.push(op);
    bytes = byteOps[op](bytes);
  }
  return { kind, bytes };
}

const FLOAT = new Set(['F32', 'F16', 'BF16', 'F64']);

/** Opens and reads everything in `file`; 'valid', or throws when the outcome breaks the contract. */
function outcome(file: string): 'valid' | 'error' {
  let st: SafetensorsArchive | undefined;
  try {
    st = SafetensorsArchive.openFile(file);
    const size = fs.statSync(file).size;
    const headerLen = Number(fs.readFileSync(file).readBigUInt64LE(0));
    let bytes = 0;
    const weights = new WeightReader(st, file);
    for (const name of st.names()) {
      const e = st.entry(name);
      const elements = e.shape.reduce((a, b) => a * b, 1);
      bytes += e.end - e.begin;
      if (FLOAT.has(e.dtype)) {
        const t = weights.get(name, e.shape);
        if (t.size !== elements) throw new Error(`contract: '${name}' read ${t.size} elements, shape says ${elements}`);
        if (!asF32(t).every(Number.isFinite)) throw new Error(`contract: '${name}' loaded with non-finite values`);
      } else if (st.readBytes(name).length !== e.end - e.begin) throw new Error(`contract: '${name}' read a wrong byte count`);
    }
    if (8 + headerLen + bytes !== size) throw new Error(`contract: tensors cover ${bytes} bytes of a ${size - 8 - headerLen}-byte data section`);
    return 'valid';
  } catch (e) {
    if (!(e instanceof AttendError)) throw e;
    if (e.message.includes('\n')) throw new Error(`contract: a message of several lines: ${JSON.stringify(e.message)}`);
    if (!e.message.includes(file)) throw new Error(`contract: the message does not name the file: ${e.message}`);
    return 'error';
  } finally {
    st?.close();
  }
}

interface Summary { seed: number; cases: number; valid: number; error: number; violations: string[]; maxCaseMs: number; byKind: Record<string, { valid: number; error: number }>; ms: number }

function runCases(): Summary {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-fuzz-'));
  const r = rng(SEED);
  const s: Summary = { seed: SEED, cases: 0, valid: 0, error: 0, violations: [], maxCaseMs: 0, byKind: {}, ms: 0 };
  const start = performance.now();
  try {
    const file = path.join(dir, 'm.safetensors');
    for (let i = 0; i < CASES; i++) {
      // Every 50th case unmutated: the control must load.
      const c = i % 50 === 0 ? { kind: ['none'], bytes: assemble(baseFile().pairs, baseFile().data, true) } : mutate(r);
      fs.writeFileSync(file, c.bytes);
      const t = performance.now();
      let o: 'valid' | 'error';
      try {
        o = outcome(file);
      } catch (e) {
        s.violations.push(`case ${i} [${c.kind.join('+')}]: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
        continue;
      } finally {
        s.maxCaseMs = Math.max(s.maxCaseMs, performance.now() - t);
        s.cases++;
      }
      s[o]++;
      for (const k of new Set(c.kind)) (s.byKind[k] ??= { valid: 0, error: 0 })[o]++;
      if (c.kind[0] === 'none' && o !== 'valid') s.violations.push(`case ${i}: the unmutated control failed to load`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  s.ms = Math.round(performance.now() - start);
  return s;
}

if (process.env.ATTEND_FUZZ_CHILD === '1') {
  process.stdout.write(JSON.stringify(runCases()) + '\n');
} else {
  test(`safetensors fuzz: ${CASES} seeded mutations (seed ${SEED}), each a valid load or a one-line AttendError`, (t) => {
    const child = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], {
      env: { ...process.env, ATTEND_FUZZ_CHILD: '1' },
      encoding: 'utf8',
      timeout: CHILD_TIMEOUT_MS,
      maxBuffer: 64 << 20,
    });
    assert.equal(child.error, undefined, `the fuzz child did not finish (hang guard ${CHILD_TIMEOUT_MS} ms): ${String(child.error)}`);
    assert.equal(child.signal, null, `the fuzz child died of ${child.signal}: ${child.stderr.slice(-2000)}`);
    assert.equal(child.status, 0, `the fuzz child crashed: ${child.stderr.slice(-2000)}`);
    const s = JSON.parse(child.stdout.trim().split('\n').pop()!) as Summary;
    t.diagnostic(`seed ${s.seed}: ${s.cases} cases in ${s.ms} ms: ${s.valid} valid loads, ${s.error} one-line AttendErrors, ${s.violations.length} violations; slowest case ${s.maxCaseMs.toFixed(1)} ms`);
    t.diagnostic(`by mutation (valid/error): ${Object.entries(s.byKind).sort().map(([k, v]) => `${k} ${v.valid}/${v.error}`).join(', ')}`);
    assert.deepEqual(s.violations.slice(0, 20), []);
    assert.equal(s.cases, CASES);
    assert.ok(s.maxCaseMs < CASE_LIMIT_MS, `a case took ${s.maxCaseMs} ms (hang guard ${CASE_LIMIT_MS} ms)`);
    // The mutations must exercise both outcomes, or the test proves nothing.
    assert.ok(s.valid > CASES / 50 && s.error > CASES / 2, `valid ${s.valid}, error ${s.error}`);
  });
}
