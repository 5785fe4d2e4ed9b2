/** The CPU backend against the reference backend: every op, attention in every visibility, and whole models. */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { CpuBackend, cpuBackend } from '../../src/backend/cpu/index.js';
import { matmulBackendInfo } from '../../src/backend/cpu/matmul.js';
import { ReferenceBackend } from '../../src/backend/reference/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { conformance } from './conformance.js';

const parity = new URL('../fixtures/parity/', import.meta.url).pathname;
const models = readdirSync(parity, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => parity + d.name);

conformance('cpu', () => cpuBackend, { models: [...models, new URL('../../models/attend-mini', import.meta.url).pathname] });
// Kernel paths are a backend's own: a second CPU backend on the plain-JavaScript paths, in the same process.
conformance('cpu (js matmul, js softmax)', () => new CpuBackend({ matmul: 'js', softmax: 'js' }), { models: models.slice(0, 2) });

test("a backend's own paths leave the process default alone; an unknown path fails in one line", () => {
  const before = matmulBackendInfo().name;
  new CpuBackend({ matmul: 'js' }).linear(new Tensor([1, 2], Float32Array.from([1, 2])), new Tensor([1, 2], Float32Array.from([3, 4])));
  assert.equal(matmulBackendInfo().name, before);
  assert.throws(() => new CpuBackend({ matmul: 'cuda' as never }), /matmul path 'cuda' is not available/);
});

test('the reference backend computes what it states: worked values', () => {
  const r = new ReferenceBackend();
  // gelu's erf form at known points (erf(0.5/√2)…): gelu(x) = x/2·(1 + erf(x/√2)).
  const x = new Tensor([1, 3], Float32Array.from([1, -0.5, 4]));
  r.gelu(x, 'gelu');
  const want = [0.8413447460685429, -0.15426876936299344, 3.999873311539]; // x·Φ(x)
  x.f32.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-6, `gelu ${v} vs ${want[i]}`));
  // rmsNorm of (3, 4): rms = √12.5.
  const n = r.rmsNorm(new Tensor([1, 2], Float32Array.from([3, 4])), new Tensor([2], Float32Array.from([1, 2])), 0);
  assert.ok(Math.abs(n.f32[0] - 3 / Math.sqrt(12.5)) < 1e-7 && Math.abs(n.f32[1] - 8 / Math.sqrt(12.5)) < 1e-6);
});
