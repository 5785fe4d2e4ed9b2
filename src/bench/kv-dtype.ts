/**
 * KV storage dtype benchmark: decode tokens/s of attend-mini (ATTEND_BENCH_MODEL=DIR for another checkpoint) with
 * the KV cache held in f32, f16 and bf16 (`--kv-dtype`), each 16-bit row set against the f32 KV path measured in
 * the same run, in interleaved rounds.
 *
 * Decode: 32 tokens, batch 1, after a prompt already in the cache (one f32 prefill outside the timing, its entries
 * stored in each dtype); `forward([id], cache, { lastOnly })` on a clone of that cache, as the model section does
 * (the clone is inside the timing: ~1% of it in f32, half that in 16 bits). A 16-bit cache holds half
 * the bytes; every step the CPU attention widens each head's visible keys and values into f32 scratch (exactly, with
 * the WebAssembly SIMD kernel of src/backend/cpu/convert/) and runs the same f32 kernels as for an f32 cache.
 */
import { join } from 'node:path';
import { matmulBackendInfo } from '../backend/cpu/matmul.js';
import { KVCache } from '../cache/kv-cache.js';
import { prefill } from '../generate/prefill.js';
import { loadModel } from '../models/load.js';
import { newCache } from '../models/model.js';
import type { DType } from '../tensor/dtype.js';
import type { BenchOptions, Row } from './report.js';
import { type Contender, cpuSnapshot, machineLoadRow, race } from './timing.js';
import { hostHead } from '../cache/head-store.js';

export const KV_DTYPES: DType[] = ['f32', 'f16', 'bf16'];
export const KV_DECODE_AFTER = [2048, 4096];
export const KV_DECODE_TOKENS = 32;

const DEFAULT_MODEL = join(import.meta.dirname, '..', '..', 'models', 'attend-mini');

/** The first `n` entries of every head of `source`, stored as `dtype`. */
function prefixCopy(source: KVCache, n: number, dtype: DType): KVCache {
  const copy = new KVCache(source.shape, dtype);
  copy.nextPosition = n;
  source.layers.forEach((layer, l) =>
    layer.heads.forEach((head, h) => hostHead(copy.layers[l].heads[h]).append(head.keys(0, n), head.values(0, n), head.positions.subarray(0, n), 0, head.headDim)),
  );
  return copy;
}

function tokenIds(n: number, vocab: number, seed = 13): number[] {
  return Array.from({ length: n }, (_, i) => (i * 7919 + seed) % vocab);
}

export async function benchKvDtype(opts: BenchOptions, dir = process.env.ATTEND_BENCH_MODEL ?? DEFAULT_MODEL): Promise<Row[]> {
  const section = 'kv-dtype';
  const cpu0 = cpuSnapshot();
  const lm = loadModel(dir);
  const c = lm.config;
  const threads = matmulBackendInfo().threads;
  const contexts = KV_DECODE_AFTER.filter((n) => n + KV_DECODE_TOKENS <= c.maxPositions);
  const prompt = tokenIds(Math.max(...contexts), c.vocabSize);
  const next = tokenIds(KV_DECODE_TOKENS, c.vocabSize, 4242);
  // One f32 prefill of the longest prompt; each case's cache holds its first p0 entries (causal: what a prefill of
  // p0 tokens gives), stored as the case's dtype (rounded on store, as appending does while prefilling).
  const source = newCache(c);
  prefill(lm.model, source, prompt);
  const rows: Row[] = [];
  for (const p0 of contexts) {
    const contenders: (Contender & { dtype: DType; cache: KVCache })[] = KV_DTYPES.map((dtype) => {
      const cache = prefixCopy(source, p0, dtype);
      return {
        dtype,
        cache,
        impl: `${dtype} KV (${matmulBackendInfo().name})`,
        threads,
        call: () => {
          const kv = cache.clone();
          for (const id of next) lm.model.forward([id], kv, { lastOnly: true });
        },
      };
    });
    const times = await race(contenders, opts, false);
    const base = times.get(contenders[0])!;
    for (const ct of contenders) {
      const ms = times.get(ct)!;
      const tps = (KV_DECODE_TOKENS * 1000) / ms;
      const kvMiB = ct.cache.bytes() / 2 ** 20;
      rows.push({
        section,
        case: `decode ${KV_DECODE_TOKENS} after ${p0}`,
        impl: ct.impl,
        threads: ct.threads,
        ms: ms / KV_DECODE_TOKENS,
        note:
          `${tps.toFixed(1)} tok/s; ` +
          (ct.dtype === 'f32' ? 'the peer' : `${(base / ms).toFixed(2)}× f32 KV tok/s (${(ms / base).toFixed(2)}× its time)`) +
          `; KV ${kvMiB.toFixed(1)} MiB at the prompt`,
      });
    }
  }
  const load = machineLoadRow(section, cpu0, 'kv-dtype');
  if (load) rows.push(load);
  return rows;
}
