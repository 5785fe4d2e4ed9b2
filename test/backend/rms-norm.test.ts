/**
 * RMSNorm through the WebAssembly SIMD kernel against the JavaScript loops of elementwise.ts, and the fused
 * residual add + RMSNorm against the two separate backend ops.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ew from '../../src/backend/cpu/elementwise.js';
import { cpuBackend } from '../../src/backend/cpu/index.js';
import { addRmsNorm, rmsNorm, rmsNormPath } from '../../src/backend/cpu/norm/rms-norm.js';
import { uniformArray } from '../../src/generate/random.js';
import { Tensor } from '../../src/tensor/tensor.js';

/** `n` values uniform in [−scale, scale). */
function random(n: number, seed: number, scale = 1): Float32Array {
  return uniformArray(n, seed).map((x) => x * scale);
}

/** Largest |a − b| / max(|b|, tiny), for f32 results expected to agree to an f32 rounding or two. */
function maxRelative(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), 1e-30));
  return worst;
}

test('the wasm RMSNorm kernel is the path used where WebAssembly SIMD runs', () => {
  assert.equal(rmsNormPath(), 'wasm');
});

// Widths below, at and around the vector width, a head size and a hidden size; 300 rows span several blocks at 512.
for (const n of [1, 3, 4, 7, 12, 64, 513, 512]) {
  test(`rmsNorm and addRmsNorm (width ${n}) match the JavaScript reference`, () => {
    const rows = n >= 512 ? 300 : 9;
    const x = random(rows * n, n, 4);
    const delta = random(rows * n, n + 1, 2);
    const weight = random(n, n + 2, 1.5);
    const fast = new Float32Array(rows * n);
    const ref = new Float32Array(rows * n);
    rmsNorm(x, weight, 1e-6, fast);
    ew.rmsNorm(x, weight, 1e-6, ref);
    assert.ok(maxRelative(fast, ref) <= 2.5e-7, `rmsNorm: ${maxRelative(fast, ref)}`);

    const xFast = x.slice();
    const xRef = x.slice();
    addRmsNorm(xFast, delta, weight, 1e-6, fast);
    ew.addRmsNorm(xRef, delta, weight, 1e-6, ref);
    assert.deepEqual(xFast, xRef, 'x + delta, rounded to f32');
    assert.ok(maxRelative(fast, ref) <= 2.5e-7, `addRmsNorm: ${maxRelative(fast, ref)}`);
    for (let i = 0; i < x.length; i++) assert.equal(xRef[i], Math.fround(x[i] + delta[i]));
  });
}

test('the backend fused add + RMSNorm equals add then RMSNorm, bit for bit', () => {
  const rows = 37;
  const n = 512;
  const weight = new Tensor([n], random(n, 3));
  const delta = new Tensor([rows, n], random(rows * n, 4));
  const separate = new Tensor([rows, n], random(rows * n, 5, 3));
  const fused = new Tensor([rows, n], separate.f32.slice());
  cpuBackend.add(separate, delta);
  const want = cpuBackend.rmsNorm(separate, weight, 1e-5);
  const got = cpuBackend.addRmsNorm(fused, delta, weight, 1e-5);
  assert.deepEqual(fused.f32, separate.f32);
  assert.deepEqual(got.f32, want.f32);
  assert.deepEqual(got.shape, [rows, n]);
  // Into a given output: the same values, in that tensor.
  const again = new Tensor([rows, n], random(rows * n, 5, 3));
  const out = Tensor.zeros([rows, n]);
  assert.equal(cpuBackend.addRmsNorm(again, delta, weight, 1e-5, out), out);
  assert.deepEqual(out.f32, want.f32);
});
