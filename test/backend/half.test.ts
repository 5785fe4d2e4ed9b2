/**
 * The f16 / bf16 conversions of the KV cache: widening (the WebAssembly SIMD kernel and the JavaScript table) is exact
 * and bit for bit the same on every one of the 65536 patterns, and narrowing rounds to nearest, ties to even, as an
 * independent f64 reference does (ties, subnormals, overflow to infinity, NaN).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { widenHalf, widenPath } from '../../src/backend/cpu/convert/half.js';
import { bf16ToF32, f16BitsToF32Bits, f16ToF32, f32ToBf16, f32ToF16, narrow, widen } from '../../src/tensor/dtype.js';
import { Random } from '../../src/generate/random.js';

const ALL = Uint16Array.from({ length: 65536 }, (_, i) => i);

function bitsOf(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

function f32Bits(v: number): number {
  return bitsOf(Float32Array.of(v))[0];
}

function fromBits(bits: number): number {
  return new Float32Array(Uint32Array.of(bits).buffer)[0];
}

test('the wasm widening kernel is the path used where WebAssembly SIMD runs', () => {
  assert.equal(widenPath(), 'wasm');
});

test('f16 widening: every pattern exact, the same bits on the SIMD and JavaScript paths', () => {
  const simd = widenHalf('f16', ALL, new Float32Array(65536));
  const js = widen('f16', ALL);
  assert.deepEqual(bitsOf(simd), bitsOf(js));
  for (let h = 0; h < 65536; h++) {
    assert.equal(bitsOf(simd)[h], f16BitsToF32Bits(h), `pattern 0x${h.toString(16)}`);
    const value = f16ToF32(h); // the arithmetic reference: sign · (1 + m/1024) · 2^(e−15), m · 2^−24 below
    if (Number.isNaN(value)) assert.ok(Number.isNaN(simd[h]), `0x${h.toString(16)} is NaN`);
    else assert.ok(Object.is(simd[h], value), `0x${h.toString(16)}: ${simd[h]} vs ${value}`);
  }
});

test('f16 widening by hand: zeros, subnormals, the normal range, infinities, NaN payloads and signs', () => {
  const cases: [number, number][] = [
    [0x0000, 0x00000000], [0x8000, 0x80000000], // ±0
    [0x0001, f32Bits(2 ** -24)], [0x8001, f32Bits(-(2 ** -24))], // smallest subnormal
    [0x0200, f32Bits(2 ** -15)], [0x03ff, f32Bits(1023 * 2 ** -24)], // subnormals
    [0x0400, f32Bits(2 ** -14)], // smallest normal
    [0x3c00, f32Bits(1)], [0x3c01, f32Bits(1 + 2 ** -10)], [0xc000, f32Bits(-2)],
    [0x7bff, f32Bits(65504)], // largest finite
    [0x7c00, 0x7f800000], [0xfc00, 0xff800000], // ±infinity
    [0x7e00, 0x7fc00000], [0x7c01, 0x7f802000], [0xfe01, 0xffc02000], [0x7fff, 0x7fffe000], // NaNs keep payload and sign
  ];
  const words = Uint16Array.from(cases, ([h]) => h);
  const expected = Uint32Array.from(cases, ([, b]) => b);
  assert.deepEqual(bitsOf(widenHalf('f16', words, new Float32Array(words.length))), expected);
  assert.deepEqual(bitsOf(widen('f16', words)), expected);
});

test('bf16 widening: every pattern is the high half of its f32, on both paths', () => {
  const simd = widenHalf('bf16', ALL, new Float32Array(65536));
  const js = widen('bf16', ALL);
  const expected = Uint32Array.from(ALL, (h) => (h << 16) >>> 0);
  assert.deepEqual(bitsOf(simd), expected);
  assert.deepEqual(bitsOf(js), expected);
  for (let h = 0; h < 65536; h += 257) assert.ok(Object.is(simd[h], bf16ToF32(h)) || Number.isNaN(simd[h]));
});

test('widening lengths off the kernel step, across blocks, into a longer output left untouched beyond', () => {
  for (const n of [1, 3, 7, 8, 9, 64, 1000, 43_691, 100_003]) {
    const words = Uint16Array.from({ length: n }, (_, i) => (i * 40503 + 7) & 0xffff);
    for (const dtype of ['f16', 'bf16'] as const) {
      const out = new Float32Array(n + 5).fill(42);
      const got = widenHalf(dtype, words, out);
      assert.equal(got.length, n);
      assert.equal(got.buffer, out.buffer);
      assert.deepEqual(bitsOf(got), bitsOf(widen(dtype, words)), `${dtype}, ${n} words`);
      assert.deepEqual(Array.from(out.subarray(n)), [42, 42, 42, 42, 42]);
    }
  }
});

// ---- Narrowing (the cache's store): an independent reference in f64 arithmetic.

/** Round-half-even of an f64 that is an integer or a half-integer apart from it. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const r = x - f;
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * The value a float format with `mantissaBits`, minimum normal exponent `minExp` and maximum finite value `max`
 * gives an f32 value `x` under round-to-nearest-even (the quantum of x's binade, fixed below the normal range).
 */
function referenceRound(x: number, mantissaBits: number, minExp: number, max: number): number {
  if (Number.isNaN(x) || x === 0 || !Number.isFinite(x)) return x;
  const a = Math.abs(x);
  const exp = Math.max(minExp, Math.floor(Math.log2(a)));
  const quantum = 2 ** (exp - mantissaBits);
  const r = roundHalfEven(a / quantum) * quantum; // a/quantum is exact: a power-of-two division
  const overflow = max + quantum / 2; // beyond max's half-way point (ties to the even infinity)
  const v = a >= overflow && exp >= Math.floor(Math.log2(max)) ? Infinity : r;
  return x < 0 ? -v : v === 0 ? 0 : v;
}
const f16Ref = (x: number) => referenceRound(x, 10, -14, 65504);
const bf16Ref = (x: number) => referenceRound(x, 7, -126, fromBits(0x7f7f0000));

/** Test inputs: every f16 value and the midpoints (ties) and near-midpoints around it, plus random f32 patterns. */
function inputs(widenBits: (h: number) => number, infinity: number): Float32Array {
  const xs: number[] = [];
  for (let h = 0; h < infinity; h++) {
    const lo = fromBits(widenBits(h));
    const hi = fromBits(widenBits(h + 1));
    const mid = (lo + hi) / 2; // exactly an f32 for both formats
    xs.push(lo, mid, -mid, fromBits(f32Bits(mid) + 1), fromBits(f32Bits(mid) - 1));
  }
  const rng = new Random(12345);
  for (let i = 0; i < 200_000; i++) xs.push(fromBits(Math.floor(rng.next() * 2 ** 32)));
  xs.push(0, -0, Infinity, -Infinity, NaN, 65504, 65519.99, 65520, 65536, 1e38, 3.4028234663852886e38, 2 ** -25, 2 ** -24, 3 * 2 ** -26, 2 ** -149);
  return Float32Array.from(xs);
}

test('f16 narrowing rounds to nearest even: ties, subnormals, overflow at 65520, NaN', () => {
  const xs = inputs(f16BitsToF32Bits, 0x7c00);
  const words = narrow('f16', xs);
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i];
    const got = f16ToF32(words[i]);
    const want = f16Ref(x);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(got) && (words[i] & 0x7c00) === 0x7c00 && (words[i] & 0x3ff) !== 0, `NaN ${x}`);
    else assert.ok(Object.is(got, want), `${x} (0x${f32Bits(x).toString(16)}) → ${got}, want ${want}`);
  }
  // Spot checks of the rule itself.
  assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00); // tie, down to even
  assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02); // tie, up to even
  assert.equal(f32ToF16(2 ** -25), 0x0000); // half the smallest subnormal: to even zero
  assert.equal(f32ToF16(3 * 2 ** -25), 0x0002);
  assert.equal(f32ToF16(65519), 0x7bff);
  assert.equal(f32ToF16(65520), 0x7c00);
  assert.equal(f32ToF16(-1e9), 0xfc00);
  for (const bits of [0x7fc00000, 0x7fffffff, 0xffffffff, 0x7fc00001]) {
    const w = f32ToF16(fromBits(bits));
    assert.equal(w & 0x7c00, 0x7c00);
    assert.notEqual(w & 0x3ff, 0);
    assert.equal(w & 0x8000, (bits >>> 16) & 0x8000);
  }
});

test('bf16 narrowing rounds to nearest even: ties, subnormals, overflow to infinity, NaN stays NaN', () => {
  const xs = inputs((h) => (h << 16) >>> 0, 0x7f80);
  const words = narrow('bf16', xs);
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i];
    const got = bf16ToF32(words[i]);
    const want = bf16Ref(x);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(got), `NaN ${x}`);
    else assert.ok(Object.is(got, want), `${x} (0x${f32Bits(x).toString(16)}) → ${got}, want ${want}`);
  }
  assert.equal(f32ToBf16(fromBits(0x3f808000)), 0x3f80); // tie, down to even
  assert.equal(f32ToBf16(fromBits(0x3f818000)), 0x3f82); // tie, up to even
  assert.equal(f32ToBf16(fromBits(0x7f7f8000)), 0x7f80); // past the largest finite: infinity
  // NaNs stay NaN (quiet, sign kept), even those whose payload would carry out of the exponent when rounded.
  for (const bits of [0x7fc00000, 0x7fffffff, 0xffffffff, 0x7fc00001, 0xffc0ffff]) {
    const w = f32ToBf16(fromBits(bits));
    assert.equal(w & 0x7f80, 0x7f80, `0x${bits.toString(16)} → 0x${w.toString(16)}`);
    assert.notEqual(w & 0x7f, 0);
    assert.equal(w & 0x8000, (bits >>> 16) & 0x8000);
  }
});
