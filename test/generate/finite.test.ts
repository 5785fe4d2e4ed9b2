/** The finite-value guard on logits and overflow-free temperature (issue 15, item 3). */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { AttendError } from '../../src/errors.js';
import { checkFiniteLogits, firstNonFinite } from '../../src/generate/finite.js';
import { generate } from '../../src/generate/generate.js';
import { Sampler } from '../../src/generate/sampler.js';
import { loadModel } from '../../src/models/load.js';
import { PARITY_DIR } from '../helpers/fixtures.js';

const logits = Float32Array.from([1, 3, 2, -1, 0.5]);

test('firstNonFinite finds NaN and both infinities, and nothing in finite rows', () => {
  assert.equal(firstNonFinite(logits), -1);
  assert.equal(firstNonFinite(Float32Array.from([0, NaN])), 1);
  assert.equal(firstNonFinite(Float32Array.from([Infinity, 0])), 0);
  assert.equal(firstNonFinite(Float32Array.from([0, 0, -Infinity])), 2);
  assert.equal(firstNonFinite(Float32Array.from([3.4e38, -3.4e38, 1e-45])), -1);
});

test('checkFiniteLogits names the row, the token id and how many values are bad', () => {
  const rows = Float32Array.from([0, 1, 2, 3, NaN, 5, Infinity, 7]);
  assert.throws(
    () => checkFiniteLogits(rows, (r) => `row ${r}`, 4, 10),
    (e: Error) => e instanceof AttendError && /^row 11: the logits are not finite \(NaN at token id 0; 2 of 4 values non-finite\)/.test(e.message),
  );
});

test('the sampler refuses NaN or infinite logits, greedy or sampling, instead of returning a token', () => {
  for (const bad of [NaN, Infinity, -Infinity]) {
    const row = Float32Array.from([1, bad, 2]);
    for (const o of [{ temperature: 0 }, { temperature: 0.7, seed: 1 }, { temperature: 1, topP: 0.9, seed: 1 }]) {
      assert.throws(() => new Sampler(o).sample(row, []), (e: Error) => e instanceof AttendError && /not finite/.test(e.message), `${bad} ${JSON.stringify(o)}`);
    }
  }
  const allNaN = new Float32Array(8).fill(NaN);
  assert.throws(() => new Sampler({ temperature: 0 }).sample(allNaN, []), AttendError);
});

test('tiny temperatures do not overflow: 1e-38 and the smallest double act as greedy', () => {
  // Before: scores / 1e-38 in float32 are ±Infinity, softmax gives NaN and the last candidate was returned.
  for (const temperature of [1e-38, 1e-45, 5e-324, 1e-300]) {
    for (const o of [{}, { topK: 3 }, { topP: 0.5 }, { minP: 0.1 }]) {
      const s = new Sampler({ temperature, seed: 9, ...o });
      for (let i = 0; i < 20; i++) assert.equal(s.sample(logits, []), 1, `T=${temperature} ${JSON.stringify(o)}`);
    }
  }
  // Large logits with a small temperature: exact greedy again.
  const big = Float32Array.from([3e38, -3e38, 2.9e38]);
  assert.equal(new Sampler({ temperature: 1e-30, seed: 2 }).sample(big, []), 0);
  // An infinite temperature is refused (it would make every score NaN or 0/0).
  assert.throws(() => new Sampler({ temperature: Infinity }), /temperature must be a finite number ≥ 0/);
});

test('generate stops with an error naming the step when the model gives NaN logits', async () => {
  const lm = loadModel(join(PARITY_DIR, 'llama-gqa-tied'));
  const forward = lm.model.forward.bind(lm.model);
  let calls = 0;
  // Prefill is one call; the third decode forward returns NaN logits (as NaN weights or a bad eps would).
  lm.model.forward = ((...args: Parameters<typeof forward>) => {
    const out = forward(...args);
    if (++calls === 4) out.f32.fill(NaN);
    return out;
  }) as typeof forward;
  const prompt = [1, 2, 3, 4, 5];
  await assert.rejects(
    generate(lm, prompt, { maxNewTokens: 10, temperature: 0, eosTokenIds: [] }),
    (e: Error) => e instanceof AttendError && /^decode step 3 \(position 7\): the logits are not finite \(NaN/.test(e.message),
  );
  calls = 100; // no more NaN
  lm.model.forward = ((...args: Parameters<typeof forward>) => {
    const out = forward(...args);
    out.f32.fill(NaN);
    return out;
  }) as typeof forward;
  await assert.rejects(
    generate(lm, prompt, { maxNewTokens: 10, temperature: 0.8, seed: 1 }),
    (e: Error) => e instanceof AttendError && /^prefill \(the prompt's last position, 4\): the logits are not finite/.test(e.message),
  );
});
