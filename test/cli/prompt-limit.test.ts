/**
 * The prompt is bounded before it is tokenised (issue 15, item 9): at most context × PROMPT_BYTES_PER_TOKEN bytes
 * are read from --prompt-file (a file, standard input or a device), so a 20 MB file or /dev/zero ends in a one-line
 * error naming the limit instead of seconds of tokenising and gigabytes of memory.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MAX_INPUT_BYTES, PROMPT_BYTES_PER_TOKEN, promptByteLimit, readInput } from '../../src/cli/options.js';
import { assertUserError, runCli } from '../helpers/cli.js';
import { PARITY_DIR } from '../helpers/fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const fixture = join(PARITY_DIR, 'llama-gqa-tied'); // context 64: the limit is 64 × 64 = 4096 bytes
const tmp = mkdtempSync(join(tmpdir(), 'attend-prompt-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const limitError = (bytes: number, context: number) =>
  new RegExp(
    `^attend: --prompt-file: .* is longer than ${bytes.toLocaleString('en')} bytes \\(the model's context of ${context} tokens × ${PROMPT_BYTES_PER_TOKEN} bytes per token, PROMPT_BYTES_PER_TOKEN in src/cli/options\\.ts: it cannot fit\\)$`,
  );

test('the limit is the context times the named bytes-per-token constant', () => {
  assert.equal(PROMPT_BYTES_PER_TOKEN, 64);
  assert.equal(promptByteLimit(8192), 8192 * 64);
});

test('a 20 MB prompt file for the bundled model is refused from its size, before tokenising', () => {
  const big = join(tmp, 'big.txt');
  writeFileSync(big, '');
  truncateSync(big, 20_000_000);
  assertUserError(runCli(['generate', '--prompt-file', big]), limitError(8192 * 64, 8192));
});

test('one byte over the limit is refused; at the limit the text is tokenised (and the token check speaks)', () => {
  const over = join(tmp, 'over.txt');
  writeFileSync(over, 'a'.repeat(4097));
  assertUserError(runCli(['generate', '--model', fixture, '--prompt-file', over]), limitError(4096, 64));
  const at = join(tmp, 'at.txt');
  writeFileSync(at, 'a '.repeat(2048));
  assertUserError(runCli(['generate', '--model', fixture, '--prompt-file', at]), /^attend: the prompt has \d+ tokens, more than the model's context of 64$/);
});

test('/dev/zero and an endless standard input end with the limit error', { skip: process.platform !== 'linux' }, () => {
  assertUserError(runCli(['generate', '--model', fixture, '--prompt-file', '/dev/zero']), limitError(4096, 64));
  const r = spawnSync('sh', ['-c', `cat /dev/zero | "${process.execPath}" --import tsx src/cli/main.ts generate --model "${fixture}" --prompt-file -`], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000, // hang guard only
  });
  assertUserError(r, /^attend: --prompt-file: standard input is longer than 4,096 bytes \(the model's context of 64 tokens/);
});

test('a short prompt on standard input still works, and --prompt is bounded the same way', () => {
  const r = runCli(['generate', '--model', fixture, '--prompt-file', '-', '--max-tokens', '3'], { input: 'In the beginning' });
  assert.equal(r.status, 0, r.stderr);
  assertUserError(runCli(['generate', '--model', fixture, '--prompt', 'a'.repeat(4097)]), /^attend: --prompt is longer than 4,096 bytes \(the model's context of 64 tokens/);
});

test('readInput: a directory is one line, other inputs are bounded by MAX_INPUT_BYTES', () => {
  assert.throws(() => readInput(tmp, '--file'), /^AttendError: --file: .*: cannot read \(EISDIR\)$/);
  assert.throws(() => readInput('/dev/zero', '--file', 1000), /--file: \/dev\/zero is longer than 1,000 bytes \(the input limit, MAX_INPUT_BYTES/);
  assert.equal(MAX_INPUT_BYTES, 256 * 1024 * 1024);
  const small = join(tmp, 'small.txt');
  writeFileSync(small, 'héllo');
  assert.equal(readInput(small, '--file', 6), 'héllo');
  assert.throws(() => readInput(small, '--file', 5), /longer than 5 bytes/);
});
