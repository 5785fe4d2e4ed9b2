/** generation_config.json: typed camelCase fields, only those present; bad files fail naming the file. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readGenerationConfig } from '../../src/io/generation-config.js';
import { AttendError } from '../../src/errors.js';

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-gen-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function withConfig(text: string): string {
  const d = fs.mkdtempSync(path.join(dir, 'c-'));
  fs.writeFileSync(path.join(d, 'generation_config.json'), text);
  return d;
}

test('missing file gives no defaults', () => {
  assert.deepEqual(readGenerationConfig(dir), {});
});

test('all fields, eos as a list, nulls and unknown keys ignored', () => {
  const d = withConfig(JSON.stringify({
    _from_model_config: true, transformers_version: '4.45.0',
    bos_token_id: 1, eos_token_id: [2, 32000], pad_token_id: null,
    do_sample: true, temperature: 0.6, top_k: 20, top_p: 0.9, min_p: 0.05, repetition_penalty: 1.1,
    max_new_tokens: 256, max_length: 4096,
  }));
  assert.deepEqual(readGenerationConfig(d), {
    bosTokenId: 1, eosTokenIds: [2, 32000], doSample: true, temperature: 0.6, topK: 20, topP: 0.9,
    minP: 0.05, repetitionPenalty: 1.1, maxNewTokens: 256, maxLength: 4096,
  });
});

test('a single eos id becomes a list; only present fields appear', () => {
  assert.deepEqual(readGenerationConfig(withConfig('{"eos_token_id": 7, "temperature": 1}')), { eosTokenIds: [7], temperature: 1 });
});

test('invalid JSON, a non-object and wrong types fail naming the file', () => {
  const cases: [string, RegExp][] = [
    ['{"temperature": ', /generation_config\.json: not valid JSON/],
    ['[1]', /generation_config\.json: not a JSON object/],
    ['{"top_k": 1.5}', /generation_config\.json: top_k is 1\.5, expected a non-negative integer/],
    ['{"do_sample": "yes"}', /do_sample is "yes", expected a boolean/],
    ['{"eos_token_id": [1, "x"]}', /eos_token_id is \[1,"x"\], expected a token id or a list/],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(() => readGenerationConfig(withConfig(text)), (e: unknown) => e instanceof AttendError && pattern.test(e.message));
  }
});

test('transformers-written generation_config.json files (fixtures, when present)', (t) => {
  const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'parity');
  if (!fs.existsSync(path.join(fixtures, 'llama-mha', 'generation_config.json'))) return t.skip('no fixtures under test/fixtures/parity');
  assert.deepEqual(readGenerationConfig(path.join(fixtures, 'llama-mha')), {
    bosTokenId: 0, eosTokenIds: [1, 4], padTokenId: 2, doSample: true, repetitionPenalty: 1.1, temperature: 0.7, topK: 40, topP: 0.9,
  });
  if (fs.existsSync(path.join(fixtures, 'gpt2'))) assert.deepEqual(readGenerationConfig(path.join(fixtures, 'gpt2')), { bosTokenId: 0, eosTokenIds: [1], padTokenId: 2 });
});
