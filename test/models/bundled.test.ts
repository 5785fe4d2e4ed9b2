/**
 * The bundled models (attend-mini and its draft) load, and their logits match transformers' for a fixed prompt:
 * within 1e-3 of transformers' f32 compute over the same bf16 weights (8 rows × 16384 logits of a 30M model in
 * f32 accumulate more rounding than the tiny fixtures), within the bf16 tolerance of its native bf16 compute,
 * and with the same greedy continuation (the prompt asks for a number the model must retrieve).
 * References: tools/fixtures/make_model_reference.py.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { generate } from '../../src/generate/generate.js';
import { allLogits } from '../../src/generate/logits.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import { maxAbsDiff, readF32 } from '../helpers/fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');

for (const name of ['attend-mini', 'attend-mini-draft']) {
  const refDir = join(ROOT, 'test', 'fixtures', 'bundled', name);
  const ref = JSON.parse(readFileSync(join(refDir, 'reference.json'), 'utf8'));

  test(`${name}: logits match transformers and greedy decoding retrieves the same answer`, async () => {
    const modelDir = join(ROOT, 'models', name);
    assert.ok(existsSync(join(modelDir, 'config.json')), `${modelDir} is missing`);
    const lm = loadModel(modelDir);
    assert.deepEqual(lm.tokenizer.encode(ref.prompt), ref.ids);
    const logits = allLogits(lm.model, newCache(lm.config), ref.ids, 32);
    const vocab = lm.config.vocabSize;
    const last = logits.subarray((ref.ids.length - ref.rows) * vocab);
    const f32 = readF32(join(refDir, ref.logits_f32.file));
    const native = readF32(join(refDir, ref.logits_native.file));
    assert.ok(maxAbsDiff(last, f32) < 1e-3, `vs f32: ${maxAbsDiff(last, f32)}`);
    const range = f32.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    assert.ok(maxAbsDiff(last, native) / range < 0.05, `vs native bf16: ${maxAbsDiff(last, native) / range} of the range`);
    const out = await generate(lm, ref.ids, { temperature: 0, maxNewTokens: ref.greedy.new_token_ids.length, eosTokenIds: [] });
    assert.deepEqual(out.tokens, ref.greedy.new_token_ids);
  });
}
