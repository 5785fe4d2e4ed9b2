/**
 * Output errors (issue 15, item 8): a reader that goes away (EPIPE, as `| head -c 5`) ends the CLI quietly with
 * status 141 (128 + SIGPIPE); a full disk (ENOSPC, `> /dev/full`) gives one line and status 1. Never a stack trace.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PARITY_DIR } from '../helpers/fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts')];
const model = join(PARITY_DIR, 'llama-gqa-tied');
const generateArgs = ['generate', '--model', model, '--prompt', 'In the beginning', '--max-tokens', '40', '--temperature', '1', '--seed', '1'];

/** Runs the CLI with its standard output on a pipe whose reading end is closed at once (head that read nothing yet). */
function withClosedPipe(args: string[]): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  const child = spawn(process.execPath, [...CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const guard = setTimeout(() => child.kill('SIGKILL'), 120_000); // hang guard only
  return new Promise((resolve) => child.on('exit', (code, signal) => (clearTimeout(guard), resolve({ code, signal, stderr }))));
}

function toDevFull(args: string[]) {
  const fd = openSync('/dev/full', 'w');
  try {
    return spawnSync(process.execPath, [...CLI, ...args], { cwd: ROOT, stdio: ['ignore', fd, 'pipe'], encoding: 'utf8', timeout: 120_000 });
  } finally {
    closeSync(fd);
  }
}

for (const [name, args] of [
  ['generate', generateArgs],
  ['tokenize', ['tokenize', '--model', model, '--text', 'In the beginning']],
  ['presses', ['presses']],
] as const) {
  test(`${name} into a closed pipe ends quietly with status 141`, async () => {
    const r = await withClosedPipe([...args]);
    assert.equal(r.stderr, '', 'nothing on stderr for a broken pipe');
    assert.equal(r.code, 141, `status ${r.code} signal ${r.signal}`);
  });

  test(`${name} into /dev/full gives one line and status 1`, { skip: process.platform !== 'linux' }, () => {
    const r = toDevFull([...args]);
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stderr, 'attend: standard output: cannot write (ENOSPC)\n');
  });
}

test('--help into /dev/full is an error too, not status 0', { skip: process.platform !== 'linux' }, () => {
  const r = toDevFull(['--help']);
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr, 'attend: standard output: cannot write (ENOSPC)\n');
});
