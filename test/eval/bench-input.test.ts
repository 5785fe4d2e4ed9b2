/**
 * `attend bench` on bad input (issue 15, item 6): sweep configs of the wrong types, results files holding lines
 * that are not results, --out where no folder can be, a sweep too large to expand, and a killed sweep resumed.
 * Every case ends in a valid result or one line on stderr with exit 1; none hangs (each CLI run has a generous
 * hang guard).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AttendError } from '../../src/errors.js';
import { expandSweep, readSweepConfig, SWEEP_DEFAULTS, type SweepConfig, validateSweep } from '../../src/eval/sweep-config.js';
import { readResults, runSweep } from '../../src/eval/sweep.js';
import { loadModel } from '../../src/models/load.js';
import { runCli } from '../helpers/cli.js';
import { PARITY_DIR } from '../helpers/fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const modelDir = join(PARITY_DIR, 'llama3-mqa');
const tmp = mkdtempSync(join(tmpdir(), 'attend-bench-input-'));
after(() => {
  chmodSync(tmp, 0o700);
  rmSync(tmp, { recursive: true, force: true });
});

/** A config file holding `text` (or the JSON of `value`). */
function configFile(value: unknown, text = JSON.stringify(value)): string {
  const path = join(tmp, `config-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, text);
  return path;
}

/** readSweepConfig's error message for a config, or null when it is accepted. */
function configError(value: unknown, text?: string): string | null {
  try {
    readSweepConfig(configFile(value, text));
    return null;
  } catch (e) {
    assert.ok(e instanceof AttendError, `not a one-line user error: ${(e as Error).stack}`);
    assert.doesNotMatch(e.message, /\n/, 'the message has a newline');
    return e.message;
  }
}

/** The CLI fails with one line on stderr matching `pattern` and exit status 1. */
function failsWith(args: string[], pattern: RegExp): void {
  const r = runCli(['bench', '--model', modelDir, ...args]);
  assert.equal(r.status, 1, `exit ${r.status}: ${r.stderr}`);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^attend: /);
  assert.match(r.stderr, pattern);
}

test('sweep configs of the wrong types: one-line errors saying what is expected', () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ tasks: 5 }, /"tasks" must be a non-empty list of task names, e\.g\. \["niah_single", "passkey"\] \(got 5\)/],
    [{ tasks: [] }, /"tasks" must be a non-empty list/],
    [{ tasks: ['passkey', 7] }, /"tasks" .* \(item 2 is 7\)/],
    [{ methods: [null] }, /methods item 1 must be an object such as \{"press": "snapkv", "ratios": \[0\.5\]\} \(got null\)/],
    [{ methods: 'x' }, /"methods" must be a non-empty list such as \[\{"press": "full"\}/],
    [{ methods: [] }, /"methods" must be a non-empty list/],
    [{ methods: [{ ratios: [0.5] }] }, /methods item 1: "press" must be "full" or a press name/],
    [{ methods: [{ press: 'snapkv', ratios: '0.5' }] }, /methods item 1: "ratios" must be a non-empty list of numbers in \(0, 1\).*\(got "0\.5"\)/],
    [{ methods: [{ press: 'snapkv', ratios: [1.5] }] }, /"ratios" .*\(item 1 is 1\.5\)/],
    [{ methods: [{ press: 'snapkv', budgets: [10.5] }] }, /"budgets" must be a non-empty list of whole numbers > 0/],
    [{ methods: [{ press: 'snapkv', ratios: [0.5], during: 'never' }] }, /methods item 1: "during" must be "prefill" or "chunks" \(got "never"\)/],
    [{ methods: [{ press: 'snapkv', ratios: [0.5], options: { window: null } }] }, /option "window" must be a number or a string \(got null\)/],
    [{ methods: [{ press: 'snapkv', ratios: [0.5], window: 3 }] }, /methods item 1: unknown key "window"/],
    [{ methods: [{ press: 'snapkv' }] }, /method snapkv needs ratios or budgets/],
    [{ methods: [{ press: 'full', ratios: [0.5] }] }, /full KV keeps every entry and takes no "ratios"/],
    [{ queryAware: 'yes' }, /"queryAware" must be a non-empty list of true or false, e\.g\. \[false, true\] \(got "yes"\)/],
    [{ queryAware: [true, true] }, /"queryAware" lists true twice/],
    [{ seed: 'x' }, /"seed" must be a whole number in \[0, \d+\] \(got "x"\)/],
    [{ seed: 1.5 }, /"seed" must be a whole number/],
    [{ seed: 1e300 }, /"seed" must be a whole number/],
    [{ samples: 0 }, /"samples" must be a whole number > 0 \(got 0\)/],
    [{ samples: '2' }, /"samples" must be a whole number > 0 \(got "2"\)/],
    [{ contextLengths: [2048, -1] }, /"contextLengths" .*\(item 2 is -1\)/],
    [{ contextLengths: 2048 }, /"contextLengths" must be a non-empty list of whole numbers/],
    [{ depths: [0.5, 2] }, /"depths" must be a non-empty list of needle depths in \[0, 1\]/],
    [{ depths: ['0.5'] }, /"depths"/],
    [{ prefillChunk: 0 }, /"prefillChunk" must be a whole number of tokens > 0/],
    [{ sharedPrefill: 'yes' }, /"sharedPrefill" must be true or false \(got "yes"\)/],
    [{ seedPerInstance: 1 }, /"seedPerInstance" must be true or false/],
    [{ colour: 'red' }, /unknown key "colour"/],
    [[1, 2], /the sweep config must be a JSON object/],
    [null, /the sweep config must be a JSON object/],
  ];
  for (const [value, pattern] of cases) {
    const message = configError(value);
    assert.ok(message !== null, `accepted: ${JSON.stringify(value)}`);
    assert.match(message, pattern, JSON.stringify(value));
  }
  // And valid ones still pass, the shipped sweep configs included.
  assert.equal(configError({ tasks: ['passkey'], methods: [{ press: 'snapkv', budgets: [64], during: 'chunks', options: { window: 8 } }] }), null);
  for (const name of readdirSync(join(ROOT, 'docs', 'sweeps'))) readSweepConfig(join(ROOT, 'docs', 'sweeps', name));
});

test('names holding newlines (a task, a press, an option) still give one-line errors', () => {
  assert.match(configError({ tasks: ['a\nb'] })!, /unknown task "a\\nb"/);
  const withPress = (m: unknown) => {
    const config = readSweepConfig(configFile({ tasks: ['passkey'], contextLengths: [200], methods: [m] }));
    assert.throws(() => validateSweep(config, 256, 'the config'), (e) => e instanceof AttendError && !/\n/.test(e.message) && /\\n/.test(e.message));
  };
  withPress({ press: 'a\nb', ratios: [0.5] });
  withPress({ press: 'snapkv', ratios: [0.5], options: { 'win\ndow': 1 } });
  withPress({ press: 'snapkv', ratios: [0.5], options: { window: 'x\ny' } });
});

test('JSON parse errors are one line and never quote the file', () => {
  const text = '{\n  "tasks": ["passkey",\n}\n';
  const message = configError(undefined, text)!;
  assert.match(message, /cannot read the sweep config \(not valid JSON: Unexpected token '\}'\)$/);
  assert.doesNotMatch(message, /"tasks"/);
  assert.match(configError(undefined, '{"tasks":\n  ["passkey"] x}')!, /not valid JSON: .*\(line 2, column 15\)/);
  assert.match(configError(undefined, '{"tasks": [')!, /not valid JSON: the text ends before the JSON does/);
  assert.match(configError(undefined, '')!, /not valid JSON/);
  const r = runCli(['bench', '--model', modelDir, '--config', configFile(undefined, text), '--out', join(tmp, 'never')]);
  assert.equal(r.status, 1);
  assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
  // A config that is no regular file (a folder, a device) is refused before reading.
  assert.match(configError(undefined, '')!, /sweep config/);
  failsWith(['--config', tmp, '--out', join(tmp, 'never')], /cannot read the sweep config \((EISDIR|not a regular file)\)/);
  failsWith(['--config', '/dev/zero', '--out', join(tmp, 'never')], /\/dev\/zero: cannot read the sweep config \(not a regular file\)/);
});

test('"samples": 1e9 is refused at once, even with --limit 0, and expandSweep never allocates it', () => {
  const huge = configFile({ tasks: ['passkey'], contextLengths: [100], samples: 1e9 });
  const started = performance.now();
  failsWith(['--config', huge, '--out', join(tmp, 'huge'), '--limit', '0'], /the sweep has 17,000,000,000 cells, more than MAX_SWEEP_CELLS = 100,000/);
  assert.ok(performance.now() - started < 60_000, 'hang guard');
  assert.throws(() => expandSweep({ ...SWEEP_DEFAULTS, samples: 1e9 }, 'm'), (e) => e instanceof AttendError && /MAX_SWEEP_CELLS/.test(e.message));
});

const okConfig = { tasks: ['passkey'], contextLengths: [200], depths: [0], methods: [{ press: 'full' }] };

test('a results file holding lines that are not results is refused with the line number; nothing is appended', () => {
  const result = (over: Record<string, unknown> = {}) => ({
    model: 'm', task: 'passkey', contextLength: 100, depth: 0, seed: 1, method: 'full', options: {}, budget: null, during: null,
    queryAware: false, prefillChunk: 512, commit: 'abc', date: '2026-01-01',
    metrics: { accuracy: 1, kvBytes: 1, peakKvBytes: 1, peakRssBytes: 1, promptTokens: 1, ttftMs: 1, prefillTokensPerS: 1, decodeTokensPerS: 1 },
    ...over,
  });
  const foreign: Array<[string, RegExp]> = [
    ['{"a":1}', /line 2 is not a result of attend bench \(no "model" field\)/],
    ['5', /line 2 is not a result .*\(not a JSON object \(5\)\)/],
    ['null', /line 2 is not a result .*not a JSON object/],
    ['[1,2]', /line 2 is not a result/],
    ['hello world', /line 2 is not a result .*not valid JSON/],
    [JSON.stringify(result({ metrics: { accuracy: 'x' } })), /line 2 .*"metrics\.accuracy" is not a number in \[0, 1\]/],
    [JSON.stringify(result({ metrics: { accuracy: 1 } })), /line 2 .*"metrics\.kvBytes" is not a number/],
    [JSON.stringify(result({ options: null })), /line 2 .*"options" is not an object/],
    [JSON.stringify(result({ contextLength: '100' })), /line 2 .*"contextLength" is not a whole number > 0/],
    [JSON.stringify(result({ budget: { ratio: 2 } })), /line 2 .*"budget" is not/],
  ];
  for (const [line, pattern] of foreign) {
    const path = join(tmp, 'foreign.jsonl');
    const text = `${JSON.stringify(result())}\n${line}\n`;
    writeFileSync(path, text);
    assert.throws(() => readResults(path), (e) => e instanceof AttendError && pattern.test(e.message) && !e.message.includes('\n'), line);
    assert.equal(readFileSync(path, 'utf8'), text);
  }
  // Through the CLI: one line, exit 1, the file untouched.
  const out = join(tmp, 'foreign-cli');
  mkdirSync(out);
  writeFileSync(join(out, 'results.jsonl'), '{"a":1}\n5\nnull\n');
  failsWith(['--config', configFile(okConfig), '--out', out], /results\.jsonl: line 1 is not a result of attend bench \(no "model" field\); move the file away or delete the line/);
  assert.equal(readFileSync(join(out, 'results.jsonl'), 'utf8'), '{"a":1}\n5\nnull\n');
  // A results file that is a folder or a device.
  mkdirSync(join(tmp, 'dir-results', 'results.jsonl'), { recursive: true });
  failsWith(['--config', configFile(okConfig), '--out', join(tmp, 'dir-results')], /results\.jsonl: cannot read the results \((EISDIR|not a regular file)\)/);
});

test('cut-short lines: skipped with a warning naming the line, the torn tail cut off, never parsed as a result', async () => {
  const lm = loadModel(modelDir);
  const config: SweepConfig = { ...SWEEP_DEFAULTS, ...okConfig, depths: [0, 1], samples: 2 } as SweepConfig;
  const cells = expandSweep(config, 'm');
  const path = join(tmp, 'torn', 'results.jsonl');
  await runSweep(lm, cells.slice(0, 2), path, { onWarning: () => assert.fail('no warning yet') });
  const good = readFileSync(path, 'utf8');
  const [first, second] = good.trim().split('\n');
  // A line torn mid-file (an older version ended it with a newline) and a torn last line.
  const tornMiddle = first!.slice(0, 40);
  const tornTail = second!.slice(0, second!.length - 1); // all but the closing brace
  writeFileSync(path, `${first}\n${tornMiddle}\n${second}\n${tornTail}`);
  assert.equal(readResults(path).length, 2, 'the torn lines are not results');
  const warnings: string[] = [];
  const all = await runSweep(lm, cells, path, { onWarning: (m) => warnings.push(m) });
  assert.equal(all.length, 4);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /results\.jsonl: skipping lines 2, 4, cut short by an interrupted run \(not valid JSON\); those cells run again/);
  const lines = readFileSync(path, 'utf8').split('\n');
  assert.equal(lines.at(-1), '', 'ends with a newline');
  assert.equal(lines[3], JSON.stringify(JSON.parse(lines[3]!)), 'the torn tail was cut off, not glued to the next line');
  assert.equal(readResults(path).length, 4);
  // A complete last line with no newline after it: a newline is added before the next line.
  const text = readFileSync(path, 'utf8');
  writeFileSync(path, text.slice(0, -1));
  const more = expandSweep({ ...config, samples: 3 }, 'm');
  await runSweep(lm, more, path);
  assert.equal(readResults(path).length, 6);
});

test('--out at a file, under a file, at a device, in /proc or a read-only place: one line, exit 1, no hang', () => {
  const config = configFile(okConfig);
  const file = join(tmp, 'a-file');
  writeFileSync(file, 'x');
  failsWith(['--config', config, '--out', file], /--out .*a-file: .*a-file is not a folder/);
  failsWith(['--config', config, '--out', join(file, 'sub')], /--out .*a-file\/sub: a parent of .* is a file, not a folder/);
  failsWith(['--config', config, '--out', '/dev/full'], /--out \/dev\/full: \/dev\/full is not a folder/);
  const started = performance.now();
  failsWith(['--config', config, '--out', '/proc/attend-x'], /--out \/proc\/attend-x: cannot make the folder \/proc\/attend-x/);
  assert.ok(performance.now() - started < 60_000, 'hang guard');
  // Read-only: a folder without write permission (root ignores permissions; /sys refuses new entries).
  const readOnly = join(tmp, 'read-only');
  mkdirSync(readOnly);
  chmodSync(readOnly, 0o500);
  const place = process.getuid?.() === 0 ? '/sys/attend-x' : join(readOnly, 'out');
  failsWith(['--config', config, '--out', place], /--out .*: cannot (make the folder|write in the folder)/);
  if (process.getuid?.() !== 0) failsWith(['--config', config, '--out', readOnly], /--out .*: cannot write in the folder \(EACCES\)/);
  chmodSync(readOnly, 0o700);
});

test('a killed sweep resumes: every cell once, the half-written last line dropped, nothing half-written left', async () => {
  const out = join(tmp, 'killed');
  const config = configFile({ ...okConfig, samples: 3000 });
  const results = join(out, 'results.jsonl');
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'bench', '--model', modelDir,
    '--config', config, '--out', out], { cwd: ROOT, stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((done) => child.on('exit', (_code, signal) => done(signal)));
  const lineCount = () => (existsSync(results) ? readFileSync(results, 'utf8').split('\n').length - 1 : 0);
  const deadline = performance.now() + 120_000;
  while (lineCount() < 5 && performance.now() < deadline) await new Promise((done) => setTimeout(done, 5));
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL', 'the sweep was killed before it ended');
  // The kill may or may not have torn a line; tear one for certain, as a kill during the write would.
  let text = readFileSync(results, 'utf8');
  if (text.endsWith('\n')) {
    text += text.split('\n').at(-2)!.slice(0, 50);
    writeFileSync(results, text);
  }
  const complete = text.split('\n').length - 1;
  assert.ok(complete >= 5 && complete < 3000, `${complete} lines`);
  const resumed = runCli(['bench', '--model', modelDir, '--config', config, '--out', out, '--limit', String(complete + 3)]);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`skipping line ${complete + 1}, cut short by an interrupted run`));
  const lines = readFileSync(results, 'utf8').split('\n');
  assert.equal(lines.pop(), '');
  assert.equal(lines.length, complete + 3, 'each cell once');
  const ids = new Set(lines.map((l) => JSON.parse(l).seed));
  assert.equal(ids.size, complete + 3, 'no cell twice');
  assert.deepEqual(readdirSync(out).sort(), ['report.html', 'results.jsonl'], 'no temporary files left');
  assert.match(readFileSync(join(out, 'report.html'), 'utf8'), /<\/html>\s*$/);
});
