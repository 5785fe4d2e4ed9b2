/** A batch of sequences of different lengths and positions gives each sequence the logits it gets alone. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import { maxAbsDiff, PARITY_DIR } from '../helpers/fixtures.js';

for (const name of ['llama-gqa-tied', 'qwen3-norm', 'gpt2', 'llama-dynamic-rope']) {
  test(`${name}: batched forward equals one sequence at a time`, () => {
    const lm = loadModel(join(PARITY_DIR, name));
    const prompts = [
      [1, 5, 9, 33, 7, 100, 42],
      [2, 8],
      [300, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20],
    ];
    // Alone: prefill, then one decode step.
    const alone = prompts.map((ids) => {
      const cache = newCache(lm.config);
      const prefill = lm.model.forward(ids, cache).f32.slice();
      const decode = lm.model.forward([ids[0]], cache).f32.slice();
      return { prefill, decode };
    });
    // Together: one batched prefill (different lengths), then one batched decode step (different positions).
    const caches = prompts.map(() => newCache(lm.config));
    const prefill = lm.model.forwardBatch(prompts.map((ids, i) => ({ ids, cache: caches[i] })));
    const decode = lm.model.forwardBatch(prompts.map((ids, i) => ({ ids: [ids[0]], cache: caches[i] })), { lastOnly: true });
    prompts.forEach((_, i) => {
      assert.ok(maxAbsDiff(prefill[i].f32, alone[i].prefill) < 1e-5, `prefill ${i}`);
      assert.ok(maxAbsDiff(decode[i].f32, alone[i].decode) < 1e-5, `decode ${i}`);
      assert.equal(caches[i].nextPosition, prompts[i].length + 1);
    });
  });
}
