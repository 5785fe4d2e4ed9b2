/**
 * SIGINT and SIGTERM while `attend logits --out` writes its file: no `FILE.<pid>.partial` may be left, the
 * process still ends by that signal (so a shell sees 130 / 143), and the output is either absent or whole.
 * The signal is sent as soon as the partial file appears, i.e. while the 128 MiB write is under way.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

const ROOT = join(import.meta.dirname, '..', '..');
const tmp = mkdtempSync(join(tmpdir(), 'attend-signals-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const TOKENS = 2048;
const VOCAB = 16384; // the bundled attend-mini
const idsFile = join(tmp, 'ids.txt');
writeFileSync(idsFile, Array.from({ length: TOKENS }, (_, i) => 5 + (i % 100)).join(','));

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  sent: boolean;
  stderr: string;
}

/** Runs `attend logits` into `dir` and sends `signal` the moment its partial file exists. */
function interruptWrite(dir: string, signal: NodeJS.Signals): Promise<Outcome> {
  const out = join(dir, 'logits.f32');
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'logits', '--ids-file', idsFile, '--out', out], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  let sent = false;
  // Poll (not a timing assertion): the partial file is written for a while, a 1 ms poll sees it.
  const poll = setInterval(() => {
    if (!sent && readdirSync(dir).some((f) => f.endsWith('.partial'))) {
      sent = true;
      child.kill(signal);
    }
  }, 1);
  // Hang guard only.
  const guard = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((resolve) => {
    child.on('exit', (code, sig) => {
      clearInterval(poll);
      clearTimeout(guard);
      resolve({ code, signal: sig, sent, stderr });
    });
  });
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`${signal} while logits --out is written leaves no partial file and still ends by ${signal}`, async () => {
    const dir = mkdtempSync(join(tmp, `${signal}-`));
    const r = await interruptWrite(dir, signal);
    assert.ok(r.sent, `the partial file was never seen (exit ${r.code}): ${r.stderr}`);
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.partial')), [], 'a partial file was left behind');
    assert.equal(r.signal, signal, `expected to end by ${signal}, got code ${r.code} signal ${r.signal}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    const out = join(dir, 'logits.f32');
    if (existsSync(out)) assert.equal(statSync(out).size, TOKENS * VOCAB * 4, 'an output file, if any, is whole');
  });
}
