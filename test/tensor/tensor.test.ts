/** Tensor construction: shape against storage, and a dtype that 16-bit storage must state. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Tensor } from '../../src/tensor/tensor.js';

test('f32 storage takes its dtype from the array', () => {
  const t = new Tensor([2, 3], new Float32Array(6));
  assert.equal(t.dtype, 'f32');
  assert.equal(t.reshape([3, 2]).dtype, 'f32');
  assert.throws(() => new Tensor([2, 2], new Float32Array(6)), /shape \[2, 2\] holds 4 elements, data has 6/);
});

test('16-bit storage needs its dtype: f16 and bf16 words are not told apart by the array', () => {
  // @ts-expect-error: the dtype is required for Uint16Array storage
  assert.throws(() => new Tensor([4], new Uint16Array(4)), /16-bit storage needs its dtype: f16 or bf16/);
  for (const dtype of ['f16', 'bf16'] as const) {
    const t = new Tensor([2, 2], new Uint16Array(4), dtype);
    assert.equal(t.dtype, dtype);
    assert.equal(t.reshape([4]).dtype, dtype);
    assert.throws(() => t.f32, new RegExp(`expected an f32 tensor, got ${dtype}`));
  }
  assert.throws(() => new Tensor([4], new Uint16Array(4), 'f32'), /dtype f32 does not match its storage/);
  assert.throws(() => new Tensor([4], new Float32Array(4), 'bf16'), /dtype bf16 does not match its storage/);
});
