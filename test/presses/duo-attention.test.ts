/**
 * DuoAttention (presses/duo-attention.ts): the official pattern format read with one-line errors, which heads a
 * ratio makes streaming (kvpress's round(N·R) lowest gates), what each head keeps worked by hand on the parity
 * checkpoint llama-gqa-tied with the hand-made pattern of test/fixtures/duo-attention/ (retrieval heads untouched,
 * streaming heads = sinks + recent window, after the prefill, per chunk and while decoding, memory freed), patterns
 * written from probe scores (heads/duo-pattern.ts), and — when test/fixtures/duo-oracle/ and
 * test/fixtures/duo-oracle-parity/ exist (tools/fixtures/make_duo_oracle.py) — kvpress's DuoAttentionPress with the
 * same pattern file on attend-mini and on the parity checkpoint llama-gqa-tied.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { KVCache } from '../../src/cache/kv-cache.js';
import { AttendError } from '../../src/errors.js';
import { prefill } from '../../src/generate/prefill.js';
import { formatGate, gatesFromScores, gatesText, writeDuoPattern } from '../../src/heads/duo-pattern.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import type { Budget } from '../../src/presses/budget.js';
import { DuoAttentionPress, parseGates, readDuoPattern, streamingHeads, streamingKept } from '../../src/presses/duo-attention.js';
import { createPress, pressEntry } from '../../src/presses/registry.js';
import { type CompressionPlan, CompressionSession } from '../../src/presses/runner.js';
import { maxAbsDiff, PARITY_DIR, readF32 } from '../helpers/fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const PATTERN = join(import.meta.dirname, '..', 'fixtures', 'duo-attention', 'llama-gqa-tied');
const lm = loadModel(join(PARITY_DIR, 'llama-gqa-tied'));
const ids = Array.from({ length: 40 }, (_, i) => (i * 53 + 7) % lm.config.vocabSize);
const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

/** Per layer and KV head, the original positions each head holds. */
function positions(cache: KVCache): number[][][] {
  return cache.layers.map((l) => l.heads.map((h) => Array.from(h.positions)));
}

/** Runs `tokens` through a session of a duo-attention press on the fixture pattern; returns the cache and session. */
function run(plan: Partial<CompressionPlan> & { budget?: Budget }, options: Record<string, string | number> = {}, chunkSize?: number, tokens = ids) {
  const cache = newCache(lm.config, 'f32');
  const press = createPress('duo-attention', { pattern: PATTERN, ...options });
  const session = new CompressionSession({ press, during: 'prefill', ...plan }, lm.model, cache);
  const logits = prefill(lm.model, cache, tokens, { chunkSize, observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, tokens.length) });
  return { cache, session, press: press as DuoAttentionPress, logits };
}

/** Asserts `f` throws an AttendError whose one-line message matches `pattern`. */
function refuses(f: () => unknown, pattern: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof AttendError, `not an AttendError: ${e}`);
    assert.ok(!e.message.includes('\n'), `more than one line: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
}

/** A pattern directory in a fresh temporary folder, with the given files (null leaves one out). */
function patternDir(config: string | null, tsv: string | null): string {
  const dir = mkdtempSync(join(tmpdir(), 'duo-pattern-'));
  if (config !== null) writeFileSync(join(dir, 'config.json'), config);
  if (tsv !== null) writeFileSync(join(dir, 'full_attention_heads.tsv'), tsv);
  return dir;
}

test('the pattern directory: sizes from config.json, gates from the TSV (clipped to [0, 1], comments and blank lines ignored)', () => {
  const p = readDuoPattern(PATTERN);
  assert.equal(p.sinkSize, 2);
  assert.equal(p.recentSize, 4);
  assert.deepEqual(p.gates, [[0.9, 0.1], [0.3, 0.7]]);
  assert.deepEqual(parseGates('# gates\n-0.5\t 1.5 \n\n0.25\t0.75 # layer 1\r\n', 'x.tsv'), [[0, 1], [0.25, 0.75]]);
});

test('a bad pattern is refused in one line naming the file and the problem', () => {
  const good = '{"sink_size": 2, "recent_size": 4}';
  const gates = '0.9\t0.1\n0.3\t0.7\n';
  const dirs: string[] = [];
  const dir = (c: string | null, t: string | null) => {
    const d = patternDir(c, t);
    dirs.push(d);
    return d;
  };
  try {
    refuses(() => createPress('duo-attention', {}), /needs --press-opt pattern=/);
    refuses(() => readDuoPattern(join(tmpdir(), 'no-such-duo-pattern')), /no-such-duo-pattern does not exist/);
    refuses(() => readDuoPattern(join(PATTERN, 'config.json')), /is not a directory/);
    refuses(() => readDuoPattern(dir(good, null)), /full_attention_heads\.tsv does not exist/);
    refuses(() => readDuoPattern(dir(null, gates)), /config\.json does not exist/);
    refuses(() => readDuoPattern(dir('{"sink_size": 2', gates)), /config\.json: not readable JSON/);
    refuses(() => readDuoPattern(dir('{"sink_size": 2}', gates)), /"recent_size" must be a whole number ≥ 1, got nothing/);
    refuses(() => readDuoPattern(dir('{"sink_size": 2.5, "recent_size": 4}', gates)), /"sink_size" must be a whole number ≥ 0, got 2.5/);
    refuses(() => readDuoPattern(dir('{"sink_size": 2, "recent_size": 0}', gates)), /"recent_size" must be a whole number ≥ 1, got 0/);
    refuses(() => readDuoPattern(dir(good, '0.9\tabc\n0.3\t0.7\n')), /line 1, column 2: "abc" is not a finite number/);
    refuses(() => readDuoPattern(dir(good, '0.9 0.1\n0.3 0.7\n')), /line 1, column 1: "0.9 0.1" is not a finite number \(gates are tab-separated\)/);
    refuses(() => readDuoPattern(dir(good, '0.9\t0.1\n0.3\tnan\n')), /line 2, column 2: "nan" is not a finite number/);
    refuses(() => readDuoPattern(dir(good, '0.9\t0.1\n0.3\n')), /line 2 has 1 gates, the first row 2/);
    refuses(() => readDuoPattern(dir(good, '\n# nothing\n')), /no gates/);
    // The shape is checked against the model at the first compression.
    refuses(() => run({ budget: { ratio: 0.5 } }, { pattern: dir(good, '0.9\t0.1\n') }), /has 1 rows, this model \(llama\) has 2 layers/);
    refuses(() => run({ budget: { ratio: 0.5 } }, { pattern: dir(good, '0.9\t0.1\t0.2\n0.3\t0.7\t0.2\n') }), /has 3 gates per row, this model \(llama\) has 2 KV heads per layer/);
    refuses(() => run({ budget: { tokens: 10 } }), /--ratio is the share of KV heads made streaming/);
    refuses(() => createPress('duo-attention', { pattern: PATTERN, 'recent-size': '0' }), /option recent-size must be a whole number ≥ 1, got "0"/);
    refuses(() => createPress('duo-attention', { pattern: PATTERN, 'sink-size': 'x' }), /option sink-size must be a whole number ≥ 0, got "x"/);
    refuses(() => new DuoAttentionPress(readDuoPattern(PATTERN)).score({ layer: 0 } as never), /runs in a CompressionSession/);
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
});

test("the ratio makes the round(N·R) lowest gates streaming (Python's round, ties to the earlier head)", () => {
  const gates = [[0.9, 0.1], [0.3, 0.7]];
  assert.deepEqual(streamingHeads(gates, 0.1), [[false, false], [false, false]]); // round(0.4) = 0
  assert.deepEqual(streamingHeads(gates, 0.25), [[false, true], [false, false]]);
  assert.deepEqual(streamingHeads(gates, 0.5), [[false, true], [true, false]]);
  assert.deepEqual(streamingHeads(gates, 0.75), [[false, true], [true, true]]);
  assert.deepEqual(streamingHeads(gates, 0.9), [[true, true], [true, true]]); // round(3.6) = 4
  assert.deepEqual(streamingHeads([[0.5, 0.5], [0.5, 0.5]], 0.5), [[true, true], [false, false]]);
  // Ten heads: 10 × 0.25 = 2.5 rounds to 2 and 10 × 0.45 = 4.5 to 4 (halves to even), 10 × 0.35 = 3.5 to 4.
  const ten = [[0.0, 0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8, 0.9]];
  const count = (r: number) => streamingHeads(ten, r).flat().filter(Boolean).length;
  assert.deepEqual([count(0.25), count(0.35), count(0.45)], [2, 4, 4]);
  assert.deepEqual(streamingHeads(ten, 0.25), [[true, true, false, false, false], [false, false, false, false, false]]);
});

test('a streaming head keeps its first sink and last recent entries, all of them when that covers it', () => {
  assert.deepEqual(Array.from(streamingKept(10, 2, 3)), [0, 1, 7, 8, 9]);
  assert.deepEqual(Array.from(streamingKept(10, 0, 3)), [7, 8, 9]);
  assert.deepEqual(Array.from(streamingKept(6, 2, 4)), range(0, 6));
  assert.deepEqual(Array.from(streamingKept(3, 2, 4)), range(0, 3));
});

// The fixture pattern: gates [[0.9, 0.1], [0.3, 0.7]], sink 2, recent 4; at ratio 0.5 heads 0.1 and 1.0 stream.
const STREAMING = [0, 1, ...range(36, 40)];
const ALL = range(0, 40);

test('after the prefill: retrieval heads keep all 40 entries, streaming heads positions 0, 1 and 36…39, memory freed', () => {
  const full = newCache(lm.config, 'f32');
  const fullLogits = prefill(lm.model, full, ids);
  const { cache, session, press, logits } = run({ budget: { ratio: 0.5 } });
  assert.deepEqual(press.streamingMask(), [[false, true], [true, false]]);
  assert.deepEqual(positions(cache), [[ALL, STREAMING], [STREAMING, ALL]]);
  assert.equal(session.stats.dropped, 2 * 34);
  const entryBytes = full.layers[0].heads[0].liveBytes() / 40;
  cache.layers.forEach((l, layer) =>
    l.heads.forEach((head, h) => {
      if (head.length === 40) return;
      assert.equal(head.bytes(), head.liveBytes(), `head ${layer}.${h}: no spare room kept`);
      assert.equal(head.bytes(), 6 * entryBytes, `head ${layer}.${h}: six entries' bytes`);
    }),
  );
  assert.equal(cache.liveBytes(), full.liveBytes() - 2 * 34 * entryBytes, 'the cache is smaller by the dropped entries');
  // The prefill's own logits ran with full attention (compression comes after it).
  assert.ok(maxAbsDiff(logits, fullLogits) === 0);
});

test('sink-size and recent-size replace the pattern\'s sizes', () => {
  const { cache } = run({ budget: { ratio: 0.5 } }, { 'sink-size': 1, 'recent-size': 2 });
  assert.deepEqual(positions(cache), [[ALL, [0, 38, 39]], [[0, 38, 39], ALL]]);
});

test('no streaming head (round(4 · 0.1) = 0): nothing is dropped and the logits are those of full attention', () => {
  const question = [5, 17, 33];
  const full = newCache(lm.config, 'f32');
  prefill(lm.model, full, ids);
  const want = lm.model.forward(question, full).f32;
  const { cache, session } = run({ budget: { ratio: 0.1 } });
  assert.equal(session.stats.dropped, 0);
  assert.deepEqual(positions(cache), [[ALL, ALL], [ALL, ALL]]);
  assert.equal(maxAbsDiff(lm.model.forward(question, cache).f32, want), 0);
});

test('per chunk: a streaming head never holds more than sink + recent + one chunk; decoding rolls its window', () => {
  const cache = newCache(lm.config, 'f32');
  const press = createPress('duo-attention', { pattern: PATTERN });
  const session = new CompressionSession({ press, budget: { ratio: 0.5 }, during: 'chunks', decode: { every: 1 } }, lm.model, cache);
  const peaks: number[] = [];
  const streamingOf = (c: KVCache) => [c.layers[0].heads[1], c.layers[1].heads[0]];
  let logits = prefill(lm.model, cache, ids, {
    chunkSize: 8,
    observer: session.observer,
    afterChunk: (_, end) => {
      peaks.push(Math.max(...streamingOf(cache).map((h) => h.length)));
      session.afterChunk(end, ids.length);
      for (const head of streamingOf(cache)) assert.deepEqual(Array.from(head.positions), Array.from(streamingKept(end, 2, 4)), `after the chunk ending at ${end}`);
      assert.equal(cache.layers[0].heads[0].length, end, 'a retrieval head keeps everything');
    },
  });
  assert.deepEqual(peaks, [8, 14, 14, 14, 14], 'before each compression: sink + recent + the chunk at most');
  assert.deepEqual(positions(cache), [[ALL, STREAMING], [STREAMING, ALL]]);
  for (let step = 1; step <= 3; step++) {
    let next = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[next]) next = i;
    logits = lm.model.forward([next], cache, { lastOnly: true, observer: session.observer }).f32;
    session.afterDecodeStep();
    const seen = 40 + step;
    for (const head of streamingOf(cache)) assert.deepEqual(Array.from(head.positions), [0, 1, ...range(seen - 4, seen)], `decoding step ${step}`);
    assert.equal(cache.layers[1].heads[1].length, seen);
  }
});

test('the registry entry compresses while decoding at every step (the official rolling window)', () => {
  assert.deepEqual(pressEntry('duo-attention').decode?.({}), { every: 1 });
});

test('patterns from probe scores: gate = max of the query heads of each KV head, written as np.savetxt writes it', () => {
  assert.deepEqual(gatesFromScores([[0.1, 0.4, 0, 0], [2, 0.3, 0.2, 0.25]], 2), [[0.4, 0], [1, 0.25]]);
  // np.savetxt's "%.18e", as numpy wrote the fixture pattern.
  assert.equal(formatGate(0.9), '9.000000000000000222e-01');
  assert.equal(formatGate(0), '0.000000000000000000e+00');
  assert.equal(formatGate(1), '1.000000000000000000e+00');
  assert.equal(formatGate(1e-5), '1.000000000000000082e-05');
  assert.equal(formatGate(0.6054687500), '6.054687500000000000e-01');
  assert.equal(gatesText([[0.9, 0.1], [0.3, 0.7]]), readFileSync(join(PATTERN, 'full_attention_heads.tsv'), 'utf8'));
  const dir = mkdtempSync(join(tmpdir(), 'duo-written-'));
  try {
    const scores = [[0.1, 0.4, 0, 0.05], [0.3, 0.2, 0.9, 0.6]];
    writeDuoPattern(join(dir, 'p'), { probe: 'retrieval', model: 'x', layers: 2, heads: 4, scores, samples: 3 }, lm.config);
    const back = readDuoPattern(join(dir, 'p'));
    assert.deepEqual(back.gates, [[0.4, 0.05], [0.3, 0.9]]);
    assert.deepEqual([back.sinkSize, back.recentSize], [128, 256]);
    // Used as a pattern, the lowest gates stream: 0.05 (layer 0, head 1) and 0.3 (layer 1, head 0) at ratio 0.5.
    assert.deepEqual(streamingHeads(back.gates, 0.5), [[false, true], [true, false]]);
    refuses(() => writeDuoPattern(join(dir, 'q'), { probe: 'retrieval', model: 'x', layers: 1, heads: 4, scores: [scores[0]], samples: 3 }, lm.config), /the scores are 1 layers × 4 heads, the model has 2 × 4/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// kvpress's DuoAttentionPress with the same pattern file (tools/fixtures/make_duo_oracle.py), on attend-mini and on
// the parity checkpoint llama-gqa-tied (2 layers × 2 KV heads, the script's seeded gate table).
const ORACLES = [
  { fixture: 'duo-oracle', models: join(ROOT, 'models'), label: 'attend-mini' },
  { fixture: 'duo-oracle-parity', models: PARITY_DIR, label: 'the parity checkpoint llama-gqa-tied' },
];

interface DuoOracleCase {
  name: string;
  ratio: number;
  streaming: boolean[][];
  kept: number[][][];
  masked: number;
  logits: string;
}

interface DuoOracle {
  model: string;
  weights_sha256: string;
  pattern: string;
  context_ids: number[];
  question_ids: number[];
  cases: DuoOracleCase[];
}

for (const { fixture, models, label } of ORACLES) {
  const ORACLE = join(ROOT, 'test', 'fixtures', fixture);
  const oracle = existsSync(join(ORACLE, 'oracle.json')) ? (JSON.parse(readFileSync(join(ORACLE, 'oracle.json'), 'utf8')) as DuoOracle) : undefined;
  const skip = oracle ? false : `no kvpress fixture at ${ORACLE} (tools/fixtures/make_duo_oracle.py makes it)`;

  test(`kvpress DuoAttentionPress on ${label}: same streaming heads, same entries (Attend frees what kvpress masks), logits within 1e-3`, { skip }, () => {
    const ref = oracle!;
    const modelDir = join(models, ref.model);
    const hash = createHash('sha256');
    for (const f of readdirSync(modelDir).filter((f) => f.endsWith('.safetensors')).sort()) hash.update(readFileSync(join(modelDir, f)));
    assert.equal(hash.digest('hex'), ref.weights_sha256, `${modelDir} changed: run tools/fixtures/make_duo_oracle.py again`);
    const mini = loadModel(modelDir);
    const { numLayers: L, numKvHeads: H } = mini.config;
    const n = ref.context_ids.length;
    // A copy, so that nothing the test does can touch the fixture.
    const dir = mkdtempSync(join(tmpdir(), 'duo-oracle-'));
    try {
      cpSync(join(ORACLE, ref.pattern), join(dir, 'pattern'), { recursive: true });
      assert.ok(ref.cases.length > 0, 'the fixture holds cases');
      for (const c of ref.cases) {
        const cache = newCache(mini.config, 'f32');
        const press = createPress('duo-attention', { pattern: join(dir, 'pattern') }) as DuoAttentionPress;
        const session = new CompressionSession({ press, budget: { ratio: c.ratio }, during: 'prefill' }, mini.model, cache);
        prefill(mini.model, cache, ref.context_ids, { observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, n) });
        assert.deepEqual(press.streamingMask(), c.streaming, `${c.name}: streaming heads`);
        assert.deepEqual(positions(cache), c.kept, `${c.name}: kept entries`);
        const entries = cache.layers.reduce((s, l) => s + l.heads.reduce((t, h) => t + h.length, 0), 0);
        assert.equal(entries, n * L * H - c.masked, `${c.name}: Attend holds every entry kvpress does not mask`);
        const full = cache.layers.flatMap((l) => l.heads).find((h) => h.length === n);
        const entryBytes = full ? full.liveBytes() / n : 2 * mini.config.headDim * 4;
        assert.equal(cache.liveBytes(), (n * L * H - c.masked) * entryBytes, `${c.name}: the cache is smaller by the masked entries' bytes`);
        for (const head of cache.layers.flatMap((l) => l.heads)) if (head.length < n) assert.equal(head.bytes(), head.liveBytes());
        const logits = mini.model.forward(ref.question_ids, cache).f32;
        const last = logits.subarray(logits.length - mini.config.vocabSize);
        const diff = maxAbsDiff(last, readF32(join(ORACLE, c.logits)));
        assert.ok(diff < 1e-3, `${c.name}: logits after the question, max |Δ| ${diff}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
