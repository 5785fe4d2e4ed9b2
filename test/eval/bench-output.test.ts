/**
 * What `attend bench` writes (issue 15, item 6): a result line that cannot be written (a full disk) is a one-line
 * error and leaves no part of itself; the report's temporary file is never left behind, neither by a signal
 * during the write (held back until the write is done) nor by a killed run (removed by the next one).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AttendError } from '../../src/errors.js';
import { appendResult, removeStalePartials } from '../../src/eval/results-file.js';
import type { CellResult } from '../../src/eval/types.js';
import { runCli } from '../helpers/cli.js';
import { PARITY_DIR } from '../helpers/fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const tmp = mkdtempSync(join(tmpdir(), 'attend-bench-output-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const result: CellResult = {
  model: 'm', task: 'passkey', contextLength: 200, depth: 0, seed: 1, method: 'full', options: {}, budget: null, during: null,
  queryAware: false, prefillChunk: 512, commit: 'abc', date: '2026-01-01',
  metrics: { accuracy: 1, kvBytes: 1, peakKvBytes: 1, peakRssBytes: 1, promptTokens: 1, ttftMs: 1, prefillTokensPerS: 1, decodeTokensPerS: 1 },
};

test('a result line on a full disk: a one-line error naming ENOSPC', () => {
  assert.throws(() => appendResult('/dev/full', result),
    (e) => e instanceof AttendError && e.message === '/dev/full: cannot write a result (ENOSPC)');
  const path = join(tmp, 'ok.jsonl');
  appendResult(path, result);
  appendResult(path, result);
  assert.equal(readFileSync(path, 'utf8'), `${JSON.stringify(result)}\n`.repeat(2));
});

test('temporaries of killed runs are removed (those of live processes kept), and the CLI says so', () => {
  const dir = join(tmp, 'stale');
  mkdirSync(dir);
  const dead = 4_194_305; // above Linux's largest pid (2^22)
  for (const name of [`report.html.${dead}.partial`, `report.html.${process.pid}.partial`, 'report.html.partial', 'notes.txt']) {
    writeFileSync(join(dir, name), 'x');
  }
  assert.deepEqual(removeStalePartials(dir), [`report.html.${dead}.partial`]);
  assert.deepEqual(readdirSync(dir).sort(), ['notes.txt', `report.html.${process.pid}.partial`, 'report.html.partial'].sort());
  rmSync(join(dir, `report.html.${process.pid}.partial`));
  writeFileSync(join(dir, `report.html.${dead}.partial`), '<html');
  const config = join(tmp, 'c.json');
  writeFileSync(config, JSON.stringify({ tasks: ['passkey'], contextLengths: [200], depths: [0], methods: [{ press: 'full' }] }));
  const r = runCli(['bench', '--model', join(PARITY_DIR, 'llama3-mqa'), '--config', config, '--out', dir]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`removed .*report\\.html\\.${dead}\\.partial, left by a run that was killed`));
  assert.deepEqual(readdirSync(dir).sort(), ['notes.txt', 'report.html', 'report.html.partial', 'results.jsonl']);
});

test('SIGTERM and SIGINT during the report write wait for it: the file is whole, no temporary, the process ends by the signal', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const path = join(tmp, `report-${signal}.html`);
    // The work signals its own process first, then writes as writeReport does (a temporary renamed over the file).
    const script = `
      import { deferringSignals } from ${JSON.stringify(join(ROOT, 'src', 'cli', 'bench.ts'))};
      import { renameSync, writeFileSync } from 'node:fs';
      await deferringSignals(async () => {
        process.kill(process.pid, '${signal}');
        await new Promise((done) => setTimeout(done, 50));
        writeFileSync(${JSON.stringify(`${path}.partial`)}, 'x'.repeat(1 << 20) + '</html>');
        renameSync(${JSON.stringify(`${path}.partial`)}, ${JSON.stringify(path)});
      });
      console.log('after the signal');
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.signal, signal, `${signal}: ended with status ${r.status}, ${r.stderr}`);
    assert.equal(r.stdout, '', 'nothing ran after the signal');
    assert.ok(existsSync(path), 'the report was written');
    assert.match(readFileSync(path, 'utf8'), /<\/html>$/);
    assert.equal(existsSync(`${path}.partial`), false);
  }
});
