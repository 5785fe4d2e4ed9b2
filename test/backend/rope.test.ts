/** RoPE through the WebAssembly SIMD kernel: the same bits as the JavaScript reference, partial rotary included. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyRope, inverseFrequencies, ropeTables } from '../../src/attention/rope.js';
import { rope, ropePath } from '../../src/backend/cpu/rope/rope.js';
import type { RopeConfig } from '../../src/models/config.js';

test('the wasm RoPE kernel is the path used where WebAssembly SIMD runs', () => {
  assert.equal(ropePath(), 'wasm');
});

// [rows, heads, headDim, rotary dims]: attend-mini's q and k, a head size whose half is not a multiple of 4, partial
// rotary, and enough rows to span several blocks.
for (const [rows, heads, headDim, rotary] of [[512, 8, 64, 64], [512, 2, 64, 64], [9, 3, 12, 12], [5, 2, 12, 8], [4, 1, 2, 2], [700, 4, 10, 10]]) {
  test(`rope on ${rows} rows × ${heads} heads of ${headDim} (${rotary} rotary) equals applyRope`, () => {
    const positions = Int32Array.from({ length: rows }, (_, i) => 3 * i + 1);
    const config: RopeConfig = { type: 'default', theta: 10000, dim: rotary, factor: 1, lowFreqFactor: 1, highFreqFactor: 1, originalMaxPositions: 0 };
    const tables = ropeTables(inverseFrequencies(config, 3 * rows + 1), positions);
    const x = Float32Array.from({ length: rows * heads * headDim }, (_, i) => Math.sin(i * 1.37) * 3);
    const fast = x.slice();
    const ref = x.slice();
    rope(fast, rows, heads, headDim, tables);
    applyRope(ref, rows, heads, headDim, tables);
    assert.deepEqual(fast, ref);
  });
}
