/**
 * The benchmark's onnxruntime peer (src/bench/onnx-llama.ts) computes the same model as Attend: a prefill of 10
 * ids and 3 decode steps through the KV cache (present fed back as past) give Attend's logits within 1e-4.
 * The standard-op graph runs on the tiny parity fixture (head_dim 12); onnxruntime's GroupQueryAttention needs a
 * head size that is a multiple of 8, so that graph runs on the bundled attend-mini-draft (bf16, head_dim 64, 3 query
 * heads over 1 KV head), the same recipe as the benchmarked attend-mini.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildLlamaOnnx, type OnnxAttention, OrtLlama } from '../../src/bench/onnx-llama.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import { maxAbsDiff, PARITY_DIR } from '../helpers/fixtures.js';

const TOLERANCE = 1e-4;
const ROOT = join(import.meta.dirname, '..', '..');

async function loadOrt(): Promise<typeof import('onnxruntime-node') | undefined> {
  try {
    return await import('onnxruntime-node');
  } catch {
    return undefined;
  }
}

const ort = await loadOrt();

async function checkParity(dir: string, attention: OnnxAttention, prompt: number[], steps: number[]): Promise<void> {
  const lm = loadModel(dir);
  const vocab = lm.config.vocabSize;
  const full = await OrtLlama.create(ort!, dir, { attention });
  const last = await OrtLlama.create(ort!, dir, { attention, lastOnly: true });
  try {
    const cache = newCache(lm.config);
    const want = lm.model.forward(prompt, cache).f32;
    let got = await full.step(prompt, full.emptyPast());
    assert.equal(got.logits.length, prompt.length * vocab);
    assert.ok(maxAbsDiff(got.logits, want) <= TOLERANCE, `prefill: max |Δ| = ${maxAbsDiff(got.logits, want)}`);
    let gotLast = await last.step(prompt, last.emptyPast());
    const wantLast = want.subarray((prompt.length - 1) * vocab);
    assert.equal(gotLast.logits.length, vocab);
    assert.ok(maxAbsDiff(gotLast.logits, wantLast) <= TOLERANCE, `prefill, last row: max |Δ| = ${maxAbsDiff(gotLast.logits, wantLast)}`);
    for (const [n, id] of steps.entries()) {
      const wantStep = lm.model.forward([id], cache, { lastOnly: true }).f32;
      got = await full.step([id], got.present);
      gotLast = await last.step([id], gotLast.present);
      assert.equal(got.present.past_key_0.dims[2], prompt.length + n + 1);
      assert.ok(maxAbsDiff(got.logits, wantStep) <= TOLERANCE, `decode step ${n + 1}: max |Δ| = ${maxAbsDiff(got.logits, wantStep)}`);
      assert.ok(maxAbsDiff(gotLast.logits, wantStep) <= TOLERANCE, `decode step ${n + 1}, last-only graph: max |Δ| = ${maxAbsDiff(gotLast.logits, wantStep)}`);
    }
  } finally {
    await full.release();
    await last.release();
  }
}

const skip = ort ? false : 'onnxruntime-node is not loadable';

test('ONNX peer, standard-op attention: llama-gqa-tied logits equal Attend (prefill 10, decode 3)', { skip }, async () => {
  await checkParity(join(PARITY_DIR, 'llama-gqa-tied'), 'ops', [0, 17, 300, 2, 99, 45, 12, 7, 250, 383], [3, 200, 51]);
});

test('ONNX peer, GroupQueryAttention: attend-mini-draft logits equal Attend (prefill 10, decode 3)', { skip }, async () => {
  await checkParity(join(ROOT, 'models', 'attend-mini-draft'), 'gqa', [0, 1517, 93, 4000, 16383, 12, 777, 5, 9001, 42], [3, 2000, 51]);
});

test('ONNX peer refuses what it does not model', () => {
  assert.throws(() => buildLlamaOnnx(join(PARITY_DIR, 'qwen3-norm')), /q\/k norms/);
  assert.throws(() => buildLlamaOnnx(join(PARITY_DIR, 'qwen2-bias')), /attention biases/);
});
