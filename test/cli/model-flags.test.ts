/** attend generate with --attention, --ablate-heads and --selector: runs, reports, and one-line errors. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertUserError, runCli } from '../helpers/cli.js';

const prompt = 'The museum opens at nine. Tickets cost twelve euros. '.repeat(12) + 'The museum opens at';

test('generate with a selector reports what it read; full budget equals plain greedy', () => {
  const plain = runCli(['generate', '--prompt', prompt, '--max-tokens', '6']);
  assert.equal(plain.status, 0, plain.stderr);
  const all = runCli(['generate', '--prompt', prompt, '--max-tokens', '6', '--selector', 'quest', '--selector-opt', 'budget=8192', '--stats']);
  assert.equal(all.status, 0, all.stderr);
  assert.equal(all.stdout, plain.stdout, 'a budget over the whole cache reads everything');
  const sparse = runCli(['generate', '--prompt', prompt, '--max-tokens', '6', '--selector', 'quest', '--selector-opt', 'budget=16', '--stats']);
  assert.equal(sparse.status, 0, sparse.stderr);
  const m = /quest read ([\d,]+) of ([\d,]+) entries held over (\d+) sparse layer steps/.exec(sparse.stderr);
  assert.ok(m, sparse.stderr);
  const [read, held] = [Number(m![1].replace(/,/g, '')), Number(m![2].replace(/,/g, ''))];
  assert.ok(read < held, `${read} of ${held}`);
  assert.equal(Number(m![3]), 5 * 6, 'six layers of eight are sparse, for each of the five decoding forwards');
});

test('generate with --attention sigmoid and --ablate-heads runs', () => {
  const r = runCli(['generate', '--prompt', 'Hello', '--max-tokens', '3', '--attention', 'sigmoid:bias=-4', '--ablate-heads', '0.0,7.7']);
  assert.equal(r.status, 0, r.stderr);
});

test('bad model and selector flags are one-line errors', () => {
  assertUserError(runCli(['generate', '--prompt', 'x', '--selector', 'nope']), /unknown selector 'nope'/);
  assertUserError(runCli(['generate', '--prompt', 'x', '--selector-opt', 'budget=3']), /--selector-opt needs --selector/);
  assertUserError(runCli(['generate', '--prompt', 'x', '--selector', 'quest', '--selector-opt', 'budget=abc']), /expected KEY=NUMBER/);
  assertUserError(runCli(['generate', '--prompt', 'x', '--selector', 'quest', '--selector-opt', 'pages=3']), /no option 'pages'/);
  assertUserError(runCli(['generate', '--prompt', 'x', '--selector', 'quest', '--selector-opt', 'budget=0']), /budget must be a whole number ≥ 1/);
  assertUserError(runCli(['generate', '--prompt', 'x', '--ablate-heads', '8.0']), /has layers 0…7/);
  assertUserError(runCli(['generate', '--prompt', 'x', '--attention', 'sigmoid:bias=x']), /must be a finite number/);
  assertUserError(runCli(['generate', '--prompt', 'x', '--attention', 'sigmoid', '--press', 'snapkv', '--ratio', '0.5']), /scores entries by attention probabilities/);
});

test('--device: an unknown device, and CUDA where there is none, are one-line errors (the CUDA suite is test/gpu)', (t) => {
  assertUserError(runCli(['generate', '--prompt', 'x', '--device', 'tpu']), /unknown device 'tpu' \(known: cpu, cuda\)/);
  assertUserError(runCli(['info', '--device', 'tpu']), /unknown device 'tpu'/);
  const cuda = runCli(['generate', '--prompt', 'x', '--max-tokens', '1', '--device', 'cuda']);
  if (cuda.status === 0) return t.skip('this machine has a GPU: test/gpu covers it');
  assertUserError(cuda, /no CUDA (driver|device)|NVRTC not found|cuBLAS not found/);
  const plain = runCli(['generate', '--prompt', 'Hello', '--max-tokens', '2', '--device', 'cpu']);
  assert.equal(plain.status, 0, plain.stderr);
});
