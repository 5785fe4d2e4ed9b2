/** A tiny sweep end to end on a fixture model: valid JSON lines, resumption, a report; and the bench CLI's errors. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { writeReport } from '../../src/eval/report/index.js';
import { expandSweep, SWEEP_DEFAULTS, type SweepConfig, validateSweep } from '../../src/eval/sweep-config.js';
import { readResults, runSweep } from '../../src/eval/sweep.js';
import { formatSummary, summarise } from '../../src/eval/summary.js';
import { loadModel } from '../../src/models/load.js';
import { runCli } from '../helpers/cli.js';
import { PARITY_DIR } from '../helpers/fixtures.js';

const modelDir = join(PARITY_DIR, 'llama3-mqa');
const tmp = mkdtempSync(join(tmpdir(), 'attend-sweep-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const config: SweepConfig = {
  ...SWEEP_DEFAULTS,
  tasks: ['passkey', 'vt'],
  contextLengths: [200],
  depths: [0, 1],
  samples: 1,
  methods: [{ press: 'full' }, { press: 'snapkv', ratios: [0.5], options: { window: 8 } }, { press: 'streaming-llm', budgets: [32] }],
  queryAware: [false, true],
  prefillChunk: 64,
};

test('a tiny sweep writes one valid JSON line per cell, resumes, and reports', async () => {
  const lm = loadModel(modelDir);
  validateSweep(config, 256, 'test');
  const cells = expandSweep(config, 'llama3-mqa');
  // passkey: 2 depths × (full + 2 methods × 2 query modes) = 10; vt has no depth: 5.
  assert.equal(cells.length, 15);
  const path = join(tmp, 'results.jsonl');
  const first = await runSweep(lm, cells.slice(0, 6), path);
  const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 6);
  for (const r of lines) {
    assert.ok(r.metrics.accuracy >= 0 && r.metrics.accuracy <= 1);
    assert.ok(r.metrics.kvBytes > 0 && r.metrics.peakKvBytes >= r.metrics.kvBytes - 4096 * 16);
    assert.ok(r.metrics.prefillTokensPerS > 0 && r.metrics.promptTokens <= 200);
    assert.match(r.commit, /^[0-9a-f]+(-dirty)?$|^unknown$/);
  }
  const compressed = lines.find((r) => r.method === 'snapkv' && !r.queryAware);
  const full = lines.find((r) => r.method === 'full');
  assert.ok(compressed.metrics.kvBytes < full.metrics.kvBytes, 'compression held as many bytes as full KV');
  // A torn last line is ignored and its cell runs again; finished cells are not.
  writeFileSync(path, readFileSync(path, 'utf8') + '{"model": "llama3-mq');
  const all = await runSweep(lm, cells, path);
  assert.equal(all.length, 15);
  assert.deepEqual(all.slice(0, 6), first);
  assert.equal(readResults(path).length, 15);
  assert.match(formatSummary(summarise(all)), /snapkv\s+50% kept, query-aware/);
  const report = join(tmp, 'report.html');
  await writeReport(report, all, { title: 'test' });
  assert.match(readFileSync(report, 'utf8'), /<svg/);
});

test('bench CLI: bad preset, unknown task, context longer than the model, unreadable config', () => {
  const fail = (args: string[], pattern: RegExp) => {
    const r = runCli(['bench', '--model', modelDir, '--out', join(tmp, 'cli'), ...args]);
    assert.notEqual(r.status, 0);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, pattern);
  };
  fail(['--preset', 'huge'], /unknown preset "huge" \(known: quick, ruler, niah\)/);
  fail(['--config', join(tmp, 'missing.json')], /missing\.json: cannot read the sweep config \(ENOENT\)/);
  const bad = join(tmp, 'bad.json');
  writeFileSync(bad, JSON.stringify({ tasks: ['sudoku'], contextLengths: [100] }));
  fail(['--config', bad], /unknown task "sudoku"/);
  writeFileSync(bad, JSON.stringify({ tasks: ['passkey'], contextLengths: [4096] }));
  fail(['--config', bad], /context length 4096 is longer than the model's context of 256/);
  writeFileSync(bad, '{ not json');
  fail(['--config', bad], /bad\.json: cannot read the sweep config/);
  assert.equal(existsSync(join(tmp, 'cli', 'results.jsonl')), false);
});

test('bench CLI: --shared-prefill and --no-shared-prefill override the config', () => {
  const shared = join(tmp, 'shared.json');
  writeFileSync(shared, JSON.stringify({ tasks: ['passkey'], contextLengths: [100], sharedPrefill: true }));
  const header = (...flags: string[]) =>
    runCli(['bench', '--model', modelDir, '--config', shared, '--out', join(tmp, 'cli'), '--limit', '0', ...flags]).stdout;
  assert.match(header(), /\(custom, shared prefill\)/);
  assert.doesNotMatch(header('--no-shared-prefill'), /shared prefill/);
  writeFileSync(shared, JSON.stringify({ tasks: ['passkey'], contextLengths: [100] }));
  assert.doesNotMatch(header(), /shared prefill/);
  assert.match(header('--shared-prefill'), /shared prefill/);
});

test('bench CLI: --limit n runs the first n cells and the header says of how many', () => {
  const small = join(tmp, 'limit.json');
  writeFileSync(small, JSON.stringify({ tasks: ['passkey'], contextLengths: [100], depths: [0, 1], samples: 2, queryAware: [false] }));
  const r = runCli(['bench', '--model', modelDir, '--config', small, '--out', join(tmp, 'limit'), '--limit', '3']);
  assert.equal(r.status, 0, r.stderr);
  // 2 depths × 2 samples × (full + 4 presses × 2 ratios) = 36 cells.
  assert.match(r.stdout, /^3 of 36 cells \(custom\)/);
  assert.equal(readResults(join(tmp, 'limit', 'results.jsonl')).length, 3);
  const whole = runCli(['bench', '--model', modelDir, '--config', small, '--out', join(tmp, 'limit'), '--limit', '36']);
  assert.match(whole.stdout, /^36 cells \(custom\)/);
  assert.match(runCli(['bench', '--help']).stdout, /--limit <n>\s+only the first n cells of the sweep/);
});

test('bench CLI: --markdown on a fresh checkout prints the shipped results and runs nothing', () => {
  const out = join(tmp, 'fresh-heldout');
  const shipped = readResults(join(import.meta.dirname, '..', '..', 'docs', 'results', 'heldout-retrieval.jsonl'));
  const r = runCli(['bench', '--config', 'docs/sweeps/heldout-retrieval.json', '--out', out, '--markdown']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`printing the ${shipped.length} of \\d+ cells shipped in docs/results/heldout-retrieval\\.jsonl .*running nothing`));
  assert.match(r.stdout, /^Accuracy per method, pooled over/);
  assert.match(r.stdout, /\| method, budget \| passkey \| niah_single \|/);
  assert.equal(existsSync(join(out, 'results.jsonl')), false, 'no sweep was started');
  // A config is matched by its file name (docs/sweeps/niah-small.json → docs/results/niah-small.jsonl).
  const c = runCli(['bench', '--config', 'docs/sweeps/niah-small.json', '--out', join(tmp, 'fresh-niah'), '--markdown']);
  assert.equal(c.status, 0, c.stderr);
  assert.match(c.stderr, /cells shipped in docs\/results\/niah-small\.jsonl/);
  assert.match(c.stdout, /Accuracy by needle depth/);
  // Nothing shipped for a sweep: it says it runs the cells first.
  const none = runCli(['bench', '--model', modelDir, '--config', join(tmp, 'limit.json'), '--out', join(tmp, 'fresh-custom'), '--markdown', '--limit', '1']);
  assert.equal(none.status, 0, none.stderr);
  assert.match(none.stderr, /nothing is shipped for "custom": running all 1 cells first/);
  assert.match(none.stdout, /\| context \| method \| KV kept \|/);
});

test('the quick preset: 40 independent prompts, no seed or needle shared, every method on each', async () => {
  const { PRESETS } = await import('../../src/eval/sweep-config.js');
  const { taskByName } = await import('../../src/eval/tasks/index.js');
  const lm = loadModel(join(import.meta.dirname, '..', '..', 'models', 'attend-mini'));
  const cells = expandSweep(PRESETS.quick!, 'attend-mini');
  const instances = new Map(cells.map((c) => [JSON.stringify([c.task, c.contextLength, c.depth, c.seed]), c]));
  assert.equal(instances.size, 40);
  assert.equal(new Set([...instances.values()].map((c) => c.seed)).size, 40, 'a seed of its own per prompt');
  for (const method of ['full', 'streaming-llm', 'snapkv', 'pyramidkv', 'h2o']) assert.equal(cells.filter((c) => c.method === method).length, 40);
  assert.deepEqual([...new Set(cells.map((c) => c.depth))].sort(), [0, 0.25, 0.5, 0.75, 1]);
  const needles = [...instances.values()].map((c) => taskByName(c.task).generate({ seed: c.seed, contextLength: c.contextLength, depth: c.depth ?? undefined, tokenizer: lm.tokenizer }));
  assert.equal(new Set(needles.map((i) => ('answers' in i ? i.answers.join() : ''))).size, 40, 'a needle value of its own per prompt');
});
