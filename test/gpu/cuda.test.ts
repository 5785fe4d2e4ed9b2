/**
 * The CUDA backend on a GPU (npm run test:gpu): the backend conformance suite against the reference backend, logits
 * of every parity fixture against the CPU backend, greedy tokens, presses' kept entries on both backends, and the
 * device KV memory's bookkeeping. Skips with the reason where there is no usable CUDA (no driver, no GPU, no NVRTC
 * or cuBLAS). Tolerances: f32 weights within 1e-3 of the CPU; 16-bit weights (bf16/f16 products, f32 accumulation)
 * within BF16_LOGITS, measured on the fixtures and printed.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backend/cpu/index.js';
import { CudaBackend } from '../../src/backend/cuda/index.js';
import { cudaContext } from '../../src/backend/cuda/context.js';
import { loadModel } from '../../src/models/load.js';
import { generate } from '../../src/generate/generate.js';
import { createPress } from '../../src/presses/registry.js';
import { conformance } from '../backend/conformance.js';

const parity = new URL('../fixtures/parity/', import.meta.url).pathname;
const models = existsSync(parity) ? readdirSync(parity, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => parity + d.name) : [];
const draft = new URL('../../models/attend-mini-draft', import.meta.url).pathname;
/**
 * Largest relative logit difference allowed with 16-bit weights and products (max(1, |cpu|)-relative): the inputs
 * of every product rounded to bf16 (8 bits of mantissa) as PyTorch rounds them. Measured on the H200 (2026-12-02):
 * llama-bf16 0.127, attend-mini-draft 0.154 (greedy tokens still all equal), qwen2-f16 0.011.
 */
const BF16_LOGITS = 0.25;

let reason: string | undefined;
try {
  cudaContext();
} catch (e) {
  reason = (e as Error).message;
}

if (reason) {
  test('CUDA backend', (t) => t.skip(`no usable CUDA here: ${reason}`));
} else {
  const info = cudaContext().driver.info;
  console.log(`# CUDA device: ${info.name}, sm_${info.computeCapability}, ${info.smCount} SMs, NVRTC ${cudaContext().nvrtc.version} (${cudaContext().nvrtc.path}), cuBLAS ${cudaContext().cublas.path}`);
  const wide = new CudaBackend({ weights: 'f32' });
  const stored = new CudaBackend();
  conformance('cuda (f32 weights)', () => wide, { tolerance: 1e-4, models, modelTolerance: 1e-3, without: ['remap', 'pruned-keys'] });

  const worst = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]) / Math.max(1, Math.abs(b[i]))), 0);
  const ids = (vocab: number, n: number) => Array.from({ length: n }, (_, i) => (i * 37 + 5) % vocab);

  for (const dir of [...models, ...(existsSync(draft) ? [draft] : [])]) {
    const name = dir.split('/').pop();
    test(`cuda logits of ${name} against the CPU backend: f32 weights within 1e-3, stored weights within ${BF16_LOGITS} (prefill of 40, then 3 decode steps)`, () => {
      const cpu = loadModel(dir, { backend: cpuBackend });
      const input = ids(cpu.config.vocabSize, 40);
      const want: Float32Array[] = [];
      const cc = cpu.model.makeCache();
      want.push(cpu.model.forward(input, cc).f32.slice());
      for (const t of [3, 9, 27]) want.push(cpu.model.forward([t % cpu.config.vocabSize], cc).f32.slice());
      for (const [backend, tol] of [[wide, 1e-3], [stored, BF16_LOGITS]] as const) {
        const gpu = loadModel(dir, { backend });
        const gc = gpu.model.makeCache();
        const got = [backend.read(gpu.model.forward(input, gc))];
        for (const t of [3, 9, 27]) got.push(backend.read(gpu.model.forward([t % cpu.config.vocabSize], gc)));
        const diffs = got.map((g, i) => worst(g, want[i]));
        console.log(`# ${name} ${backend.weights} weights (${cpu.config.dtype}): max relative logit difference ${diffs.map((d) => d.toExponential(2)).join(', ')}`);
        diffs.forEach((d, i) => assert.ok(d <= tol, `${name} ${backend.weights} step ${i}: ${d} > ${tol}`));
        assert.equal(gc.layers[0].heads[0].length, 43);
      }
    });
  }

  if (existsSync(draft)) {
    test('greedy tokens of attend-mini-draft: the same 48 tokens on the GPU (f32 weights) as on the CPU; bf16 weights agree on most', async () => {
      const cpu = loadModel(draft, { backend: cpuBackend });
      const prompt = cpu.tokenizer.encode('The secret code is 4417. Remember it. The weather was fine and the road was long. What is the secret code? Answer:');
      const want = (await generate(cpu, prompt, { maxNewTokens: 48, temperature: 0 })).tokens;
      const f32 = (await generate(loadModel(draft, { backend: wide }), prompt, { maxNewTokens: 48, temperature: 0 })).tokens;
      assert.deepEqual(f32, want);
      const bf16 = (await generate(loadModel(draft, { backend: stored }), prompt, { maxNewTokens: 48, temperature: 0 })).tokens;
      const same = bf16.findIndex((t, i) => t !== want[i]);
      console.log(`# greedy bf16 weights: first difference at token ${same < 0 ? 'none (all 48 equal)' : same}`);
    });

    test('presses keep the same entries on the GPU as on the CPU (SnapKV, StreamingLLM, KNorm, TOVA, H2O-style accumulation)', async () => {
      const cpu = loadModel(draft, { backend: cpuBackend });
      const gpu = loadModel(draft, { backend: wide });
      const prompt = cpu.tokenizer.encode('Far away, the river bends. '.repeat(30) + 'The code word is falcon. '.concat('The hills are green. '.repeat(20), 'What is the code word?'));
      for (const [name, opts] of [['snapkv', {}], ['streaming-llm', {}], ['knorm', {}], ['tova', {}], ['h2o', {}]] as const) {
        const compression = () => ({ press: createPress(name, opts), budget: { ratio: 0.5 } });
        const a = await generate(cpu, prompt, { maxNewTokens: 4, temperature: 0, compression: compression() });
        const b = await generate(gpu, prompt, { maxNewTokens: 4, temperature: 0, compression: compression() });
        a.cache.layers.forEach((layer, l) => layer.heads.forEach((h, i) => {
          assert.deepEqual(Array.from(b.cache.layers[l].heads[i].positions), Array.from(h.positions), `${name}: layer ${l} head ${i} kept entries`);
        }));
        assert.deepEqual(b.tokens, a.tokens, `${name}: tokens`);
      }
    });
  }

  test('the device KV memory frees what keep drops, and clone/truncate/keys read back what was written', () => {
    const b = wide;
    const cache = b.createCache({ numLayers: 1, numKvHeads: 2, headDim: 8 }, 'bf16');
    const k = b.upload([10, 16], Float32Array.from({ length: 160 }, (_, i) => (i % 13) / 8));
    const v = b.upload([10, 16], Float32Array.from({ length: 160 }, (_, i) => (i % 7) / 4));
    b.appendKv(cache.layers[0], k, v, Int32Array.from({ length: 10 }, (_, i) => 3 * i));
    const head = cache.layers[0].heads[1];
    const before = head.bytes();
    const keys = head.keys(0, 10);
    head.keep([1, 4, 9]);
    assert.ok(head.bytes() < before, `bytes ${head.bytes()} < ${before}`);
    assert.deepEqual(Array.from(head.positions), [3, 12, 27]);
    assert.deepEqual(Array.from(head.keys(0, 3)), [...keys.subarray(8, 16), ...keys.subarray(32, 40), ...keys.subarray(72, 80)]);
    const copy = head.clone();
    copy.truncate(12);
    assert.equal(copy.length, 1);
    assert.equal(head.length, 3);
    assert.deepEqual(Array.from(copy.keys(0, 1)), Array.from(keys.subarray(8, 16)));
  });
}
