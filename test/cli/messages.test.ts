/**
 * Messages that say what is wrong (issue 15, item 11): --press-opt window=0 (and kernel=0) name the option and
 * its bound instead of "window 0 must be shorter than the context"; a bad sampling value from
 * generation_config.json names that file and the flag that overrides it; --stop "" is refused.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { assertUserError, runCli } from '../helpers/cli.js';
import { PARITY_DIR } from '../helpers/fixtures.js';

const fixture = join(PARITY_DIR, 'llama-gqa-tied');
const tmp = mkdtempSync(join(tmpdir(), 'attend-messages-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const prompt = ['--prompt', 'In the beginning was the word and the word', '--max-tokens', '2'];

for (const press of ['snapkv', 'pyramidkv']) {
  test(`${press}: window=0 and kernel=0 say which option is wrong and why`, () => {
    const args = ['generate', '--model', fixture, ...prompt, '--press', press, '--ratio', '0.5'];
    assertUserError(
      runCli([...args, '--press-opt', 'window=0']),
      new RegExp(`^attend: ${press}: option window must be a whole number ≥ 1 \\(the last queries that score the entries\\), got 0$`),
    );
    // kernel=0 used to pool by dividing by zero and compress with NaN scores, exit 0.
    assertUserError(runCli([...args, '--press-opt', 'kernel=0']), new RegExp(`^attend: ${press}: option kernel must be a whole number ≥ 1`));
    // A window longer than the prompt keeps its message.
    assertUserError(runCli([...args, '--press-opt', 'window=100']), /window 100 must be shorter than the context \(\d+ tokens seen\)/);
  });
}

test('a bad sampling value from generation_config.json names the file and the flag that overrides it', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ do_sample: true, temperature: -1 }, /generation_config\.json: temperature must be a finite number ≥ 0, got -1 \(--temperature overrides it\)$/],
    [{ do_sample: true, top_p: 0 }, /generation_config\.json: top-p must be in \(0, 1\], got 0 \(--top-p overrides it\)$/],
    [{ do_sample: true, min_p: 2 }, /generation_config\.json: min-p must be in \[0, 1\], got 2 \(--min-p overrides it\)$/],
    [{ repetition_penalty: 0 }, /generation_config\.json: repetition penalty must be > 0, got 0 \(--repetition-penalty overrides it\)$/],
  ];
  for (const [i, [fields, pattern]] of cases.entries()) {
    const dir = join(tmp, `gen-${i}`);
    cpSync(fixture, dir, { recursive: true });
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: 1, ...fields }));
    assertUserError(runCli(['generate', '--model', dir, ...prompt]), new RegExp(`^attend: ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/${pattern.source}`));
  }
  // The flag does override it.
  const dir = join(tmp, 'gen-0');
  assert.equal(runCli(['generate', '--model', dir, ...prompt, '--temperature', '0.5', '--seed', '1']).status, 0);
  // A flag's own bad value is named as before, without the file.
  assertUserError(runCli(['generate', '--model', fixture, ...prompt, '--top-p', '0']), /^attend: top-p must be in \(0, 1\], got 0$/);
});

test('--stop "" is refused', () => {
  assertUserError(runCli(['generate', '--model', fixture, ...prompt, '--stop', '']), /^attend: --stop: a stop string cannot be empty$/);
});

test('--temperature 1e-38 behaves as greedy', () => {
  const greedy = runCli(['generate', '--model', fixture, ...prompt, '--max-tokens', '8']);
  const tiny = runCli(['generate', '--model', fixture, ...prompt, '--max-tokens', '8', '--temperature', '1e-38', '--seed', '3']);
  assert.equal(greedy.status, 0, greedy.stderr);
  assert.equal(tiny.status, 0, tiny.stderr);
  assert.equal(tiny.stdout, greedy.stdout);
});
