/**
 * Attention kernels alone on the GPU, beside PyTorch's scaled_dot_product_attention measured in the same run
 * (bench_attention_torch.py, flash backend): causal prefill of N query rows over N cached entries (TFLOP/s, counting
 * the causal half: 2·2·N²/2·heads·headDim) and one decode row over N entries (GB/s of keys and values read).
 * Llama-3.1-8B's attention shape: 32 query heads, 8 KV heads, head size 128, bf16 cache.
 *   node --import tsx tools/gpu/bench-attention.ts --lengths 4096 16384 --torch /tmp/attn.json
 */
import { readFileSync } from 'node:fs';
import { CudaBackend } from '../../src/backend/cuda/index.js';
import { uniformArray } from '../../src/generate/random.js';
import { Tensor } from '../../src/tensor/tensor.js';

const lengths: number[] = [];
for (let i = process.argv.indexOf('--lengths') + 1; i > 0 && i < process.argv.length && !process.argv[i].startsWith('--'); i++) lengths.push(Number(process.argv[i]));
const ti = process.argv.indexOf('--torch');
const torch = ti > 0 ? JSON.parse(readFileSync(process.argv[ti + 1], 'utf8')) : { rows: [] };
const [heads, kvHeads, d] = [32, 8, 128];
const b = new CudaBackend();
const time = (fn: () => void, reps: number) => {
  fn();
  b.ctx.driver.synchronize();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  b.ctx.driver.synchronize();
  return (performance.now() - t0) / reps / 1000;
};
console.log('N | prefill TFLOP/s Attend | SDPA | ratio | decode GB/s Attend | SDPA | ratio');
for (const n of lengths) {
  const cache = b.createCache({ numLayers: 1, numKvHeads: kvHeads, headDim: d }, 'bf16');
  const positions = Int32Array.from({ length: n }, (_, i) => i);
  // Keys and values in slices of 4096 rows (the host arrays stay small).
  for (let s = 0; s < n; s += 4096) {
    const m = Math.min(4096, n - s);
    b.appendKv(cache.layers[0], b.upload([m, kvHeads * d], uniformArray(m * kvHeads * d, s + 1)), b.upload([m, kvHeads * d], uniformArray(m * kvHeads * d, s + 2)), positions.subarray(s, s + m));
  }
  const q = b.upload([n, heads * d], uniformArray(n * heads * d, 7));
  const opts = { layer: 0, scale: 1 / Math.sqrt(d), window: null };
  const prefill = time(() => b.scope(() => { b.attention(q, cache.layers[0], positions, opts); }), n >= 65536 ? 2 : 5);
  const q1 = b.upload([1, heads * d], uniformArray(heads * d, 8));
  const last = positions.subarray(n - 1);
  const decode = time(() => b.scope(() => { b.attention(q1, cache.layers[0], last, opts); }), 50);
  const tflops = (2 * 2 * n * n * 0.5 * heads * d) / prefill / 1e12;
  const gbs = (n * kvHeads * d * 2 * 2) / decode / 1e9;
  const t = torch.rows.find((r: { length: number }) => r.length === n) ?? {};
  const r = (x: number, y?: number) => (y ? (x / y).toFixed(2) : '-');
  console.log(`${n} | ${tflops.toFixed(1)} | ${t.prefill_tflops?.toFixed(1) ?? '-'} | ${r(tflops, t.prefill_tflops)} | ${gbs.toFixed(0)} | ${t.decode_gbs?.toFixed(0) ?? '-'} | ${r(gbs, t.decode_gbs)}`);
}
