import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { PRESSES } from '../../src/presses/registry.js';
import { assertUserError, runCli } from '../helpers/cli.js';
import { maxAbsDiff, PARITY_DIR, readF32 } from '../helpers/fixtures.js';

const model = join(PARITY_DIR, 'llama-gqa-tied');
const ref = JSON.parse(readFileSync(join(model, 'reference.json'), 'utf8'));
const tmp = mkdtempSync(join(tmpdir(), 'attend-press-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const context = ref.ids.slice(0, 30).join(',');
const question = ref.ids.slice(30).join(',');

function userError(args: string[], pattern: RegExp): void {
  assertUserError(runCli(args), pattern);
}

test('logits --question-ids without a press equals one uncompressed pass over context + question', () => {
  const out = join(tmp, 'q.f32');
  const r = runCli(['logits', '--model', model, '--ids', context, '--question-ids', question, '--out', out, '--prefill-chunk', '7']);
  assert.equal(r.status, 0, r.stderr);
  const want = readF32(join(model, ref.logits.file)).subarray(30 * ref.logits.shape[1]);
  assert.ok(maxAbsDiff(readF32(out), want) <= 1e-4);
});

test('logits with a press writes one row per question token from the compressed cache', () => {
  const out = join(tmp, 'p.f32');
  const r = runCli(['logits', '--model', model, '--ids', context, '--question-ids', question, '--press', 'snapkv', '--ratio', '0.5', '--press-opt', 'window=4', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /10 × 384 float32 logits/);
  const got = readF32(out);
  assert.equal(got.length, 10 * 384);
  assert.ok(maxAbsDiff(got, readF32(join(model, ref.logits.file)).subarray(30 * 384)) > 1e-3, 'compression changed nothing');
});

test('presses lists every method with its options', () => {
  const r = runCli(['presses', '--json']);
  const listed = JSON.parse(r.stdout) as { name: string; source: string; options: Record<string, unknown> }[];
  assert.deepEqual(listed.map((p) => p.name), PRESSES.map((p) => p.name));
  for (const name of ['streaming-llm', 'snapkv', 'h2o', 'adakv', 'expected-attention', 'chunkkv', 'dms', 'kvzip']) assert.ok(listed.some((p) => p.name === name), name);
  for (const p of listed) assert.ok(p.source.length > 0 && typeof p.options === 'object', p.name);
});

test('bad press input: ratio, budget, unknown press or option, window longer than the context', () => {
  const base = ['logits', '--model', model, '--ids', context, '--question-ids', question, '--out', join(tmp, 'x.f32')];
  userError([...base, '--press', 'snapkv', '--ratio', '1'], /--ratio must be in \(0, 1\)/);
  userError([...base, '--press', 'snapkv', '--ratio', '0'], /--ratio must be in \(0, 1\)/);
  userError([...base, '--press', 'snapkv', '--budget', '0'], /--budget must be a whole number of tokens > 0/);
  userError([...base, '--press', 'snapkv', '--budget', '-3'], /--budget: "-3" is not a whole number/);
  userError([...base, '--press', 'nope', '--ratio', '0.5'], /unknown press "nope" \(known: streaming-llm, snapkv/);
  userError([...base, '--press', 'snapkv', '--ratio', '0.5', '--press-opt', 'windw=3'], /press snapkv has no option "windw" \(options: window, kernel\)/);
  userError([...base, '--press', 'snapkv', '--ratio', '0.5'], /snapkv: window 64 must be shorter than the context \(30 tokens seen\)/);
  userError([...base, '--press', 'snapkv'], /needs exactly one of --ratio or --budget/);
  userError([...base, '--ratio', '0.5'], /need --press NAME/);
});
