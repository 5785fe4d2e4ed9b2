/**
 * Sigmoid attention against PyTorch: outputs recorded by tools/fixtures/make_sigmoid_attention.py (torch, f64) for
 * grouped-query causal attention, a sliding window and an explicit bias, run here through the CPU backend's
 * attention with the kernel parsed as the CLI and the library parse it. Softmax is checked on the same inputs.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { attention } from '../../src/backend/cpu/attention.js';
import { parseKernel } from '../../src/attention/kernels/index.js';
import { LayerCache } from '../../src/cache/kv-cache.js';

interface Case {
  name: string;
  heads: number;
  kv_heads: number;
  tokens: number;
  head_dim: number;
  n: number;
  bias: number;
  window: number | null;
  q: number[];
  k: number[];
  v: number[];
  sigmoid: number[];
  softmax: number[];
}

const oracle = JSON.parse(readFileSync(new URL('../fixtures/sigmoid-attention/oracle.json', import.meta.url), 'utf8')) as { cases: Case[] };

function run(c: Case, kernelText: string): Float32Array {
  const d = c.head_dim;
  const layer = LayerCache.empty(c.kv_heads, d, 'f32');
  const positions = Int32Array.from({ length: c.tokens }, (_, i) => i);
  const k = Float32Array.from(c.k);
  const v = Float32Array.from(c.v);
  layer.heads.forEach((h, i) => h.append(k, v, positions, i * d, c.kv_heads * d));
  const q = Float32Array.from(c.q);
  const out = new Float32Array(q.length);
  const kernel = parseKernel(kernelText, { maxPositions: c.n });
  attention(q, c.tokens, c.heads, layer, positions, { layer: 0, scale: 1 / Math.sqrt(d), window: c.window, kernel }, out);
  return out;
}

function maxDiff(a: Float32Array, b: number[]): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
}

test('sigmoid attention matches PyTorch (default bias −log n, window, explicit bias)', () => {
  assert.equal(oracle.cases.length, 3);
  for (const c of oracle.cases) {
    const text = c.name === 'explicit-bias' ? `sigmoid:bias=${c.bias}` : 'sigmoid';
    const diff = maxDiff(run(c, text), c.sigmoid);
    assert.ok(diff < 1e-5, `${c.name}: max |Attend − torch| = ${diff}`);
    // The default bias really is −log n: another n gives other outputs.
    if (text === 'sigmoid') assert.ok(maxDiff(run({ ...c, n: c.n * 2 }, 'sigmoid'), c.sigmoid) > 1e-4, `${c.name}: the bias matters`);
  }
});

test('softmax on the same inputs matches PyTorch', () => {
  for (const c of oracle.cases) {
    const diff = maxDiff(run(c, 'softmax'), c.softmax);
    assert.ok(diff < 1e-5, `${c.name}: max |Attend − torch| = ${diff}`);
  }
});
