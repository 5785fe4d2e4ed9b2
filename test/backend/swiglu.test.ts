/**
 * The WebAssembly SIMD SwiGLU against the Math.exp reference of elementwise.ts: relative accuracy over the whole
 * range of gates, the special values, and row lengths that are not multiples of the vector width.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { swiglu, swigluPath } from '../../src/backend/cpu/activation/swiglu.js';
import { swiglu as swigluJs } from '../../src/backend/cpu/elementwise.js';
import { Random } from '../../src/generate/random.js';

/** Uniform draws in [0, 1) from the project's seeded generator. */
function uniform(seed: number): () => number {
  const rng = new Random(seed);
  return () => rng.next();
}

/** silu(g)·u in f64, the exact value the f32 results are compared with. */
function exact(g: number, u: number): number {
  return (g / (1 + Math.exp(-g))) * u;
}

test('the wasm SwiGLU kernel is the path used where WebAssembly SIMD runs', () => {
  assert.equal(swigluPath(), 'wasm');
});

test('wasm SwiGLU is within 5e-7 (relative) of silu(g)·u for |g| ≤ 80, like the Math.exp loop', () => {
  const next = uniform(11);
  const rows = 37;
  const inner = 1409;
  const gateUp = new Float32Array(rows * 2 * inner);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < inner; i++) {
      // Gates uniform over [−80, 80], over [−4, 4] and log-spread tiny magnitudes; ups in [−2, 2].
      const k = i % 3;
      const g = k === 0 ? 160 * next() - 80 : k === 1 ? 8 * next() - 4 : (next() < 0.5 ? -1 : 1) * 2 ** (-40 * next());
      gateUp[r * 2 * inner + i] = g;
      gateUp[r * 2 * inner + inner + i] = 4 * next() - 2;
    }
  }
  const fast = new Float32Array(rows * inner);
  const ref = new Float32Array(rows * inner);
  swiglu(gateUp, rows, inner, fast);
  swigluJs(gateUp, rows, inner, ref);
  let worstFast = 0;
  let worstRef = 0;
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < inner; i++) {
      const want = exact(gateUp[r * 2 * inner + i], gateUp[r * 2 * inner + inner + i]);
      if (want === 0 || Math.abs(want) < 1e-30) continue;
      worstFast = Math.max(worstFast, Math.abs(fast[r * inner + i] - want) / Math.abs(want));
      worstRef = Math.max(worstRef, Math.abs(ref[r * inner + i] - want) / Math.abs(want));
    }
  }
  assert.ok(worstFast <= 5e-7, `wasm: max relative error ${worstFast}`);
  assert.ok(worstRef <= 1e-7, `js: max relative error ${worstRef}`);
});

test('wasm SwiGLU handles every row length and the special values', () => {
  const next = uniform(5);
  for (const inner of [1, 2, 3, 4, 5, 7, 8, 9, 31, 64]) {
    const rows = 3;
    const gateUp = Float32Array.from({ length: rows * 2 * inner }, () => 20 * next() - 10);
    const fast = new Float32Array(rows * inner).fill(NaN);
    const ref = new Float32Array(rows * inner);
    swiglu(gateUp, rows, inner, fast);
    swigluJs(gateUp, rows, inner, ref);
    for (let i = 0; i < ref.length; i++) {
      assert.ok(Math.abs(fast[i] - ref[i]) <= 1e-6 * Math.abs(ref[i]), `inner ${inner}, element ${i}: ${fast[i]} vs ${ref[i]}`);
    }
  }
  const gates = [0, -0, 100, -100, 1e30, -1e30, Infinity, -Infinity, NaN];
  const gateUp = new Float32Array(2 * gates.length);
  gateUp.set(gates);
  gateUp.fill(2, gates.length);
  const out = new Float32Array(gates.length);
  swiglu(gateUp, 1, gates.length, out);
  assert.deepEqual(Array.from(out.subarray(0, 6)), [0, -0, 200, -0, Math.fround(1e30) * 2, -0]);
  assert.equal(out[6], Infinity);
  assert.ok(Number.isNaN(out[7]) && Number.isNaN(out[8]), 'silu(−∞) = −∞/∞ and NaN stay NaN');
});

test('wasm SwiGLU runs large inputs block by block to the same result', () => {
  const next = uniform(3);
  const rows = 300;
  const inner = 1408;
  const gateUp = Float32Array.from({ length: rows * 2 * inner }, () => 16 * next() - 8);
  const fast = new Float32Array(rows * inner);
  const ref = new Float32Array(rows * inner);
  swiglu(gateUp, rows, inner, fast);
  swigluJs(gateUp, rows, inner, ref);
  for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(fast[i] - ref[i]) <= 1e-6 * Math.abs(ref[i]) + 1e-30, `element ${i}`);
});
