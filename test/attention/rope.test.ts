import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyRope, inverseFrequencies, ropeTables } from '../../src/attention/rope.js';
import type { RopeConfig } from '../../src/models/config.js';

const base: RopeConfig = { type: 'default', theta: 10000, dim: 8, factor: 1, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 };

test('default frequencies are theta^(-2i/d)', () => {
  const inv = inverseFrequencies(base, 1);
  [1, 0.1, 0.01, 0.001].forEach((x, i) => assert.ok(Math.abs(inv[i] - x) < 1e-7));
});

test('linear scaling divides every frequency by the factor', () => {
  const inv = inverseFrequencies({ ...base, type: 'linear', factor: 4 }, 1);
  [0.25, 0.025, 0.0025, 0.00025].forEach((x, i) => assert.ok(Math.abs(inv[i] - x) < 1e-8));
});

test('dynamic NTK leaves short sequences alone and grows the base past the original length', () => {
  const d = { ...base, type: 'dynamic' as const, factor: 2 };
  assert.deepEqual(inverseFrequencies(d, 64), inverseFrequencies(base, 1));
  // len 128: base' = 10000 · (2·128/64 − 1)^(8/6) = 10000 · 3^(4/3).
  const b = 10000 * 3 ** (4 / 3);
  const inv = inverseFrequencies(d, 128);
  assert.ok(Math.abs(inv[1] - 1 / b ** 0.25) / inv[1] < 1e-6);
});

test('llama3 scaling: high frequencies kept, low divided, the band between interpolated', () => {
  // Hand case: original 64, low 1, high 4 → wavelengths < 16 kept, > 64 divided by 8.
  const r: RopeConfig = { ...base, type: 'llama3', factor: 8, originalMaxPositions: 64, theta: 100 };
  const plain = inverseFrequencies({ ...r, type: 'default' }, 1);
  const inv = inverseFrequencies(r, 1);
  plain.forEach((f, i) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < 16) assert.equal(inv[i], f);
    else if (wavelen > 64) assert.ok(Math.abs(inv[i] - f / 8) < 1e-9);
    else {
      const smooth = (64 / wavelen - 1) / 3;
      assert.ok(Math.abs(inv[i] - ((1 - smooth) * f / 8 + smooth * f)) < 1e-7);
    }
  });
  // theta 100, d 8: wavelengths 6.3, 19.9, 62.8, 198.7 → one of each case plus a second interpolated one.
  assert.equal(inv[0], plain[0]);
  assert.ok(inv[3] < plain[3]);
});

test('rotation keeps norms and makes scores depend only on the distance', () => {
  const inv = inverseFrequencies(base, 1);
  const q = Float32Array.from([0.3, -1, 2, 0.5, 1, 0.2, -0.7, 0.1]);
  const k = Float32Array.from([1, 0.5, -0.2, 0.3, -1, 0.8, 0.4, 0.9]);
  const rotated = (x: Float32Array, pos: number) => {
    const y = x.slice();
    applyRope(y, 1, 1, 8, ropeTables(inv, Int32Array.from([pos])));
    return y;
  };
  const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i], 0);
  assert.ok(Math.abs(dot(rotated(q, 7), rotated(q, 7)) - dot(q, q)) < 1e-5);
  assert.ok(Math.abs(dot(rotated(q, 10), rotated(k, 3)) - dot(rotated(q, 107), rotated(k, 100))) < 1e-4);
});
