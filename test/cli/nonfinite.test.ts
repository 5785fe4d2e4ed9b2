/**
 * Checkpoints that give non-finite logits (issue 15, item 3): `attend logits` and `attend generate` end with one
 * line and status 1, never a file of NaNs or infinities or an empty continuation with status 0. NaN weights may be
 * caught as the tensor is read (the weights guard); finite weights so large that the logits overflow to ±Infinity
 * pass every weight check and are caught by the logits guard, which names the row or the step.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { assertUserError, runCli } from '../helpers/cli.js';
import { PARITY_DIR } from '../helpers/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'attend-nonfinite-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * A copy of the fixture (f32) whose final norm weight is all NaN, or all 3e38: finite, but the hidden state it
 * scales overflows float32 in the lm head.
 */
function badCheckpoint(kind: 'nan' | 'huge'): string {
  const dir = join(tmp, kind);
  cpSync(join(PARITY_DIR, 'llama-gqa-tied'), dir, { recursive: true });
  const file = join(dir, 'model.safetensors');
  const bytes = readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
  const [start, end] = header['model.norm.weight'].data_offsets as [number, number];
  assert.equal(header['model.norm.weight'].dtype, 'F32');
  for (let at = 8 + headerLength + start; at < 8 + headerLength + end; at += 4) bytes.writeFloatLE(kind === 'nan' ? NaN : 3e38, at);
  writeFileSync(file, bytes);
  return dir;
}

function assertOneLine(r: { status: number | null; stderr: string }, pattern = /^attend: .*(not finite|non-finite|NaN)/i): void {
  assertUserError(r, pattern);
}

const notFinite = (where: string) => new RegExp(`^attend: ${where}.*: the logits are not finite \\((-?Infinity|NaN) at token id \\d+; \\d+ of 384 values non-finite\\)`);

test('logits overflowing to infinity: logits names the row and writes nothing; generate names the step', () => {
  const model = badCheckpoint('huge');
  const out = join(tmp, 'huge.f32');
  assertOneLine(runCli(['logits', '--model', model, '--ids', '1,2,3', '--out', out]), notFinite('logits row 0 \\(position 0\\), not written to '));
  assert.equal(existsSync(out), false);
  assertOneLine(runCli(['logits', '--model', model, '--ids', '1,2,3', '--question-ids', '4,5', '--out', out]), notFinite('logits row 0 \\(position 3\\)'));
  assert.equal(existsSync(out), false);
  for (const extra of [[], ['--temperature', '0.7', '--seed', '1']]) {
    const r = runCli(['generate', '--model', model, '--prompt', 'In the beginning', '--max-tokens', '4', ...extra]);
    assertOneLine(r, notFinite("prefill \\(the prompt's last position, \\d+\\)"));
    assert.equal(r.stdout, '');
  }
});

test('NaN weights: logits writes nothing and says so in one line', () => {
  const model = badCheckpoint('nan');
  const out = join(tmp, 'nan.f32');
  assertOneLine(runCli(['logits', '--model', model, '--ids', '1,2,3', '--out', out]));
  assert.equal(existsSync(out), false);
  assertOneLine(runCli(['logits', '--model', model, '--ids', '1,2,3', '--question-ids', '4,5', '--out', out]));
  assert.equal(existsSync(out), false);
});

test('NaN weights: generate prints nothing and fails in one line, greedy or sampling', () => {
  const model = badCheckpoint('nan');
  for (const extra of [[], ['--temperature', '0.7', '--seed', '1']]) {
    const r = runCli(['generate', '--model', model, '--prompt', 'In the beginning', '--max-tokens', '4', ...extra]);
    assertOneLine(r);
    assert.equal(r.stdout, '');
  }
});
