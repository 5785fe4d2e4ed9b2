/**
 * Finding CUDA without a GPU: the folders searched (ATTEND_CUDA_LIBS first, then CUDA_HOME/CUDA_PATH, toolkits, NVIDIA's
 * pip-wheel folders in a virtual environment), the one-line error naming where it looked, and NVRTC compiling the
 * kernel sources where an NVRTC is installed (skipped otherwise; the GPU suite loads and runs them).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadLibrary, searchFolders } from '../../src/backend/cuda/libraries.js';
import { kernelSource, Nvrtc } from '../../src/backend/cuda/nvrtc.js';

test('CUDA libraries are looked for in ATTEND_CUDA_LIBS, CUDA_HOME and pip-wheel folders, in that order', () => {
  const root = mkdtempSync(join(tmpdir(), 'attend-cuda-'));
  try {
    const own = join(root, 'own');
    const home = join(root, 'toolkit');
    const venv = join(root, 'venv');
    const wheel = join(venv, 'lib/python3.12/site-packages/nvidia/cublas/lib');
    for (const d of [own, join(home, 'lib64'), wheel]) mkdirSync(d, { recursive: true });
    const env = { ATTEND_CUDA_LIBS: own, CUDA_HOME: home, VIRTUAL_ENV: venv };
    const folders = searchFolders(env);
    // Toolkits installed on this machine (/usr/local/cuda*) come between CUDA_HOME and the wheels.
    assert.deepEqual(folders.slice(0, 2), [own, join(home, 'lib64')]);
    assert.ok(folders.indexOf(wheel) > 1, `${wheel} among ${folders.join(', ')}`);
    assert.ok(!folders.includes(join(home, 'targets/x86_64-linux/lib')), 'folders that do not exist are left out');
    // A file that is not a loadable library is passed over: what loads comes from elsewhere (this machine's own
    // cuBLAS), or the error names where it looked, in one line.
    writeFileSync(join(wheel, 'libcublas.so.12'), 'not a library');
    try {
      const found = loadLibrary('cublas', env);
      assert.notEqual(found.path, join(wheel, 'libcublas.so.12'));
    } catch (e) {
      assert.match((e as Error).message, /^cuBLAS not found \(looked in .*own.*toolkit\/lib64.*nvidia\/cublas\/lib.*ATTEND_CUDA_LIBS/);
      assert.ok(!(e as Error).message.includes('\n'));
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('NVRTC compiles every kernel source for sm_90 (where an NVRTC is installed)', (t) => {
  let nvrtc: Nvrtc;
  try {
    nvrtc = new Nvrtc();
  } catch (e) {
    return t.skip(`no NVRTC here: ${(e as Error).message}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'attend-nvrtc-'));
  const before = process.env.ATTEND_CACHE_DIR;
  process.env.ATTEND_CACHE_DIR = dir;
  try {
    for (const [file, defines] of [
      ['elementwise.cu', {}],
      ['kv.cu', { KV_T: 1 }],
      ['attention.cu', { HEAD_DIM: 128, GROUP: 4, KV_T: 1, SIGMOID: 0 }],
      ['attention.cu', { HEAD_DIM: 80, GROUP: 1, KV_T: 0, SIGMOID: 1 }],
      ['flash.cu', { HEAD_DIM: 64, GROUP: 8, KV_T: 2 }],
    ] as const) {
      const built = nvrtc.compile(file, kernelSource(file), 90, defines);
      assert.ok(built.image.length > 1000 && !built.cached, `${file} ${JSON.stringify(defines)}`);
      assert.ok(nvrtc.compile(file, kernelSource(file), 90, defines).cached, 'the second build comes from the cache');
    }
    assert.throws(() => nvrtc.compile('broken.cu', 'extern "C" __global__ void k() { undefined_name(); }', 90), /NVRTC could not compile broken\.cu.*undefined/);
  } finally {
    if (before === undefined) delete process.env.ATTEND_CACHE_DIR;
    else process.env.ATTEND_CACHE_DIR = before;
    rmSync(dir, { recursive: true, force: true });
  }
});
