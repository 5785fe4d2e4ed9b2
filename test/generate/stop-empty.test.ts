/** An empty stop string (issue 15, item 11): refused by the library too, not a stop after the first token. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { AttendError } from '../../src/errors.js';
import { generate } from '../../src/generate/generate.js';
import { StopStringFilter } from '../../src/generate/stop.js';
import { loadModel } from '../../src/models/load.js';
import { PARITY_DIR } from '../helpers/fixtures.js';

test('StopStringFilter refuses an empty stop string', () => {
  assert.throws(() => new StopStringFilter(['\n', '']), (e: Error) => e instanceof AttendError && /a stop string cannot be empty/.test(e.message));
});

test('generate with stop [""] is an error, not one token of output', async () => {
  const lm = loadModel(join(PARITY_DIR, 'llama-gqa-tied'));
  await assert.rejects(generate(lm, [1, 2, 3], { maxNewTokens: 8, stop: [''], eosTokenIds: [] }), /a stop string cannot be empty/);
});
