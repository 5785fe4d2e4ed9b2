/**
 * The CUDA backend's host side, without a GPU: a recording stand-in for the driver (every launch, copy and wait is
 * logged, kernels do nothing), the real allocator, argument writer, kernel lookup and KV bookkeeping, on attend-mini.
 * What it checks is what the design promises and a GPU run cannot easily show: no device-to-host copy and no wait
 * inside a forward (only reading the logits waits), the kernels each phase takes (tensor cores for a 16-bit cache's
 * prefill, the full-width decode kernel and matrix–vector products for a decode step), and device memory that stays
 * bounded over a generation (each step's logits given back at once). test/gpu/cuda.test.ts checks the numbers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readOnce } from '../../src/backend/backend.js';
import { CudaContext } from '../../src/backend/cuda/context.js';
import { Args } from '../../src/backend/cuda/driver.js';
import { CudaBackend } from '../../src/backend/cuda/index.js';
import { DeviceAllocator } from '../../src/backend/cuda/memory.js';
import { loadModel } from '../../src/models/load.js';

interface Log {
  launches: string[];
  downloads: number;
  waits: number;
}

function fakeBackend(): { backend: CudaBackend; log: Log } {
  const log: Log = { launches: [], downloads: 0, waits: 0 };
  let next = 1 << 20;
  const names = new Map<unknown, string>();
  const args = new Args();
  const driver = {
    info: { name: 'stand-in', computeCapability: 90, smCount: 132, totalBytes: 2 ** 36, driverVersion: 13000 },
    profile: false,
    names,
    timings: new Map(),
    stream: null,
    alloc: (n: number) => {
      const p = next;
      next += Math.ceil(n / 512) * 512;
      return p;
    },
    free() {},
    memInfo: () => [2 ** 35, 2 ** 36],
    upload() {},
    download(dst: ArrayBufferView) {
      log.downloads++;
      new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).fill(0);
    },
    copy() {},
    zero() {},
    synchronize() {
      log.waits++;
    },
    loadModule: () => ({}),
    getFunction: (_m: unknown, name: string) => ({ name }),
    allowSharedMemory() {},
    args: () => args.reset(),
    launch(fn: unknown) {
      log.launches.push(names.get(fn) ?? String((fn as { name?: string }).name));
    },
  };
  const ctx = Object.create(CudaContext.prototype) as CudaContext;
  Object.assign(ctx, {
    driver,
    alloc: new DeviceAllocator(driver as never),
    cublas: { linear: () => log.launches.push('cublas') },
    nvrtc: { version: 'stand-in', path: '', compile: () => ({ image: new Uint8Array(1), kind: 'cubin', cached: true }) },
    heads: new FinalizationRegistry(() => {}),
    modules: new Map(),
    functions: new Map(),
    byDefines: new WeakMap(),
    compileSeconds: 0,
    cachedKernels: 0,
  });
  return { backend: new CudaBackend({}, ctx), log };
}

const model = new URL('../../models/attend-mini', import.meta.url).pathname;

test('a forward on the CUDA backend copies nothing back and waits for nothing until its logits are read', () => {
  const { backend, log } = fakeBackend();
  const lm = loadModel(model, { backend });
  const cache = lm.model.makeCache();
  assert.equal(cache.dtype, 'bf16', 'bf16 weights kept as stored: the KV cache is bf16 too');
  const prompt = Array.from({ length: 300 }, (_, i) => 1 + ((i * 37) % 16000));
  const [d0, w0] = [log.downloads, log.waits];
  const logits = lm.model.forward(prompt, cache, { lastOnly: true });
  assert.deepEqual([log.downloads - d0, log.waits - w0], [0, 0], 'prefill: no copy back, no wait');
  const prefillKernels = new Set(log.launches);
  assert.ok(prefillKernels.has('flash_prefill') && prefillKernels.has('cublas'), [...prefillKernels].join(', '));
  readOnce(backend, logits);
  assert.equal(log.downloads - d0, 1, 'reading the logits is the one copy back');
  log.launches.length = 0;
  const d1 = log.downloads;
  const step = lm.model.forward([5], cache, { lastOnly: true });
  assert.equal(log.downloads - d1, 0, 'decode: no copy back before the logits are read');
  const decodeKernels = new Set(log.launches);
  for (const k of ['attend_decode', 'attend_combine', 'gemv_1', 'kv_append']) assert.ok(decodeKernels.has(k), `${k} in ${[...decodeKernels].join(', ')}`);
  assert.ok(!decodeKernels.has('cublas') && !decodeKernels.has('narrow_1'), 'decode products read the bf16 weights directly');
  readOnce(backend, step);
  assert.equal(cache.layers[0].heads[0].length, 301);
});

test('device memory stays bounded over a generation: each step gives its logits back (Backend.release)', () => {
  const { backend } = fakeBackend();
  const lm = loadModel(model, { backend });
  const cache = lm.model.makeCache();
  readOnce(backend, lm.model.forward([1, 2, 3, 4], cache, { lastOnly: true }));
  const used = () => backend.ctx.alloc.usedBytes;
  const at = (n: number) => {
    for (let i = 0; i < n; i++) readOnce(backend, lm.model.forward([7], cache, { lastOnly: true }));
    return used() - cache.bytes();
  };
  const first = at(5);
  const later = at(60);
  // Equal but for the allocator's size classes around the growing KV blocks (a few KiB); one step's logits are 64 KiB.
  assert.ok(Math.abs(later - first) < 2 ** 16, `memory besides the KV cache: ${first} bytes after 5 steps, ${later} after 65`);
  // Without giving them back, every step would keep its logits until the garbage collector ran.
  const before = used();
  for (let i = 0; i < 10; i++) backend.read(lm.model.forward([7], cache, { lastOnly: true }));
  assert.ok(used() - before >= 10 * 4 * lm.config.vocabSize, 'unreleased logits stay held');
});
