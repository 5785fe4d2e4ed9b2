/**
 * Activation buffers recycled through backend scopes: what a scope returns stays intact, everything else is reused,
 * and models give the same logits on consecutive forwards as on fresh memory.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { BufferPool } from '../../src/backend/cpu/buffer-pool.js';
import { CpuBackend } from '../../src/backend/cpu/index.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { PARITY_DIR } from '../helpers/fixtures.js';

test('outside a scope every allocation is a fresh zeroed array', () => {
  const pool = new BufferPool();
  const a = pool.alloc(100);
  a.fill(7);
  const b = pool.alloc(100);
  assert.notEqual(a.buffer, b.buffer);
  assert.deepEqual(b, new Float32Array(100));
});

test('a scope recycles the buffers it handed out, and a later scope reuses them', () => {
  const pool = new BufferPool();
  let first: ArrayBufferLike | undefined;
  pool.scope(() => {
    const a = pool.alloc(1000);
    const b = pool.alloc(1000);
    assert.notEqual(a.buffer, b.buffer, 'two live allocations never share memory');
    assert.equal(a.length, 1000);
    first = a.buffer;
  });
  pool.scope(() => {
    const buffers = [pool.alloc(1000).buffer, pool.alloc(900).buffer];
    assert.ok(buffers.includes(first!), 'a buffer of the same size class comes back');
  });
});

test('tensors a scope returns survive it and are never handed out again', () => {
  const pool = new BufferPool();
  const kept = pool.scope(() => {
    const scratch = pool.alloc(64);
    scratch.fill(1);
    const t = new Tensor([8, 8], pool.alloc(64));
    t.f32.fill(3);
    return t;
  });
  for (let i = 0; i < 3; i++) {
    pool.scope(() => {
      const a = pool.alloc(64);
      const b = pool.alloc(64);
      assert.notEqual(a.buffer, kept.data.buffer);
      assert.notEqual(b.buffer, kept.data.buffer);
      a.fill(-1);
      b.fill(-1);
    });
  }
  assert.ok(kept.f32.every((v) => v === 3));
});

test('a nested scope passes what it returns to the enclosing one, which recycles it at its own end', () => {
  const pool = new BufferPool();
  let inner: Tensor | undefined;
  pool.scope(() => {
    inner = pool.scope(() => new Tensor([4], pool.alloc(4)));
    inner.f32.fill(5);
    const other = pool.alloc(4);
    assert.notEqual(other.buffer, inner.data.buffer, 'still live in the outer scope');
  });
  const again: ArrayBufferLike[] = [];
  pool.scope(() => {
    again.push(pool.alloc(4).buffer, pool.alloc(4).buffer);
  });
  assert.ok(again.includes(inner!.data.buffer), 'recycled once the outer scope ended');
});

test('a scope that throws recycles nothing', () => {
  const pool = new BufferPool();
  let leaked: Float32Array | undefined;
  assert.throws(() =>
    pool.scope(() => {
      leaked = pool.alloc(32);
      throw new Error('boom');
    }),
  );
  pool.scope(() => assert.notEqual(pool.alloc(32).buffer, leaked!.buffer));
});

/** The CPU backend with scopes that recycle nothing: every op gets a new zeroed array, as before pooling. */
class UnpooledBackend extends CpuBackend {
  override scope<R extends Tensor | Tensor[] | void>(fn: () => R): R {
    return fn();
  }
}

for (const name of ['llama-gqa-tied', 'qwen3-norm', 'gpt2']) {
  test(`${name}: logits survive later forwards and match fresh memory`, () => {
    const reused = loadModel(join(PARITY_DIR, name), { backend: new CpuBackend() });
    const ids = [[1, 5, 9, 33, 7, 100, 42], [2, 8, 300, 11], [17]];
    const cache = newCache(reused.config);
    const logits = ids.map((step) => reused.model.forward(step, cache));
    const copies = logits.map((t) => t.f32.slice());
    // Another sequence through the same (now warm) pool must not touch the logits handed out before.
    reused.model.forward([4, 4, 4, 4, 4, 4, 4, 4, 4], newCache(reused.config));
    logits.forEach((t, i) => assert.deepEqual(t.f32, copies[i], `logits of step ${i} changed`));
    // The same steps with a new zeroed array per op give identical results.
    const fresh = loadModel(join(PARITY_DIR, name), { backend: new UnpooledBackend() });
    const freshCache = newCache(fresh.config);
    ids.forEach((step, i) => assert.deepEqual(fresh.model.forward(step, freshCache).f32, copies[i], `step ${i}`));
  });
}
