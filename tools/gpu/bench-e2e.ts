/**
 * Attend's side of tools/gpu/bench.sh: prefill of N random ids (the same generator seed as the PyTorch side does
 * not matter: speed does not depend on the ids) in one forward, then greedy decode steps, on the CUDA backend with
 * the checkpoint's bf16 weights; the logits of each step are read back (the token leaves the device), as a
 * generation loop does. Prints a table with transformers' figures from --torch and the ratios.
 */
import { readFileSync } from 'node:fs';
import { CudaBackend } from '../../src/backend/cuda/index.js';
import { loadModel } from '../../src/models/load.js';

const arg = (name: string, dflt?: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const lengths: number[] = [];
for (let i = process.argv.indexOf('--lengths') + 1; i > 0 && i < process.argv.length && !process.argv[i].startsWith('--'); i++) lengths.push(Number(process.argv[i]));
const decode = Number(arg('decode', '64'));
const torch = arg('torch') ? JSON.parse(readFileSync(arg('torch')!, 'utf8')) : { rows: [] };
const backend = new CudaBackend();
const t0 = performance.now();
const lm = loadModel(arg('model')!, { backend });
console.log(`loaded ${arg('model')} in ${((performance.now() - t0) / 1000).toFixed(1)} s; device memory used ${(backend.ctx.alloc.usedBytes / 2 ** 30).toFixed(2)} GiB`);
const argmax = (x: Float32Array) => x.reduce((best, v, i, a) => (v > a[best] ? i : best), 0);
console.log('length | Attend prefill tok/s | torch | ratio | Attend decode tok/s | torch | ratio');
for (const n of lengths) {
  let prefill = 0;
  let steps = 0;
  for (let rep = 0; rep < 2; rep++) {
    const cache = lm.model.makeCache();
    const ids = Array.from({ length: n }, (_, i) => 1 + ((i * 7919) % (lm.config.vocabSize - 1)));
    const a = performance.now();
    let logits = backend.read(lm.model.forward(ids, cache, { lastOnly: true }));
    const b = performance.now();
    for (let s = 0; s < decode; s++) logits = backend.read(lm.model.forward([argmax(logits)], cache, { lastOnly: true }));
    const c = performance.now();
    prefill = n / ((b - a) / 1000);
    steps = decode / ((c - b) / 1000);
  }
  const t = torch.rows.find((r: { length: number }) => r.length === n) ?? {};
  const ratio = (x: number, y?: number) => (y ? (x / y).toFixed(2) : '-');
  console.log(`${n} | ${prefill.toFixed(0)} | ${t.prefill_tps?.toFixed(0) ?? '-'} | ${ratio(prefill, t.prefill_tps)} | ${steps.toFixed(1)} | ${t.decode_tps?.toFixed(1) ?? '-'} | ${ratio(steps, t.decode_tps)}`);
}
console.log(`kernels compiled in ${backend.ctx.compileSeconds.toFixed(1)} s (${backend.ctx.cachedKernels} from the cache); peak device memory in use ${(backend.ctx.alloc.peakUsedBytes / 2 ** 30).toFixed(2)} GiB`);
