/**
 * Forward hooks and head ablation on the bundled model, and the attention kernel chosen at load.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Tensor } from '../../src/tensor/tensor.js';
import { loadModel } from '../../src/models/load.js';
import { ablationHooks, forwardWithHidden, newCache, parseHeads, withHooks } from '../../src/models/model.js';
import { CompressionSession } from '../../src/presses/runner.js';
import { createPress } from '../../src/presses/registry.js';
import { assertUserError, runCli } from '../helpers/cli.js';

const dir = new URL('../../models/attend-mini', import.meta.url).pathname;
const lm = loadModel(dir);
const ids = lm.tokenizer.encode('The capital of France is Paris. The capital of Italy is');

function logits(model = lm.model, opts = {}): Float32Array {
  return model.forward(ids, newCache(lm.config), opts).f32.slice();
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
}

const plain = logits();

test('hooks that change nothing leave the logits exactly as they were', () => {
  const seen: string[] = [];
  const out = logits(lm.model, {
    hooks: {
      headOutputs: (l: number, t: Tensor) => void seen.push(`h${l}:${t.cols}`),
      residual: (l: number, t: Tensor) => void seen.push(`r${l}:${t.cols}`),
      final: (t: Tensor) => void seen.push(`f:${t.cols}`),
    },
  });
  assert.equal(maxDiff(out, plain), 0);
  const c = lm.config;
  assert.equal(seen.length, 2 * c.numLayers + 1);
  assert.deepEqual(seen.slice(0, 2), [`h0:${c.numHeads * c.headDim}`, `r0:${c.hiddenSize}`]);
  assert.equal(seen.at(-1), `f:${c.hiddenSize}`);
});

test('head ablation zeroes exactly that head: layers before it unchanged, the logits changed', () => {
  const c = lm.config;
  const residuals = (heads: string | null) => {
    const out: Float32Array[] = [];
    const model = heads ? withHooks(lm.model, ablationHooks(lm.model.backend, c, parseHeads(heads))) : lm.model;
    const heard: Float32Array[] = [];
    const result = model.forward(ids, newCache(c), {
      hooks: {
        headOutputs: (_l: number, t: Tensor) => void heard.push(t.f32.slice()),
        residual: (_l: number, t: Tensor) => void out.push(t.f32.slice()),
      },
    }).f32.slice();
    return { out, heard, result };
  };
  const base = residuals(null);
  const ablated = residuals('3.5');
  for (let l = 0; l < 3; l++) assert.equal(maxDiff(base.out[l], ablated.out[l]), 0, `layer ${l} is before the ablated head`);
  assert.ok(maxDiff(base.out[3], ablated.out[3]) > 1e-4, 'layer 3 changes');
  assert.ok(maxDiff(base.result, ablated.result) > 1e-4, 'the logits change');
  // The caller's hook runs after the ablation: head 5 of layer 3 is zero there, the other heads are as before.
  const d = c.headDim;
  const width = c.numHeads * d;
  const after = ablated.heard[3];
  for (let r = 0; r < ids.length; r++) {
    for (let i = 0; i < width; i++) {
      const want = i >= 5 * d && i < 6 * d ? 0 : base.heard[3][r * width + i];
      assert.equal(after[r * width + i], want);
    }
  }
  // The same as zeroing the columns by hand.
  const byHand = logits(lm.model, {
    hooks: { headOutputs: (l: number, t: Tensor) => { if (l === 3) for (let r = 0; r < t.rows; r++) t.f32.fill(0, r * width + 5 * d, r * width + 6 * d); } },
  });
  assert.equal(maxDiff(byHand, ablated.result), 0);
});

test('a hook can replace the residual stream (activation patching) and read the final hidden state', () => {
  const c = lm.config;
  // Patching layer 7's residual with itself changes nothing; with zeros, the final norm of 0 gives logits of 0.
  const same = logits(lm.model, { hooks: { residual: (_l: number, t: Tensor) => t } });
  assert.equal(maxDiff(same, plain), 0);
  const zeroed = logits(lm.model, {
    hooks: { residual: (l: number, t: Tensor) => { if (l === c.numLayers - 1) t.f32.fill(0); } },
  });
  assert.ok(zeroed.every((x) => x === 0));
  const { logits: l2, hidden } = forwardWithHidden(lm.model, ids, newCache(c));
  assert.equal(hidden.length, ids.length * c.hiddenSize);
  assert.equal(maxDiff(l2.f32, plain), 0);
});

test('head references are checked: one-line errors', () => {
  assert.throws(() => parseHeads('3'), /not a head/);
  assert.throws(() => ablationHooks(lm.model.backend, lm.config, parseHeads('99.0')), /has layers 0…7/);
  assert.throws(() => ablationHooks(lm.model.backend, lm.config, parseHeads('0.8')), /query heads 0…7/);
});

test('the attention kernel is chosen at load; presses that read probabilities refuse sigmoid', () => {
  const sig = loadModel(dir, { attention: 'sigmoid' });
  assert.deepEqual(sig.config.attentionKernel, { name: 'sigmoid', bias: -Math.log(lm.config.maxPositions) });
  const out = sig.model.forward(ids, newCache(sig.config)).f32;
  assert.ok(out.every(Number.isFinite));
  assert.ok(maxDiff(out, plain) > 1e-2, 'another kernel, other logits');
  const snap = { press: createPress('snapkv', {}), budget: { ratio: 0.5 } };
  assert.throws(() => new CompressionSession(snap, sig.model, newCache(sig.config)), /snapkv scores entries by attention probabilities, and the sigmoid attention kernel has none/);
  // A press that reads keys only runs.
  new CompressionSession({ press: createPress('knorm', {}), budget: { ratio: 0.5 } }, sig.model, newCache(sig.config));
});

test('CLI: --ablate-heads and --attention on attend logits', () => {
  assertUserError(runCli(['logits', '--ids', '1,2,3', '--out', '/tmp/attend-hooks.f32', '--ablate-heads', '1']), /not a head/);
  assertUserError(runCli(['logits', '--ids', '1,2,3', '--out', '/tmp/attend-hooks.f32', '--attention', 'cosine']), /unknown attention kernel 'cosine'/);
  const r = runCli(['logits', '--ids', '1,2,3', '--out', '/tmp/attend-hooks.f32', '--ablate-heads', '0.1,2.3', '--attention', 'sigmoid']);
  assert.equal(r.status, 0, r.stderr);
});
