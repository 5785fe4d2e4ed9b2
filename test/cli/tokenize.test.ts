/** `attend tokenize` and `attend logits --ids-file`: text to ids, and those ids into logits. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { assertUserError, runCli } from '../helpers/cli.js';
import { PARITY_DIR } from '../helpers/fixtures.js';
import { parseIdText } from '../../src/cli/options.js';
import { TextTokenizer } from '../../src/io/tokenizer.js';

const model = join(PARITY_DIR, 'llama-gqa-tied');
const tokenizer = TextTokenizer.load(model);
const tmp = mkdtempSync(join(tmpdir(), 'attend-tokenize-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const text = 'The quick brown fox\njumps over the lazy dog.';

test('tokenize prints the ids generate would use, comma-separated; --json; --tokens', () => {
  const want = tokenizer.encode(text);
  const r = runCli(['tokenize', '--model', model, '--text', text]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, want.join(',') + '\n');
  assert.deepEqual(JSON.parse(runCli(['tokenize', '--model', model, '--text', text, '--json']).stdout), want);
  const plain = runCli(['tokenize', '--model', model, '--text', text, '--no-special-tokens']).stdout.trim();
  assert.deepEqual(plain.split(',').map(Number), tokenizer.encode(text, { addSpecialTokens: false }));

  const rows = JSON.parse(runCli(['tokenize', '--model', model, '--text', text, '--json', '--tokens']).stdout);
  assert.deepEqual(rows.map((t: { id: number }) => t.id), want);
  for (const row of rows) {
    assert.equal(row.token, tokenizer.idToToken(row.id));
    assert.equal(row.text, tokenizer.decode([row.id]));
  }
  const lines = runCli(['tokenize', '--model', model, '--text', text, '--tokens']).stdout.trimEnd().split('\n');
  assert.equal(lines.length, want.length);
  lines.forEach((line, i) => {
    const [id, token, piece] = line.trim().split(/ {2}/);
    assert.equal(Number(id), want[i]);
    assert.equal(JSON.parse(token), rows[i].token);
    assert.equal(JSON.parse(piece), rows[i].text);
  });
});

test('tokenize reads a file, --file -, or standard input; --chat as generate --chat', () => {
  const want = tokenizer.encode(text).join(',') + '\n';
  const file = join(tmp, 'text.txt');
  writeFileSync(file, text);
  assert.equal(runCli(['tokenize', '--model', model, '--file', file]).stdout, want);
  assert.equal(runCli(['tokenize', '--model', model, '--file', '-'], { input: text }).stdout, want);
  assert.equal(runCli(['tokenize', '--model', model], { input: text }).stdout, want);
  const chat = runCli(['tokenize', '--model', model, '--text', text, '--chat', '--system', 'Be brief.']).stdout;
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: text }];
  assert.equal(chat, tokenizer.encodeChat(messages, { addGenerationPrompt: true }).join(',') + '\n');
});

test('tokenize: bad input is one line', () => {
  assertUserError(runCli(['tokenize', '--model', model, '--text', 'x', '--file', 'y']), /^attend: give at most one of --text or --file/);
  assertUserError(runCli(['tokenize', '--model', model, '--file', join(tmp, 'none.txt')]), /^attend: --file: .*none\.txt: cannot read \(ENOENT\)/);
  assertUserError(runCli(['tokenize', '--model', model, '--text', 'x', '--system', 'y']), /^attend: --system needs --chat/);
  assertUserError(runCli(['tokenize', '--model', join(tmp, 'nope'), '--text', 'x']), /^attend: model directory not found/);
  assertUserError(runCli(['tokenize', '--model', model, '--text', 'x', '--chat', '--no-special-tokens']), /^attend: --no-special-tokens applies to plain text/);
});

test('logits --ids-file reads what tokenize writes (plain, JSON, JSON with tokens; a file or stdin) and equals --ids', () => {
  const ids = runCli(['tokenize', '--model', model, '--text', text]).stdout.trim();
  const direct = join(tmp, 'direct.f32');
  assert.equal(runCli(['logits', '--model', model, '--ids', ids, '--out', direct]).status, 0);
  const want = readFileSync(direct);
  for (const extra of [[], ['--json'], ['--json', '--tokens']]) {
    const idsFile = join(tmp, `ids${extra.join('')}.txt`);
    writeFileSync(idsFile, runCli(['tokenize', '--model', model, '--text', text, ...extra]).stdout);
    const out = join(tmp, 'from-file.f32');
    const r = runCli(['logits', '--model', model, '--ids-file', idsFile, '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(readFileSync(out).equals(want), `--ids-file with tokenize ${extra.join(' ')}`);
  }
  const out = join(tmp, 'stdin.f32');
  const piped = runCli(['logits', '--model', model, '--ids-file', '-', '--out', out], { input: ids + '\n' });
  assert.equal(piped.status, 0, piped.stderr);
  assert.ok(readFileSync(out).equals(want));
  assert.match(piped.stderr, /KV cache [\d,]+ bytes allocated, [\d,]+ bytes in live entries/);
});

test('logits --ids-file: bad input is one line', () => {
  const out = join(tmp, 'never.f32');
  const bad = join(tmp, 'bad.txt');
  writeFileSync(bad, '1,2,x');
  assertUserError(runCli(['logits', '--model', model, '--ids-file', bad, '--out', out]), /^attend: --ids-file .*bad\.txt: expected token ids \(whole numbers ≥ 0\), got "x"/);
  writeFileSync(bad, '  \n');
  assertUserError(runCli(['logits', '--model', model, '--ids-file', bad, '--out', out]), /: no token ids$/);
  assertUserError(runCli(['logits', '--model', model, '--ids', '1', '--ids-file', bad, '--out', out]), /^attend: give exactly one of --ids or --ids-file/);
  assertUserError(runCli(['logits', '--model', model, '--out', out]), /^attend: give exactly one of --ids or --ids-file/);
  assertUserError(runCli(['logits', '--model', model, '--ids-file', join(tmp, 'none'), '--out', out]), /^attend: --ids-file: .*none: cannot read \(ENOENT\)/);
});

test('the id text format: commas and/or whitespace, or a JSON array of ids or {id} objects', () => {
  assert.deepEqual(parseIdText('1,2,3\n', 'f'), [1, 2, 3]);
  assert.deepEqual(parseIdText('1, 2\n3 4', 'f'), [1, 2, 3, 4]);
  assert.deepEqual(parseIdText('[5,6]', 'f'), [5, 6]);
  assert.deepEqual(parseIdText('[{"id":7,"token":"a"},{"id":8}]', 'f'), [7, 8]);
  assert.throws(() => parseIdText('[1.5]', 'f'), /f: expected token ids \(whole numbers ≥ 0\), got 1.5/);
  assert.throws(() => parseIdText('[-1]', 'f'), /got -1/);
  assert.throws(() => parseIdText('{"ids":[1]}', 'f'), /f: expected token ids .*, got "\{/);
  assert.throws(() => parseIdText('[1,', 'f'), /f: not valid JSON/);
});
