/**
 * Each available matmul path against the JavaScript reference (computed in f64 here), on random data, odd shapes
 * and subarray views with offsets. Paths this machine lacks are skipped with the reason.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Random, uniformArray } from '../../src/generate/random.js';
import {
  matmulBackendInfo,
  matmulNN,
  matmulPathError,
  matmulReady,
  matmulTransB,
  selectMatmul,
  type MatmulPath,
} from '../../src/backend/cpu/matmul.js';

/**
 * Checks C against the f64 product: |c − ref| ≤ 1e-5 · Σ|a||b| per element (the scale of rounding error, which
 * stays meaningful when the sum cancels).
 */
function check(c: Float32Array, a: Float32Array, b: Float32Array, m: number, n: number, k: number, transB: boolean): void {
  let worst = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      let scale = 0;
      for (let p = 0; p < k; p++) {
        const x = a[i * k + p]! * (transB ? b[j * k + p]! : b[p * n + j]!);
        sum += x;
        scale += Math.abs(x);
      }
      const err = Math.abs(c[i * n + j]! - sum) / Math.max(scale, 1e-30);
      if (!(err <= worst)) worst = Number.isNaN(err) ? Infinity : err;
    }
  }
  assert.ok(worst <= 1e-5, `relative error ${worst} for m=${m} n=${n} k=${k}`);
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 13],
  [3, 7, 13],
  [1, 300, 257],
  [3, 9, 1],
  [5, 8, 16],
  [4, 16, 8],
  [13, 17, 33],
  [64, 300, 257],
];

const PATHS: MatmulPath[] = ['js', 'wasm-simd', 'openblas'];

after(() => selectMatmul('auto'));

for (const path of PATHS) {
  const reason = matmulPathError(path);
  describe(`matmul path ${path}`, { skip: reason ? `${path} unavailable: ${reason}` : false }, () => {
    test('selects and reports itself', async () => {
      selectMatmul(path);
      await matmulReady();
      const info = matmulBackendInfo();
      assert.equal(info.name, path);
      assert.ok(info.threads >= 1);
    });

    for (const [m, n, k] of SHAPES) {
      test(`A·Bᵀ ${m}×${n}×${k}`, () => {
        selectMatmul(path);
        const a = uniformArray(m * k, m * 1000 + k);
        const b = uniformArray(n * k, n * 1000 + k + 7);
        const c = new Float32Array(m * n).fill(NaN);
        matmulTransB(a, b, c, m, n, k);
        check(c, a, b, m, n, k, true);
        // Second and third calls with the same B: the wasm path caches it on the second.
        c.fill(NaN);
        matmulTransB(a, b, c, m, n, k);
        check(c, a, b, m, n, k, true);
        matmulTransB(a, b, c, m, n, k);
        check(c, a, b, m, n, k, true);
      });

      test(`A·B ${m}×${n}×${k}`, () => {
        selectMatmul(path);
        const a = uniformArray(m * k, m * 31 + k);
        const b = uniformArray(k * n, n * 17 + k);
        const c = new Float32Array(m * n).fill(NaN);
        matmulNN(a, b, c, m, n, k);
        check(c, a, b, m, n, k, false);
      });
    }

    test('subarray views with offsets, C longer than m·n left alone beyond it', () => {
      selectMatmul(path);
      const [m, n, k] = [5, 11, 37];
      const aBig = uniformArray(m * k + 19, 3);
      const bBig = uniformArray(n * k + 23, 4);
      const a = aBig.subarray(19);
      const b = bBig.subarray(5, 5 + n * k);
      const cBig = new Float32Array(m * n + 40).fill(7);
      const c = cBig.subarray(13, 13 + m * n + 10);
      matmulTransB(a, b, c, m, n, k);
      check(c, a, b, m, n, k, true);
      assert.ok(cBig.subarray(0, 13).every((x) => x === 7));
      assert.ok(c.subarray(m * n).every((x) => x === 7));
      matmulNN(a, bBig.subarray(1), c, m, n, k);
      check(c, a, bBig.subarray(1), m, n, k, false);
    });

    test('a weight array changed in place with reuseB: false, and a fresh view per call', () => {
      selectMatmul(path);
      const [m, n, k] = [2, 24, 40];
      const a = uniformArray(m * k, 9);
      const b = uniformArray(n * k, 10);
      const c = new Float32Array(m * n);
      for (let round = 0; round < 3; round++) {
        b.set(uniformArray(n * k, 100 + round));
        matmulTransB(a, b, c, m, n, k, { reuseB: false });
        check(c, a, b, m, n, k, true);
        // Like a KV cache: the same buffer read through a new view each call, its rows rewritten between calls.
        matmulTransB(a, b.subarray(0, n * k), c, m, n, k);
        check(c, a, b, m, n, k, true);
      }
    });

    test('many calls of varying shapes (threads hand work back and forth)', () => {
      selectMatmul(path);
      const rng = new Random(12345);
      const next = (lo: number, hi: number) => lo + Math.floor(rng.next() * (hi - lo + 1));
      const b = uniformArray(200 * 700, 77); // one weight array, viewed at several shapes
      for (let i = 0; i < (path === 'js' ? 10 : 80); i++) {
        const [m, n, k] = [next(1, 9), next(9, 200), next(64, 700)];
        const a = uniformArray(m * k, i);
        const c = new Float32Array(m * n);
        const bv = i % 3 === 0 ? b : b.subarray(0, n * k);
        matmulTransB(a, bv, c, m, n, k);
        check(c, a, bv, m, n, k, true);
      }
    });

    test('zero-sized shapes', () => {
      selectMatmul(path);
      const c = new Float32Array(6).fill(1);
      matmulTransB(new Float32Array(0), new Float32Array(0), c, 2, 3, 0);
      assert.ok(c.every((x) => x === 0));
      matmulTransB(new Float32Array(0), new Float32Array(12), c, 0, 3, 4);
      assert.throws(() => matmulTransB(new Float32Array(3), new Float32Array(12), c, 1, 3, 4), RangeError);
    });
  });
}

test('ATTEND_MATMUL picks the path', () => {
  const before = process.env.ATTEND_MATMUL;
  try {
    process.env.ATTEND_MATMUL = 'js';
    selectMatmul('auto');
    assert.equal(matmulBackendInfo().name, 'js');
    process.env.ATTEND_MATMUL = 'nonsense';
    assert.throws(() => selectMatmul('auto'), /ATTEND_MATMUL/);
  } finally {
    if (before === undefined) delete process.env.ATTEND_MATMUL;
    else process.env.ATTEND_MATMUL = before;
  }
});
