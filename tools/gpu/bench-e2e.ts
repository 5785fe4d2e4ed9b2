/**
 * Attend's side of tools/gpu/bench.sh: generate() on the CUDA backend with the checkpoint's bf16 weights (and a bf16
 * KV cache): the prompt prefilled in one forward, then --decode greedy tokens (end-of-sequence ignored), each one's
 * logits read back as a generation loop does. Per length: full KV, and SnapKV and StreamingLLM keeping 25% of it
 * (kvpress's ratio 0.75), with the KV bytes held at the end. Prints a table with transformers' figures (full KV)
 * from --torch and the ratios. ATTEND_CUDA_PROFILE=1 adds where the time went.
 */
import { readFileSync } from 'node:fs';
import { CudaBackend } from '../../src/backend/cuda/index.js';
import { cpuBackend } from '../../src/backend/cpu/index.js';
import { generate } from '../../src/generate/generate.js';
import { loadModel } from '../../src/models/load.js';
import { createPress } from '../../src/presses/registry.js';

const arg = (name: string, dflt?: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const list = (name: string) => {
  const out: string[] = [];
  for (let i = process.argv.indexOf(`--${name}`) + 1; i > 0 && i < process.argv.length && !process.argv[i].startsWith('--'); i++) out.push(process.argv[i]);
  return out;
};
const lengths = list('lengths').map(Number);
const methods = list('methods').length ? list('methods') : ['full', 'snapkv', 'streaming-llm'];
const decode = Number(arg('decode', '64'));
const torch = arg('torch') ? JSON.parse(readFileSync(arg('torch')!, 'utf8')) : { rows: [] };
// --device cpu: the same table on the CPU backend (a smoke test of this script where there is no GPU).
const cuda = arg('device', 'cuda') === 'cuda' ? new CudaBackend() : undefined;
const backend = cuda ?? cpuBackend;
const t0 = performance.now();
const lm = loadModel(arg('model')!, { backend });
console.log(`loaded ${arg('model')} in ${((performance.now() - t0) / 1000).toFixed(1)} s${cuda ? `; weights on the device ${(cuda.ctx.alloc.usedBytes / 2 ** 30).toFixed(2)} GiB` : ''}`);
console.log('length | method | Attend prefill tok/s | torch | ratio | Attend decode tok/s | torch | ratio | KV MiB held');
for (const n of lengths) {
  const ids = Array.from({ length: n }, (_, i) => 1 + ((i * 7919) % (lm.config.vocabSize - 1)));
  for (const method of methods) {
    let r = undefined as Awaited<ReturnType<typeof generate>> | undefined;
    for (let rep = 0; rep < 2; rep++) {
      r = undefined;
      r = await generate(lm, ids, {
        maxNewTokens: decode, temperature: 0, eosTokenIds: [], prefillChunk: n,
        ...(method === 'full' ? {} : { compression: { press: createPress(method, {}), budget: { ratio: 0.75 } } }),
      });
    }
    const prefill = n / (r!.prefillMs / 1000);
    const steps = (r!.newTokens - 1) / (r!.decodeMs / 1000);
    const t = method === 'full' ? torch.rows.find((x: { length: number }) => x.length === n) ?? {} : {};
    const ratio = (x: number, y?: number) => (y ? (x / y).toFixed(2) : '-');
    console.log(`${n} | ${method} | ${prefill.toFixed(0)} | ${t.prefill_tps?.toFixed(0) ?? '-'} | ${ratio(prefill, t.prefill_tps)} | ${steps.toFixed(1)} | ${t.decode_tps?.toFixed(1) ?? '-'} | ${ratio(steps, t.decode_tps)} | ${(r!.cacheBytes / 2 ** 20).toFixed(0)}`);
  }
}
if (cuda?.ctx.driver.profile) {
  const rows = [...cuda.ctx.driver.timings].sort((a, b) => b[1].ms - a[1].ms);
  const total = rows.reduce((n, [, t]) => n + t.ms, 0);
  console.log(`profile (every launch synchronised, launch overhead included): ${total.toFixed(0)} ms in all`);
  for (const [name, t] of rows.slice(0, 20)) console.log(`  ${name.padEnd(20)} ${t.calls} calls ${t.ms.toFixed(1)} ms (${((1000 * t.ms) / t.calls).toFixed(1)} µs each)`);
}
if (cuda) console.log(`kernels compiled in ${cuda.ctx.compileSeconds.toFixed(1)} s (${cuda.ctx.cachedKernels} from the cache); peak device memory in use ${(cuda.ctx.alloc.peakUsedBytes / 2 ** 30).toFixed(2)} GiB`);
