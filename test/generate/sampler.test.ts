import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Sampler, argmax } from '../../src/generate/sampler.js';
import { Random } from '../../src/generate/random.js';
import { AttendError } from '../../src/errors.js';

const logits = Float32Array.from([1, 3, 2, -1, 0.5]);

test('greedy picks the argmax', () => {
  assert.equal(new Sampler({ temperature: 0 }).sample(logits, []), 1);
  assert.equal(argmax([0, 5, 5, 1]), 1);
});

test('repetition penalty divides positive and multiplies negative scores of seen tokens', () => {
  // 3 / 2 = 1.5 < 2, so token 2 wins once token 1 has been seen.
  assert.equal(new Sampler({ temperature: 0, repetitionPenalty: 2 }).sample(logits, [1]), 2);
  // A negative score gets more negative: -1 · 10 = -10 keeps token 3 last.
  const s = new Sampler({ temperature: 0, repetitionPenalty: 10 });
  assert.equal(s.sample(Float32Array.from([-1, -2]), [0]), 1);
});

test('top-k 1, tiny top-p and min-p 1 all reduce to the argmax', () => {
  for (const o of [{ topK: 1 }, { topP: 0.01 }, { minP: 1 }]) {
    const s = new Sampler({ temperature: 1, seed: 7, ...o });
    for (let i = 0; i < 20; i++) assert.equal(s.sample(logits, []), 1);
  }
});

test('top-k keeps only the k best', () => {
  const s = new Sampler({ temperature: 5, topK: 2, seed: 3 });
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) seen.add(s.sample(logits, []));
  assert.deepEqual([...seen].sort(), [1, 2]);
});

test('top-p keeps the smallest set reaching the mass', () => {
  // softmax([1,3,2,-1,0.5]): p(1)=0.636, p(2)=0.234 → 0.87 ≥ 0.8, so {1, 2}.
  const s = new Sampler({ temperature: 1, topP: 0.8, seed: 3 });
  const seen = new Set<number>();
  for (let i = 0; i < 300; i++) seen.add(s.sample(logits, []));
  assert.deepEqual([...seen].sort(), [1, 2]);
});

test('sampling frequencies follow softmax(logits / T)', () => {
  const s = new Sampler({ temperature: 2, seed: 11 });
  const counts = new Array(5).fill(0);
  const n = 20000;
  for (let i = 0; i < n; i++) counts[s.sample(logits, [])]++;
  const e = Array.from(logits, (x) => Math.exp(x / 2));
  const z = e.reduce((a, b) => a + b);
  e.forEach((v, i) => assert.ok(Math.abs(counts[i] / n - v / z) < 0.015, `token ${i}: ${counts[i] / n} vs ${v / z}`));
});

test('the same seed gives the same draws; another seed differs', () => {
  const draw = (seed: number) => {
    const s = new Sampler({ temperature: 1.5, seed });
    return Array.from({ length: 50 }, () => s.sample(logits, []));
  };
  assert.deepEqual(draw(42), draw(42));
  assert.notDeepEqual(draw(42), draw(43));
  const r = new Random(1);
  const xs = Array.from({ length: 1000 }, () => r.next());
  assert.ok(xs.every((x) => x >= 0 && x < 1));
});

test('bad sampling values are user errors', () => {
  assert.throws(() => new Sampler({ temperature: -1 }), AttendError);
  assert.throws(() => new Sampler({ topP: 0 }), AttendError);
  assert.throws(() => new Sampler({ topK: 1.5 }), AttendError);
  assert.throws(() => new Sampler({ repetitionPenalty: 0 }), AttendError);
});
