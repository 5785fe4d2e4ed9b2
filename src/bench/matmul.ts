/**
 * Matrix-multiply benchmark: every available path of our matmul and onnxruntime-node (one MatMul node, 2 intra-op
 * threads) on the same shapes in the same run, plus the machine's memory bandwidth (decode is bandwidth-bound).
 */
import { matmulBackendInfo, matmulPathError, matmulReady, matmulTransB, selectMatmul, type MatmulPath } from '../backend/cpu/matmul.js';
import { openBlas } from '../backend/cpu/matmul/openblas.js';
import { uniformArray } from '../generate/random.js';
import { matmulModel } from './onnx.js';
import type { BenchOptions, Row } from './report.js';
import { measure, measureBest, sleep } from './timing.js';

type Ort = typeof import('onnxruntime-node');

/** Interleaved measurement rounds per contender and case. */
const ROUNDS = 3;

interface Case {
  label: string;
  m: number;
  k: number;
  n: number;
  /** Distinct weight matrices cycled through, so they do not stay in cache (a model's layers in decode). */
  weights: number;
}

export const MATMUL_CASES: Case[] = [
  { label: '16×16, M=1 (call overhead)', m: 1, k: 16, n: 16, weights: 1 },
  { label: '512×1536, M=1', m: 1, k: 512, n: 1536, weights: 1 },
  { label: '512×1536, M=64', m: 64, k: 512, n: 1536, weights: 1 },
  { label: '512×1536, M=512', m: 512, k: 512, n: 1536, weights: 1 },
  { label: '2048×2048, M=1', m: 1, k: 2048, n: 2048, weights: 1 },
  { label: '2048×2048, M=1, 16 weights cycled (256 MiB)', m: 1, k: 2048, n: 2048, weights: 16 },
];

function transpose(b: Float32Array, n: number, k: number): Float32Array {
  const t = new Float32Array(k * n);
  for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) t[p * n + j] = b[j * k + p]!;
  return t;
}

async function loadOrt(): Promise<Ort | string> {
  try {
    return await import('onnxruntime-node');
  } catch (e) {
    return `onnxruntime-node not loadable: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
  }
}

/** Our matmul (each available path, or opts.paths) and onnxruntime-node on MATMUL_CASES. */
export async function benchMatmul(opts: BenchOptions, cases: Case[] = MATMUL_CASES): Promise<Row[]> {
  const all: MatmulPath[] = ['openblas', 'wasm-simd', 'js'];
  const paths = all.filter((p) => (!opts.paths || opts.paths.includes(p)) && matmulPathError(p) === undefined);
  const ort = opts.noOrt ? 'skipped' : await loadOrt();
  const rows: Row[] = [];
  for (const c of cases) {
    const flops = 2 * c.m * c.n * c.k;
    const a = uniformArray(c.m * c.k, 1);
    // Scaled by 1/√k so that chained products (the ORT model for cycled weights) stay of order one.
    const bs = Array.from({ length: c.weights }, (_, i) => uniformArray(c.n * c.k, 100 + i).map((x) => x / Math.sqrt(c.k)));
    const out = new Float32Array(c.m * c.n);
    const caseRows: Row[] = [];
    const row = (impl: string, threads: number, ms: number, note?: string): Row => ({
      section: 'matmul',
      case: c.label,
      impl,
      threads,
      ms,
      gflops: flops / ms / 1e6,
      gbps: c.m === 1 ? (c.n * c.k * 4) / ms / 1e6 : undefined,
      note,
    });
    interface Contender {
      impl: string;
      threads: number;
      /** Per-call divisor of the measured time (the ORT chain runs every weight in one call). */
      per: number;
      enter(): Promise<void>;
      call(): unknown;
      minWarmup: number;
      budgetMs: number;
    }
    const contenders: Contender[] = [];
    for (const path of paths) {
      let w = 0;
      contenders.push({
        impl: path,
        threads: 0,
        per: 1,
        async enter() {
          selectMatmul(path);
          await matmulReady();
          this.threads = matmulBackendInfo().threads;
        },
        call: () => matmulTransB(a, bs[w++ % bs.length]!, out, c.m, c.n, c.k),
        minWarmup: 2 * bs.length + 2, // the wasm path packs each weight on its first two calls
        budgetMs: path === 'js' ? Math.min(opts.budgetMs, 1000) : opts.budgetMs,
      });
    }
    let session: import('onnxruntime-node').InferenceSession | undefined;
    if (typeof ort !== 'string') {
      // One session; cycled weights become a chain of MatMul nodes (one thread pool, as in a model), timed per node.
      const model = matmulModel(c.m, c.k, c.n, bs.map((b) => transpose(b, c.n, c.k)));
      const s = await ort.InferenceSession.create(model, {
        intraOpNumThreads: 2,
        interOpNumThreads: 1,
        executionProviders: ['cpu'],
        graphOptimizationLevel: 'all',
      });
      session = s;
      const feeds = { x: new ort.Tensor('float32', a, [c.m, c.k]) };
      contenders.push({
        impl: 'onnxruntime',
        threads: 2,
        per: bs.length,
        enter: async () => undefined,
        call: () => s.run(feeds),
        minWarmup: 3,
        budgetMs: opts.budgetMs,
      });
    }
    // Rounds interleave the contenders so that a burst of load from elsewhere hits one round, not one contender;
    // each keeps its best round (every round is itself a median).
    const best = new Map<Contender, number>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const ct of contenders) {
        await ct.enter();
        const t = await measure(() => ct.call(), { ...opts, minWarmup: ct.minWarmup, budgetMs: ct.budgetMs / ROUNDS });
        best.set(ct, Math.min(best.get(ct) ?? Infinity, t.ms / ct.per));
        await sleep(100); // let spinning pool threads go idle before the next contender
      }
    }
    await session?.release();
    for (const ct of contenders) caseRows.push(row(ct.impl, ct.threads, best.get(ct)!));
    const ortRow = caseRows.find((r) => r.impl === 'onnxruntime');
    if (ortRow) for (const r of caseRows) if (r !== ortRow) r.vsOrt = r.gflops! / ortRow.gflops!;
    if (typeof ort === 'string' && c === cases[0]) {
      caseRows.push({ section: 'matmul', case: c.label, impl: 'onnxruntime', threads: 0, ms: NaN, note: ort });
    }
    rows.push(...caseRows);
  }
  selectMatmul('auto');
  return rows;
}

/** Memory bandwidth over a 256 MiB array: JS read loop, memcpy (TypedArray.set), OpenBLAS sasum when available. */
export async function benchBandwidth(opts: BenchOptions): Promise<Row[]> {
  const bytes = 256 * 2 ** 20;
  const n = bytes / 4;
  const x = uniformArray(n, 7);
  const y = new Float32Array(n).fill(1);
  const rows: Row[] = [];
  const add = (impl: string, threads: number, ms: number, moved: number, note: string) =>
    rows.push({ section: 'bandwidth', case: 'stream 256 MiB', impl, threads, ms, gbps: moved / ms / 1e6, note });
  const budget = { ...opts, budgetMs: Math.min(opts.budgetMs, 2000) };

  let sink = 0;
  const sum = () => {
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let i = 0; i < n; i += 4) {
      s0 += x[i]!;
      s1 += x[i + 1]!;
      s2 += x[i + 2]!;
      s3 += x[i + 3]!;
    }
    sink += s0 + s1 + s2 + s3;
  };
  add('JS loop sum', 1, (await measureBest(sum, budget)).ms, bytes, 'read; limited by JS, not memory');
  add('TypedArray.set (memcpy)', 1, (await measureBest(() => y.set(x), budget)).ms, 2 * bytes, 'read + write');
  const ob = openBlas();
  if (ob) {
    add('OpenBLAS sasum', ob.threads, (await measureBest(() => (sink += ob.sasum(n, x, 1)), budget)).ms, bytes, 'read');
    add('OpenBLAS sdot x·y', ob.threads, (await measureBest(() => (sink += ob.sdot(n / 2, x, 1, y, 1)), budget)).ms, bytes, 'read 2 × 128 MiB');
  }
  if (sink === 0.5) rows.push({ section: 'bandwidth', case: '', impl: '', threads: 0, ms: 0 }); // keeps `sink` live
  return rows;
}
