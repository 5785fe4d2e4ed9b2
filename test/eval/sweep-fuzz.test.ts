/**
 * Seeded fuzzing of what `attend bench` reads (issue 15): sweep configs and results lines, mutated at random
 * from valid ones. Every outcome must be a valid result (a config that expands into exactly the cells it counts,
 * within MAX_SWEEP_CELLS; result lines every one of which is a whole result) or a one-line user error, exit 1
 * for the CLI; never another exception, a crash signal, a hang, or a cut-short line read as a result.
 *
 * The config reader and the results reader run in-process for most cases; a sample of configs and results files
 * drives the built CLI (dist/cli/main.js: `npm run build` first) on the fixture model with --limit 2, each run
 * with a generous hang guard. The same seed gives the same cases; the counts are printed as a diagnostic.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AttendError } from '../../src/errors.js';
import { countCells, expandSweep, MAX_SWEEP_CELLS, readSweepConfig, validateSweep } from '../../src/eval/sweep-config.js';
import { readResultsFile, resultProblem } from '../../src/eval/results-file.js';
import type { CellResult } from '../../src/eval/types.js';
import { PARITY_DIR } from '../helpers/fixtures.js';
import { Random } from '../../src/generate/random.js';

const SEED = 15;
const CONFIG_CASES = 1000;
const RESULTS_CASES = 1000;
const CLI_CONFIG_CASES = 8;
const CLI_RESULTS_CASES = 3;
const ROOT = join(import.meta.dirname, '..', '..');
const modelDir = join(PARITY_DIR, 'llama3-mqa');
const MODEL_CONTEXT = 256; // the fixture's

const tmp = mkdtempSync(join(tmpdir(), 'attend-sweep-fuzz-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** The project's seeded generator (src/generate/random.ts), so a failing case can be found again from SEED. */
function random(seed: number): () => number {
  const r = new Random(seed);
  return () => r.next();
}
const rand = random(SEED);
const int = (n: number) => Math.floor(rand() * n);
const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;

const VALUES: unknown[] = [
  0, 1, -1, 2, 0.5, 1.5, 7, 64, 100, 200, 256, 1e9, 1e308, -0, 2 ** 53, 'x', '', '0.5', '200', 'full', 'snapkv', 'never',
  'prefill', 'chunks', 'yes', 'passkey', 'niah_single', 'sudoku', null, true, false, [], {}, [null], ['x'], [1e9], [0.5],
  [200], [true, false], [false, false], [{}], [{ press: 'full' }], [{ press: 'snapkv' }], { window: 'x' }, { window: -1 },
  { press: 'h2o', ratios: [0.5] }, 'a\nb', '\u0000',
];

const BASE_CONFIG = {
  tasks: ['passkey', 'vt'],
  contextLengths: [200],
  depths: [0, 1],
  samples: 1,
  methods: [{ press: 'full' }, { press: 'snapkv', ratios: [0.5], options: { window: 8 } }, { press: 'streaming-llm', budgets: [32] }],
  queryAware: [false, true],
  prefillChunk: 64,
  seed: 1,
};

/** Every path into a JSON value (object keys and array indexes). */
function paths(value: unknown, at: Array<string | number> = []): Array<Array<string | number>> {
  const out = [at];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...at, i])));
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...at, k]));
  return out;
}

/** A structural mutation of a JSON value: a value replaced, a key removed or added, an item repeated. */
function mutateValue<T>(base: T): T {
  const copy = structuredClone(base) as unknown;
  for (let n = 1 + int(3); n > 0; n--) {
    const all = paths(copy).filter((p) => p.length > 0);
    const path = pick(all);
    const parent = path.slice(0, -1).reduce<any>((v, k) => v[k], copy);
    const key = path.at(-1)!;
    const kind = int(4);
    if (kind === 0 && !Array.isArray(parent)) delete parent[key];
    else if (kind === 1 && Array.isArray(parent)) parent.push(structuredClone(parent[key as number]));
    else if (kind === 2 && !Array.isArray(parent)) parent[pick(['extra', 'ratio', 'window', 'budget', '__proto__x'])] = pick(VALUES);
    else parent[key] = structuredClone(pick(VALUES));
  }
  return copy as T;
}

/**
 * A config of the right types with values drawn near the limits (lengths from 1 token, budgets beyond the
 * context, tiny prefill chunks, press options at 0), so that cells run on what the checks let through.
 */
function nearValidConfig(): typeof BASE_CONFIG {
  const ratio = () => pick([0.001, 0.25, 0.5, 0.999, rand() || 0.5]);
  return {
    ...BASE_CONFIG,
    tasks: [pick(['passkey', 'vt', 'niah_single', 'fwe', 'perplexity', 'niah_multikey'])],
    contextLengths: [pick([1, 2, 16, 64, 150, 200, 255, 256, 1 + int(256)])],
    depths: [pick([0, 1, 0.5, rand()])],
    methods: [
      { press: 'full' },
      pick([
        { press: pick(['snapkv', 'pyramidkv', 'h2o', 'streaming-llm', 'knorm', 'adakv']), ratios: [ratio()] },
        { press: pick(['snapkv', 'streaming-llm', 'h2o']), budgets: [pick([1, 2, 32, 255, 256, 1000, 1e6])], during: pick(['prefill', 'chunks'] as const) },
        { press: 'snapkv', ratios: [ratio()], options: { window: pick([0, 1, 8, 255, 256, 10_000]) } },
      ]),
    ] as typeof BASE_CONFIG.methods,
    prefillChunk: pick([1, 7, 64, 256, 1e6]),
    seed: pick([0, 1, 2 ** 32 - 1, int(1000)]),
  };
}

/** A textual mutation of JSON text: cut short, a character replaced, inserted or removed. */
function mutateText(text: string): string {
  const at = int(text.length + 1);
  switch (int(4)) {
    case 0: return text.slice(0, at);
    case 1: return text.slice(0, at) + pick(['{', '}', '[', ']', ',', ':', '"', '\n', '\\', 'x', '1e999', '\u0001', ' ']) + text.slice(at);
    case 2: return text.slice(0, at) + text.slice(at + 1 + int(5));
    default: return text.slice(0, at) + String.fromCharCode(int(128)) + text.slice(at + 1);
  }
}

type Outcome = 'valid' | 'refused';

/** A user error: an AttendError whose message is one line. */
function refused(e: unknown, what: string): Outcome {
  if (!(e instanceof AttendError)) throw new Error(`${what}: not a user error: ${(e as Error)?.stack ?? String(e)}`);
  assert.doesNotMatch(e.message, /[\n\r]/, `${what}: a message of several lines: ${e.message}`);
  return 'refused';
}

/** Reads, validates and expands a config file as `attend bench --config` does before it runs anything. */
function configOutcome(path: string, what: string): Outcome {
  try {
    const config = readSweepConfig(path);
    validateSweep(config, MODEL_CONTEXT, path);
    const cells = expandSweep(config, 'm');
    assert.equal(cells.length, countCells(config), `${what}: count`);
    assert.ok(cells.length > 0 && cells.length <= MAX_SWEEP_CELLS, `${what}: ${cells.length} cells`);
    for (const c of cells) {
      assert.ok(Number.isInteger(c.contextLength) && c.contextLength > 0 && c.contextLength <= MODEL_CONTEXT, what);
      assert.ok(Number.isSafeInteger(c.seed), `${what}: seed ${c.seed}`);
      assert.ok(c.during === null || c.during === 'prefill' || c.during === 'chunks', what);
      assert.equal(typeof c.queryAware, 'boolean', what);
    }
    return 'valid';
  } catch (e) {
    return refused(e, what);
  }
}

const RESULT: CellResult = {
  model: 'llama3-mqa', task: 'passkey', contextLength: 200, depth: 0.5, seed: 1000004, method: 'snapkv', options: { window: 8 },
  budget: { ratio: 0.5 }, during: 'prefill', queryAware: true, prefillChunk: 64, commit: 'abc1234', date: '2026-12-01T00:00:00.000Z',
  metrics: {
    accuracy: 1, prediction: ' 12345', expected: ['12345'], kvBytes: 4096, peakKvBytes: 8192, peakRssBytes: 1e8, promptTokens: 180,
    ttftMs: 12.5, prefillTokensPerS: 9000, decodeTokensPerS: 300, sharedPrefill: true,
  },
};
const LINE = JSON.stringify(RESULT);

/**
 * A results file with one mutated line among whole ones; the outcome must be: refused (one line), or every
 * result read back whole (resultProblem finds nothing) and the mutated line, where it is a cut-short copy of a
 * result, never among them.
 */
function resultsOutcome(path: string, what: string): { outcome: Outcome; skipped: number } {
  const prefix = (s: string) => s !== LINE && LINE.startsWith(s);
  try {
    const file = readResultsFile(path);
    const lines = readFileSync(path, 'utf8').split('\n');
    for (const r of file.results) assert.equal(resultProblem(r), null, `${what}: an invalid result was read`);
    const kept = file.results.length + file.skipped.length;
    assert.equal(kept, lines.filter((l) => l.trim()).length, `${what}: a line neither kept, skipped nor refused`);
    for (const n of file.skipped) assert.throws(() => JSON.parse(lines[n - 1]!), `${what}: line ${n} skipped but valid JSON`);
    lines.forEach((l, i) => {
      if (l.trim() && prefix(l)) assert.ok(file.skipped.includes(i + 1), `${what}: line ${i + 1}, cut short, was not skipped`);
    });
    return { outcome: 'valid', skipped: file.skipped.length };
  } catch (e) {
    return { outcome: refused(e, what), skipped: 0 };
  }
}

function mutatedResultsText(): string {
  const mutated = int(3) === 0 ? mutateText(LINE) : JSON.stringify(mutateValue(RESULT));
  switch (int(3)) {
    case 0: return `${LINE}\n${mutated}\n${LINE}\n`; // in the middle
    case 1: return `${LINE}\n${mutated}`; // the last line, without a newline (a torn write)
    default: return `${mutated}\n`;
  }
}

function runBuiltCli(args: string[]) {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'cli', 'main.js'), 'bench', '--model', modelDir, '--limit', '2', ...args],
    { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return r;
}

function assertCliOutcome(r: ReturnType<typeof runBuiltCli>, what: string, resultsPath: string): Outcome {
  assert.equal(r.signal, null, `${what}: ended by ${r.signal} (hang guard or crash): ${r.stderr}`);
  if (r.status === 0) {
    const file = readResultsFile(resultsPath);
    assert.ok(file.results.length > 0, `${what}: exit 0 without results`);
    for (const result of file.results) assert.equal(resultProblem(result), null, what);
    assert.ok(readFileSync(resultsPath, 'utf8').endsWith('\n'), `${what}: the results file ends in a cut-short line`);
    return 'valid';
  }
  assert.equal(r.status, 1, `${what}: exit ${r.status}: ${r.stderr}`);
  assert.match(r.stderr, /^attend: [^\n]*\n$/, `${what}: not one line: ${r.stderr}`);
  return 'refused';
}

test('fuzz: mutated sweep configs, in-process', (t) => {
  const counts = { valid: 0, refused: 0 };
  const path = join(tmp, 'config.json');
  for (let i = 0; i < CONFIG_CASES; i++) {
    const kind = int(5);
    const text = kind === 0 ? mutateText(JSON.stringify(BASE_CONFIG, null, 2))
      : kind === 1 ? JSON.stringify(nearValidConfig()) : JSON.stringify(mutateValue(BASE_CONFIG));
    writeFileSync(path, text);
    counts[configOutcome(path, `config case ${i}: ${text.slice(0, 300)}`)]++;
  }
  t.diagnostic(`${CONFIG_CASES} configs (seed ${SEED}): ${counts.valid} valid, ${counts.refused} refused with a one-line error`);
  assert.ok(counts.valid > 0 && counts.refused > 0, 'the mutations reach both outcomes');
});

test('fuzz: mutated results lines, in-process', (t) => {
  const counts = { valid: 0, refused: 0, skipped: 0 };
  const path = join(tmp, 'results.jsonl');
  for (let i = 0; i < RESULTS_CASES; i++) {
    const text = mutatedResultsText();
    writeFileSync(path, text);
    const { outcome, skipped } = resultsOutcome(path, `results case ${i}: ${text.slice(0, 600)}`);
    counts[outcome]++;
    if (skipped > 0) counts.skipped++;
  }
  t.diagnostic(`${RESULTS_CASES} results files (seed ${SEED}): ${counts.valid} read (${counts.skipped} of them skipping a cut-short line), `
    + `${counts.refused} refused with a one-line error`);
  assert.ok(counts.valid > 0 && counts.refused > 0 && counts.skipped > 0, 'the mutations reach every outcome');
});

test('fuzz: the built CLI on a sample of mutated configs and results files', (t) => {
  const counts = { valid: 0, refused: 0 };
  for (let i = 0; i < CLI_CONFIG_CASES; i++) {
    const out = join(tmp, `cli-config-${i}`);
    const config = join(tmp, `cli-config-${i}.json`);
    // Half the cases are of the right types with values near the limits, so that they run cells.
    const text = JSON.stringify(i % 2 ? mutateValue(BASE_CONFIG) : nearValidConfig());
    writeFileSync(config, text);
    counts[assertCliOutcome(runBuiltCli(['--config', config, '--out', out]), `CLI config case ${i}: ${text}`, join(out, 'results.jsonl'))]++;
  }
  const config = join(tmp, 'cli-base.json');
  writeFileSync(config, JSON.stringify(BASE_CONFIG));
  for (let i = 0; i < CLI_RESULTS_CASES; i++) {
    const out = join(tmp, `cli-results-${i}`);
    mkdirSync(out);
    const text = mutatedResultsText();
    writeFileSync(join(out, 'results.jsonl'), text);
    counts[assertCliOutcome(runBuiltCli(['--config', config, '--out', out]), `CLI results case ${i}: ${text}`, join(out, 'results.jsonl'))]++;
  }
  t.diagnostic(`${CLI_CONFIG_CASES + CLI_RESULTS_CASES} CLI runs (seed ${SEED}): ${counts.valid} exit 0 with valid results, `
    + `${counts.refused} exit 1 with one line`);
});
