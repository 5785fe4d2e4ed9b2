/** `attend generate`'s papercut fixes: --stop escapes, --system needs --chat, --prompt-file -, labelled KV bytes. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertUserError, runCli } from '../helpers/cli.js';
import { PARITY_DIR } from '../helpers/fixtures.js';
import { readModelConfig } from '../../src/models/families.js';

const fixture = join(PARITY_DIR, 'llama-gqa-tied');

test('--stop "\\n\\n" as a shell passes it (backslash, n) stops at a blank line', () => {
  // The bundled model continues a list of lines with more lines: greedy output with newlines in it.
  const args = ['generate', '--prompt', 'Monday\nTuesday\nWednesday\nThursday\n', '--max-tokens', '16'];
  const full = runCli(args);
  assert.equal(full.status, 0, full.stderr);
  const text = full.stdout.slice(0, -1); // generate ends its output with one newline
  assert.ok(text.includes('\n'), `the continuation has no newline to stop at: ${JSON.stringify(text)}`);
  const [typed, stop] = text.includes('\n\n') ? ['\\n\\n', '\n\n'] : ['\\n', '\n'];
  const cut = runCli([...args, '--stop', typed, '--stats']);
  assert.equal(cut.status, 0, cut.stderr);
  assert.equal(cut.stdout, text.slice(0, text.indexOf(stop)) + '\n');
  assert.match(cut.stderr, /finish: stop/);
  // An escaped backslash is a literal backslash: "\\n" is the two characters \ and n, which never appear here.
  const literal = runCli([...args, '--stop', '\\\\n']);
  assert.equal(literal.stdout, full.stdout);
  assertUserError(runCli([...args, '--stop', '\\x']), /^attend: --stop: "\\x": unknown escape \\x/);
  assertUserError(runCli([...args, '--stop', '']), /^attend: --stop: a stop string cannot be empty/);
});

test('the help text says how --stop is unescaped', () => {
  const r = runCli(['generate', '--help']);
  assert.match(r.stdout.replace(/\s+/g, ' '), /--stop <text>.*\\n, \\t, \\r and \\\\ are a newline, tab, carriage return and backslash/);
});

test('--system without --chat is an error, before the model is loaded', () => {
  assertUserError(runCli(['generate', '--model', fixture, '--prompt', 'x', '--system', 'Be brief.']), /^attend: --system needs --chat/);
  assertUserError(runCli(['generate', '--model', join(fixture, 'nope'), '--prompt', 'x', '--system', '']), /^attend: --system needs --chat/);
});

test('--prompt-file - reads the prompt from standard input', () => {
  const args = ['generate', '--model', fixture, '--max-tokens', '6'];
  const prompt = 'In the beginning\nthere was';
  const direct = runCli([...args, '--prompt', prompt]);
  const piped = runCli([...args, '--prompt-file', '-'], { input: prompt });
  assert.equal(piped.status, 0, piped.stderr);
  assert.equal(piped.stdout, direct.stdout);
  const other = runCli([...args, '--prompt-file', '-'], { input: 'Something else entirely' });
  assert.notEqual(other.stdout, direct.stdout, 'standard input is not read');
  assertUserError(runCli([...args, '--prompt-file', join(fixture, 'missing.txt')]), /^attend: --prompt-file: .*missing\.txt: cannot read \(ENOENT\)/);
});

for (const kvDtype of ['f32', 'f16'] as const) {
  test(`--stats labels the KV bytes: allocated, and live entries exactly (${kvDtype})`, () => {
    const r = runCli(['generate', '--model', fixture, '--prompt', 'In the beginning', '--max-tokens', '9', '--stats', '--kv-dtype', kvDtype]);
    assert.equal(r.status, 0, r.stderr);
    const m = r.stderr.match(/prompt (\d+) tokens.* (\d+) new tokens.*KV cache ([\d,]+) bytes allocated, ([\d,]+) bytes in live entries/);
    assert.ok(m, r.stderr);
    const [prompt, generated, allocated, live] = m.slice(1).map((s) => Number(s.replaceAll(',', '')));
    const c = readModelConfig(fixture);
    // Every token but the last sampled one went through the model into the cache.
    const entries = prompt + generated - 1;
    const perEntry = 2 * c.headDim * (kvDtype === 'f32' ? 4 : 2) + 4;
    assert.equal(live, c.numLayers * c.numKvHeads * entries * perEntry);
    assert.ok(allocated >= live);
  });
}
