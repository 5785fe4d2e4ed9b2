/**
 * Safetensors reader/writer: round trips at every storage dtype, sharded directories, and one hand-crafted
 * corrupt file per validation rule (each must fail with an AttendError naming the file and the problem).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MAX_TENSORS_PER_FILE, SafetensorsArchive, writeSafetensors } from '../../src/io/safetensors.js';
import { AttendError } from '../../src/errors.js';
import { narrow } from '../../src/tensor/dtype.js';

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-st-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Writes a file from raw parts: the header (object or literal text), the data bytes, and an optional length field. */
function raw(name: string, header: unknown, data: Uint8Array = new Uint8Array(0), headerLen?: bigint): string {
  const file = path.join(dir, name);
  const h = header instanceof Uint8Array ? header : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLen ?? BigInt(h.length));
  fs.writeFileSync(file, Buffer.concat([len, h, data]));
  return file;
}

/** Asserts that `fn` throws an AttendError whose single-line message names `file` and matches `pattern`. */
function fails(fn: () => unknown, file: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AttendError, `expected AttendError, got ${String(e)}`);
    assert.ok(e.message.includes(file), `message does not name ${file}: ${e.message}`);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes('\n'), `message is not one line: ${e.message}`);
    return true;
  });
}

describe('round trip', () => {
  test('f32, f16, bf16 and metadata', () => {
    const values = Float32Array.from([1, -2.5, 3.25, 0, 65504, -0.125]);
    const file = path.join(dir, 'rt.safetensors');
    writeSafetensors(file, {
      a: { dtype: 'f32', shape: [2, 3], data: values },
      b: { dtype: 'f16', shape: [6], data: narrow('f16', values) },
      c: { dtype: 'bf16', shape: [3, 2], data: narrow('bf16', values) },
      empty: { dtype: 'f32', shape: [0, 4], data: new Float32Array(0) },
    }, { format: 'pt', note: 'hi' });
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.tmp-')), [], 'no temp file left behind');

    const st = SafetensorsArchive.openFile(file);
    assert.deepEqual(st.metadata, { format: 'pt', note: 'hi' });
    assert.deepEqual(st.names(), ['a', 'b', 'c', 'empty']);
    assert.ok(st.has('a') && !st.has('z'));
    assert.equal(st.dataBytes, 24 + 12 + 12);

    const a = st.read('a');
    assert.equal(a.dtype, 'f32');
    assert.deepEqual(a.shape, [2, 3]);
    assert.deepEqual(a.data, values);
    const b = st.read('b');
    assert.equal(b.dtype, 'f16');
    assert.ok(b.data instanceof Uint16Array);
    assert.deepEqual(b.data, narrow('f16', values));
    assert.deepEqual(st.readF32('b'), values); // all exactly representable in f16
    const c = st.read('c');
    assert.equal(c.dtype, 'bf16');
    assert.deepEqual(c.shape, [3, 2]);
    assert.deepEqual(st.readF32('c'), Float32Array.from([1, -2.5, 3.25, 0, 65536, -0.125]));
    assert.equal(st.read('empty').data.length, 0);

    const e = st.entry('a');
    assert.equal(e.file, file);
    assert.equal(e.end - e.begin, 24);
    assert.equal(e.dtype, 'F32');
    fails(() => st.entry('nope'), file, /no tensor named 'nope'/);
    st.close();
    st.close();
    fails(() => st.read('a'), file, /closed/);
  });

  test('header is padded to 8 bytes and tensors are aligned', () => {
    const file = path.join(dir, 'pad.safetensors');
    writeSafetensors(file, { x: { dtype: 'f32', shape: [1], data: Float32Array.from([7]) } });
    const bytes = fs.readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal(n % 8, 0);
    assert.equal(bytes.subarray(8, 8 + n).toString().trimEnd(), JSON.stringify({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }));
  });

  test('F64 is narrowed, integer dtypes are readable as bytes only', () => {
    const data = new Uint8Array(8 + 8);
    new DataView(data.buffer).setFloat64(0, 1.5, true);
    new DataView(data.buffer).setBigInt64(8, 42n, true);
    const file = raw('f64.safetensors', {
      d: { dtype: 'F64', shape: [1], data_offsets: [0, 8] },
      i: { dtype: 'I64', shape: [1], data_offsets: [8, 16] },
    }, data);
    const st = SafetensorsArchive.openFile(file);
    assert.deepEqual(st.read('d'), { dtype: 'f32', shape: [1], data: Float32Array.from([1.5]) });
    assert.deepEqual(st.readF32('d'), Float32Array.from([1.5]));
    assert.equal(new BigInt64Array(st.readBytes('i').buffer)[0], 42n);
    fails(() => st.read('i'), file, /dtype I64; only F32, F16, BF16 and F64/);
    st.close();
  });

  test('the writer checks its inputs and leaves no file on error', () => {
    const file = path.join(dir, 'bad-write.safetensors');
    assert.throws(() => writeSafetensors(file, { x: { dtype: 'f32', shape: [3], data: new Float32Array(2) } }), /shape \[3\] but 2 elements/);
    assert.throws(() => writeSafetensors(file, { x: { dtype: 'bf16', shape: [2], data: new Float32Array(2) } }), /is bf16 but its data/);
    assert.throws(() => writeSafetensors(path.join(dir, 'no-such-dir', 'x.safetensors'), {}));
    assert.ok(!fs.existsSync(file));
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.tmp-')), []);
  });
});

describe('model directories', () => {
  test('single file in a directory, and a file path given to open()', () => {
    const d = fs.mkdtempSync(path.join(dir, 'single-'));
    writeSafetensors(path.join(d, 'model.safetensors'), { w: { dtype: 'f32', shape: [2], data: Float32Array.from([1, 2]) } });
    assert.deepEqual(SafetensorsArchive.open(d).readF32('w'), Float32Array.from([1, 2]));
    assert.deepEqual(SafetensorsArchive.open(path.join(d, 'model.safetensors')).names(), ['w']);
  });

  test('sharded with index.json', () => {
    const d = fs.mkdtempSync(path.join(dir, 'sharded-'));
    writeSafetensors(path.join(d, 'model-00001-of-00002.safetensors'), {
      a: { dtype: 'f32', shape: [2], data: Float32Array.from([1, 2]) },
      b: { dtype: 'bf16', shape: [1], data: narrow('bf16', Float32Array.from([3])) },
    }, { format: 'pt' });
    writeSafetensors(path.join(d, 'model-00002-of-00002.safetensors'), {
      c: { dtype: 'f16', shape: [1, 1], data: narrow('f16', Float32Array.from([4])) },
    });
    fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), JSON.stringify({
      metadata: { total_size: 14 },
      weight_map: { a: 'model-00001-of-00002.safetensors', c: 'model-00002-of-00002.safetensors', b: 'model-00001-of-00002.safetensors' },
    }));
    const st = SafetensorsArchive.open(d);
    assert.deepEqual(st.names().sort(), ['a', 'b', 'c']);
    assert.deepEqual(st.readF32('a'), Float32Array.from([1, 2]));
    assert.deepEqual(st.readF32('b'), Float32Array.from([3]));
    assert.deepEqual(st.readF32('c'), Float32Array.from([4]));
    assert.equal(st.entry('c').file, path.join(d, 'model-00002-of-00002.safetensors'));
    assert.equal(st.dataBytes, 8 + 2 + 2);
    assert.deepEqual(st.metadata, { format: 'pt' });
    st.close();
  });

  test('missing directory, and a directory without safetensors', () => {
    const missing = path.join(dir, 'nope');
    fails(() => SafetensorsArchive.open(missing), missing, /does not exist/);
    const d = fs.mkdtempSync(path.join(dir, 'empty-'));
    fs.writeFileSync(path.join(d, 'pytorch_model.bin'), '');
    fails(() => SafetensorsArchive.open(d), d, /no model\.safetensors or model\.safetensors\.index\.json found \(weight-like files present: pytorch_model\.bin/);
    fails(() => SafetensorsArchive.openFile(path.join(d, 'x.safetensors')), 'x.safetensors', /cannot open safetensors file \(ENOENT\)/);
    fails(() => SafetensorsArchive.openFile(d), d, /is a directory/);
  });

  describe('broken shard indexes', () => {
    function shardDir(index: string | object, shards: Record<string, Record<string, number[]>> = {}): string {
      const d = fs.mkdtempSync(path.join(dir, 'bad-index-'));
      for (const [file, tensors] of Object.entries(shards)) {
        const entries = Object.fromEntries(Object.entries(tensors).map(([k, v]) => [k, { dtype: 'f32' as const, shape: [v.length], data: Float32Array.from(v) }]));
        writeSafetensors(path.join(d, file), entries);
      }
      fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), typeof index === 'string' ? index : JSON.stringify(index));
      return d;
    }
    const index = 'model.safetensors.index.json';

    test('index is not valid JSON', () => {
      fails(() => SafetensorsArchive.open(shardDir('{"weight_map":')), index, /not valid JSON/);
    });
    test('index without weight_map', () => {
      fails(() => SafetensorsArchive.open(shardDir({ metadata: {} })), index, /no weight_map/);
    });
    test('weight_map entry not a string, empty map, path outside the directory', () => {
      fails(() => SafetensorsArchive.open(shardDir({ weight_map: { a: 3 } })), index, /weight_map entry for 'a' is not a file name/);
      fails(() => SafetensorsArchive.open(shardDir({ weight_map: {} })), index, /weight_map is empty/);
      fails(() => SafetensorsArchive.open(shardDir({ weight_map: { a: '../x.safetensors' } })), index, /outside the model directory/);
    });
    test('shard missing', () => {
      const d = shardDir({ weight_map: { a: 's1.safetensors', b: 's2.safetensors' } }, { 's1.safetensors': { a: [1] } });
      fails(() => SafetensorsArchive.open(d), index, /shard 's2\.safetensors' named in weight_map is missing/);
    });
    test('tensor absent from its shard', () => {
      const d = shardDir({ weight_map: { a: 's1.safetensors', b: 's1.safetensors' } }, { 's1.safetensors': { a: [1] } });
      fails(() => SafetensorsArchive.open(d), index, /tensor 'b' is mapped to shard 's1\.safetensors', which does not contain it/);
    });
    test('a corrupt shard is reported by its own name', () => {
      const d = shardDir({ weight_map: { a: 's1.safetensors' } });
      fs.writeFileSync(path.join(d, 's1.safetensors'), 'abc');
      fails(() => SafetensorsArchive.open(d), 's1.safetensors', /too short/);
    });
  });
});

describe('corrupt files', () => {
  const f32 = (n: number) => new Uint8Array(4 * n);
  const cases: [string, () => string, RegExp][] = [
    ['too short for the length', () => { const f = path.join(dir, 'short.safetensors'); fs.writeFileSync(f, Buffer.alloc(5)); return f; }, /5 bytes, too short to hold the 8-byte safetensors header length/],
    ['header length past the end', () => raw('past.safetensors', '{}', f32(0), 1000n), /header length 1000 runs past the end of the file \(10 bytes\)/],
    ['absurd header length', () => raw('huge.safetensors', '{}', f32(0), 1n << 40n), /header length 1099511627776 exceeds the safetensors format's limit of 100000000 bytes/],
    ['header not JSON', () => raw('json.safetensors', '{"a": '), /header is not valid JSON/],
    ['header not UTF-8', () => raw('utf8.safetensors', Buffer.from('{"\xff": {}}', 'latin1')), /header is not valid JSON/],
    ['header not an object', () => raw('array.safetensors', '[1, 2]'), /header is not a JSON object/],
    ['header null', () => raw('null.safetensors', 'null'), /header is not a JSON object/],
    ['entry not an object', () => raw('entry.safetensors', { a: 3 }), /tensor 'a' is not an object/],
    ['missing dtype', () => raw('nodtype.safetensors', { a: { shape: [1], data_offsets: [0, 4] } }, f32(1)), /tensor 'a' has no dtype/],
    ['missing shape', () => raw('noshape.safetensors', { a: { dtype: 'F32', data_offsets: [0, 4] } }, f32(1)), /tensor 'a' has no shape/],
    ['missing data_offsets', () => raw('nooff.safetensors', { a: { dtype: 'F32', shape: [1] } }, f32(1)), /tensor 'a' has no data_offsets/],
    ['dtype not a string', () => raw('dtype-type.safetensors', { a: { dtype: 4, shape: [1], data_offsets: [0, 4] } }, f32(1)), /dtype that is not a string/],
    ['unknown dtype', () => raw('dtype-unknown.safetensors', { a: { dtype: 'Q4_K', shape: [1], data_offsets: [0, 4] } }, f32(1)), /unknown dtype 'Q4_K'/],
    ['shape not an array', () => raw('shape-type.safetensors', { a: { dtype: 'F32', shape: '1', data_offsets: [0, 4] } }, f32(1)), /shape that is not an array/],
    ['negative dim', () => raw('shape-neg.safetensors', { a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, f32(1)), /shape \[-1\]; dims must be non-negative integers/],
    ['integer dim written as a float', () => raw('shape-float.safetensors', '{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}', f32(1)),
      /dims must be non-negative integers/],
    ['fractional dim', () => raw('shape-frac.safetensors', { a: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, f32(1)), /dims must be non-negative integers/],
    ['data_offsets wrong type', () => raw('off-type.safetensors', { a: { dtype: 'F32', shape: [1], data_offsets: [0] } }, f32(1)), /data_offsets \[0\]; expected \[begin, end\]/],
    ['data_offsets negative', () => raw('off-neg.safetensors', { a: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } }, f32(1)), /expected \[begin, end\] of non-negative integers/],
    ['begin after end', () => raw('off-order.safetensors', { a: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, f32(1)), /data_offsets \[4, 0\] with begin after end/],
    ['end beyond the data', () => raw('off-end.safetensors', { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, f32(1)), /data_offsets \[0, 8\] beyond the end of the data section \(4 bytes\)/],
    ['shape × dtype ≠ bytes', () => raw('size.safetensors', { a: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, f32(2)), /shape \[2\] of F32 \(8 bytes\) but data_offsets \[0, 4\] span 4 bytes/],
    ['overlap', () => raw('overlap.safetensors', {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    }, f32(3)), /tensors 'a' and 'b' overlap/],
    ['bad metadata', () => raw('meta.safetensors', { __metadata__: { n: 3 } }), /__metadata__ value for 'n' is not a string/],
    // The format's reference implementation (safetensors, Rust) requires the tensors to tile the data section
    // exactly, from byte 0 to the end of the file; anything else means a wrong header length or a corrupt file.
    ['gap between tensors', () => raw('gap.safetensors', {
      a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
    }, f32(3)), /4 unused bytes between tensors 'a' \(ends at data offset 4\) and 'b' \(begins at 8\)/],
    ['first tensor not at offset 0', () => raw('gap0.safetensors', { a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32(2)),
      /4 unused bytes before the first tensor 'a'/],
    ['trailing bytes after the last tensor', () => raw('trail.safetensors', { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } },
      Buffer.concat([f32(1), Buffer.from('junk')])), /4 bytes after the end of the last tensor 'a'/],
    ['data but no tensors', () => raw('trail0.safetensors', {}, f32(1)), /4 bytes after the end of the header, but the header lists no tensor data/],
    ['duplicate tensor name', () => raw('dup.safetensors',
      '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', f32(2)),
      /tensor name 'a' appears twice in the header/],
    ['duplicate field in an entry', () => raw('dupfield.safetensors',
      '{"a":{"dtype":"F32","shape":[1],"shape":[2],"data_offsets":[0,4]}}', f32(1)), /tensor 'a' has field 'shape' twice/],
    ['duplicate __metadata__', () => raw('dupmeta.safetensors', '{"__metadata__":{},"__metadata__":{}}'), /'__metadata__' appears twice/],
    ['duplicate metadata key', () => raw('dupmetakey.safetensors', '{"__metadata__":{"k":"1","k":"2"}}'), /__metadata__ key 'k' appears twice/],
    ['header over the format limit of 100,000,000 bytes', () => raw('cap.safetensors', '{}', f32(0), 100_000_001n),
      /header length 100000001 exceeds the safetensors format's limit of 100000000 bytes/],
  ];
  for (const [what, make, pattern] of cases) {
    test(what, () => {
      const file = make();
      fails(() => SafetensorsArchive.openFile(file), file, pattern);
    });
  }

  test('a header length a few bytes short is refused, not read shifted', () => {
    // The audit's case: the header padded with spaces still parses when its length field is 4 short, so every
    // tensor was read 4 bytes early (wrong logits, exit 0). Now the 4 extra bytes at the end are refused.
    const file = path.join(dir, 'short-len.safetensors');
    writeSafetensors(file, { www: { dtype: 'f32', shape: [4], data: Float32Array.from([1, 2, 3, 4]) } }); // 7 bytes of padding
    const bytes = fs.readFileSync(file);
    const n = bytes.readBigUInt64LE(0);
    const padded = bytes.subarray(8, 8 + Number(n)).toString();
    assert.ok(padded.endsWith('    '), 'the writer pads this header with at least 4 spaces');
    for (const delta of [4n, 1n]) {
      const cut = Buffer.from(bytes);
      cut.writeBigUInt64LE(n - delta);
      const bad = path.join(dir, `short-len-${delta}.safetensors`);
      fs.writeFileSync(bad, cut);
      fails(() => SafetensorsArchive.openFile(bad), bad, new RegExp(`${delta} bytes after the end of the last tensor 'www'`));
    }
  });

  test(`a header of more than MAX_TENSORS_PER_FILE (${MAX_TENSORS_PER_FILE}) entries is refused, naming the limit and the remedy`, () => {
    // The audit's 68 MB header of tiny entries took 867 MB to parse; now parsing stops at the limit.
    const parts = Array.from({ length: MAX_TENSORS_PER_FILE + 1 }, (_, i) => `"t${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`);
    const file = raw('many.safetensors', `{${parts.join(',')}}`);
    fails(() => SafetensorsArchive.openFile(file), file,
      new RegExp(`more than ${MAX_TENSORS_PER_FILE} tensors, attend's limit per file \\(MAX_TENSORS_PER_FILE.*split the checkpoint into shards`));
  });

  test('a header exactly at the 100,000,000-byte limit is parsed', () => {
    const h = Buffer.alloc(100_000_000, 0x20);
    h.write('{}');
    const st = SafetensorsArchive.openFile(raw('cap-ok.safetensors', h));
    assert.deepEqual(st.names(), []);
    st.close();
  });

  test('JSON escapes in names and metadata are decoded; unknown entry fields are ignored', () => {
    const file = raw('escapes.safetensors',
      '{"__metadata__":{"k\\u00e9":"a\\"b"},"w\\u0031":{"dtype":"F32","extra":{"x":[1,{"y":null}]},"shape":[1],"data_offsets":[0,4]}}  ',
      Buffer.from(Float32Array.from([2.5]).buffer));
    const st = SafetensorsArchive.openFile(file);
    assert.deepEqual(st.names(), ['w1']);
    assert.deepEqual(st.metadata, { 'k\u00e9': 'a"b' });
    assert.deepEqual(st.readF32('w1'), Float32Array.from([2.5]));
    st.close();
  });

  test('a FIFO, socket or device given as a shard is refused before it is opened (opening a FIFO blocks)', { skip: process.platform === 'win32' }, () => {
    const d = fs.mkdtempSync(path.join(dir, 'fifo-'));
    const fifo = path.join(d, 'model.safetensors');
    execFileSync('mkfifo', [fifo]);
    fails(() => SafetensorsArchive.openFile(fifo), fifo, /is not a regular file \(a FIFO\)/);
    fails(() => SafetensorsArchive.open(d), fifo, /is not a regular file \(a FIFO\)/);
    fails(() => SafetensorsArchive.openFile('/dev/zero'), '/dev/zero', /is not a regular file \(a character device\)/);
    const sharded = fs.mkdtempSync(path.join(dir, 'fifo-shard-'));
    execFileSync('mkfifo', [path.join(sharded, 's1.safetensors')]);
    fs.writeFileSync(path.join(sharded, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 's1.safetensors' } }));
    fails(() => SafetensorsArchive.open(sharded), 's1.safetensors', /is not a regular file \(a FIFO\)/);
    const fifoIndex = fs.mkdtempSync(path.join(dir, 'fifo-index-'));
    execFileSync('mkfifo', [path.join(fifoIndex, 'model.safetensors.index.json')]);
    fails(() => SafetensorsArchive.open(fifoIndex), 'model.safetensors.index.json', /is not a regular file \(a FIFO\)/);
  });

  test('a file with no tensors is valid', () => {
    const st = SafetensorsArchive.openFile(raw('none.safetensors', {}));
    assert.deepEqual(st.names(), []);
    assert.equal(st.dataBytes, 0);
    st.close();
  });
});

// transformers-written checkpoints (another helper's fixtures), when present: every tensor reads at its shape.
const parityRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'parity');
const parityDirs = fs.existsSync(parityRoot)
  ? fs.readdirSync(parityRoot).map((d) => path.join(parityRoot, d)).filter((d) => fs.existsSync(path.join(d, 'config.json')))
  : [];

describe('transformers-written fixtures', { skip: parityDirs.length === 0 ? 'no fixtures under test/fixtures/parity' : false }, () => {
  for (const d of parityDirs) {
    test(path.basename(d), () => {
      const st = SafetensorsArchive.open(d);
      const index = path.join(d, 'model.safetensors.index.json');
      if (fs.existsSync(index) && !fs.existsSync(path.join(d, 'model.safetensors'))) {
        const map = JSON.parse(fs.readFileSync(index, 'utf8')).weight_map;
        assert.deepEqual(st.names().sort(), Object.keys(map).sort());
      }
      let bytes = 0;
      for (const name of st.names()) {
        const e = st.entry(name);
        const values = st.readF32(name);
        assert.equal(values.length, e.shape.reduce((a, b) => a * b, 1), name);
        assert.ok(values.every(Number.isFinite), `${name} has non-finite values`);
        bytes += e.end - e.begin;
      }
      assert.equal(st.dataBytes, bytes);
      const vocab = JSON.parse(fs.readFileSync(path.join(d, 'config.json'), 'utf8')).vocab_size;
      const embed = st.names().find((n) => /embed_tokens\.weight$|wte\.weight$/.test(n));
      if (embed && typeof vocab === 'number') assert.equal(st.entry(embed).shape[0], vocab);
      st.close();
    });
  }
});
