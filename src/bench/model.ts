/**
 * Model benchmark: prefill and decode tokens/s of a whole model (attend-mini by default; ATTEND_BENCH_MODEL=DIR for
 * another plain Llama), Attend next to onnxruntime-node running the same weights as an ONNX graph
 * (src/bench/onnx-llama.ts) in the same process, with the same number of threads; decode is also set against the
 * machine's measured memory bandwidth (the bytes of weights and KV cache one token must read). A last table splits
 * Attend's forward time by backend operation.
 *
 * - Prefill: Attend's `prefill` (chunks of 512, only the last row's logits), a fresh cache per call; onnxruntime
 *   one `session.run` over the whole prompt from an empty past (graph with last-row logits only).
 * - Decode: 64 tokens, batch 1, after a prompt already in the cache; Attend `forward([id], cache, { lastOnly })`
 *   on a clone of the prefilled cache (the clone is inside the timing, < 1%), onnxruntime one run per token with
 *   the present tensors fed back as past, as transformers.js does.
 */
import { join } from 'node:path';
import type { Backend } from '../backend/backend.js';
import { cpuBackend } from '../backend/cpu/index.js';
import { matmulBackendInfo } from '../backend/cpu/matmul.js';
import type { KVCache } from '../cache/kv-cache.js';
import { prefill } from '../generate/prefill.js';
import type { ModelConfig } from '../models/config.js';
import { readModelConfig } from '../models/families.js';
import { loadModel } from '../models/load.js';
import { newCache } from '../models/model.js';
import { benchBandwidth } from './matmul.js';
import { type OnnxAttention, OrtLlama, type OrtPast } from './onnx-llama.js';
import type { BenchOptions, Row } from './report.js';
import { type Contender, cpuSnapshot, machineLoadRow, race, sleep } from './timing.js';

type Ort = typeof import('onnxruntime-node');

export const PREFILL_LENGTHS = [128, 512, 2048];
export const DECODE_AFTER = [512, 2048];
export const DECODE_TOKENS = 64;

const DEFAULT_MODEL = join(import.meta.dirname, '..', '..', 'models', 'attend-mini');

/** Deterministic token ids spread over the vocabulary (speed does not depend on which ids). */
function tokenIds(n: number, vocab: number, seed = 13): number[] {
  return Array.from({ length: n }, (_, i) => (i * 7919 + seed) % vocab);
}

/** Multiply-adds ×2 of the dense layers per token (q|k|v, o, gate|up, down), without the lm head. */
function layerFlopsPerToken(c: ModelConfig): number {
  const qd = c.numHeads * c.headDim;
  const kvd = c.numKvHeads * c.headDim;
  return 2 * c.numLayers * (c.hiddenSize * (qd + 2 * kvd) + qd * c.hiddenSize + 3 * c.hiddenSize * c.intermediateSize);
}

/** FLOPs of a prefill of `t` tokens: dense layers, causal attention (QKᵀ and PV), the lm head on the last row. */
function prefillFlops(c: ModelConfig, t: number): number {
  const attention = 4 * c.numLayers * c.numHeads * c.headDim * ((t * (t + 1)) / 2);
  return t * layerFlopsPerToken(c) + attention + 2 * c.vocabSize * c.hiddenSize;
}

/** f32 bytes a decode step must read at `context` cached tokens: every weight once (lm head included) and the KV. */
function decodeBytes(c: ModelConfig, context: number): { weights: number; kv: number } {
  const weights = 4 * (layerFlopsPerToken(c) / 2 + c.vocabSize * c.hiddenSize + (2 * c.numLayers + 1) * c.hiddenSize);
  const kv = 4 * 2 * c.numLayers * c.numKvHeads * c.headDim * context;
  return { weights, kv };
}

async function loadOrt(): Promise<Ort | string> {
  try {
    return await import('onnxruntime-node');
  } catch (e) {
    return `onnxruntime-node not loadable: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
  }
}

/**
 * A backend that forwards to the CPU backend and, while `on`, adds each operation's wall time to `ms` (the lm head's
 * linear apart from the layers'). Calls are synchronous, so the times add up to the forward's.
 */
function timedBackend(vocab: number): { backend: Backend; ms: Map<string, number>; on: { value: boolean } } {
  const ms = new Map<string, number>();
  const on = { value: false };
  const backend = new Proxy(cpuBackend, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        // A scope only brackets other operations, which are timed themselves.
        if (!on.value || prop === 'scope') return v.apply(target, args);
        let key = String(prop);
        if (key === 'linear') key = (args[1] as { shape: number[] }).shape[0] === vocab ? 'linear (lm head)' : 'linear (layers)';
        const t0 = performance.now();
        try {
          return v.apply(target, args);
        } finally {
          ms.set(key, (ms.get(key) ?? 0) + performance.now() - t0);
        }
      };
    },
  });
  return { backend, ms, on };
}

/** The section: prefill and decode tokens/s, Attend vs onnxruntime-node, and where Attend's time goes. */
export async function benchModel(opts: BenchOptions, dir = process.env.ATTEND_BENCH_MODEL ?? DEFAULT_MODEL): Promise<Row[]> {
  const section = 'model';
  const cpu0 = cpuSnapshot();
  const vocab = readModelConfig(dir).vocabSize;
  const timed = timedBackend(vocab);
  const lm = loadModel(dir, { backend: timed.backend });
  const c = lm.config;
  const threads = matmulBackendInfo().threads;
  const attendImpl = `attend (${matmulBackendInfo().name})`;
  const rows: Row[] = [];

  const ort = opts.noOrt ? 'skipped (--no-ort)' : await loadOrt();
  const peers: { impl: string; model: OrtLlama }[] = [];
  if (typeof ort !== 'string') {
    for (const [attention, label] of [['gqa', 'GroupQueryAttention'], ['ops', 'standard ops']] as [OnnxAttention, string][]) {
      peers.push({ impl: `onnxruntime (${label})`, model: await OrtLlama.create(ort, dir, { attention, lastOnly: true, threads }) });
    }
  }

  const maxLen = Math.max(...PREFILL_LENGTHS, ...DECODE_AFTER);
  const prompt = tokenIds(maxLen, vocab);
  const next = tokenIds(DECODE_TOKENS, vocab, 4242);

  /** Adds the rows of one case: Attend first, vs the best onnxruntime variant. */
  const addCase = (label: string, times: Map<Contender, number>, tokens: number, extra: (ms: number) => Partial<Row>) => {
    const all = [...times.entries()].map(([ct, ms]) => ({ ct, ms, tps: (tokens * 1000) / ms }));
    const ortBest = Math.max(0, ...all.filter((x) => x.ct.impl.startsWith('onnxruntime')).map((x) => x.tps));
    for (const { ct, ms, tps } of all) {
      const isAttend = ct.impl.startsWith('attend');
      const perToken = label.startsWith('decode');
      const e = extra(ms);
      rows.push({
        section,
        case: label,
        impl: ct.impl,
        threads: ct.threads,
        ms: perToken ? ms / tokens : ms,
        ...e,
        vsOrt: isAttend && ortBest > 0 ? tps / ortBest : undefined,
        note: `${tps.toFixed(tps >= 100 ? 0 : 1)} tok/s${e.note ? `; ${e.note}` : ''}`,
      });
    }
  };

  // Prefill.
  for (const t of PREFILL_LENGTHS) {
    const ids = prompt.slice(0, t);
    const contenders: Contender[] = [{ impl: `${attendImpl}, chunk 512`, threads, call: () => prefill(lm.model, newCache(c), ids) }];
    for (const p of peers) contenders.push({ impl: `${p.impl}, one run`, threads, call: () => p.model.step(ids, p.model.emptyPast()) });
    const times = await race(contenders, opts, t >= 2048);
    const flops = prefillFlops(c, t);
    addCase(`prefill ${t} tokens`, times, t, (ms) => ({ gflops: flops / ms / 1e6 }));
  }

  // Decode, against the bandwidth roofline.
  const bw = await benchBandwidth({ ...opts, budgetMs: Math.min(opts.budgetMs, 1500) });
  // Read bandwidth: OpenBLAS sasum/sdot when available, else memcpy (which counts its reads and writes).
  const reads = bw.filter((r) => /sasum|sdot/.test(r.impl));
  const bwRow = (reads.length ? reads : bw.filter((r) => /memcpy/.test(r.impl))).reduce((a, b) => ((b.gbps ?? 0) > (a.gbps ?? 0) ? b : a));
  const bandwidth = bwRow.gbps!;
  for (const p0 of DECODE_AFTER) {
    const ids = prompt.slice(0, p0);
    const cache = newCache(c);
    prefill(lm.model, cache, ids);
    const steps = (start: KVCache) => {
      const kv = start.clone();
      for (const id of next) lm.model.forward([id], kv, { lastOnly: true });
    };
    const contenders: Contender[] = [{ impl: attendImpl, threads, call: () => steps(cache) }];
    for (const p of peers) {
      const past: OrtPast = (await p.model.step(ids, p.model.emptyPast())).present;
      contenders.push({
        impl: `${p.impl}, present → past`,
        threads,
        call: async () => {
          let kv = past;
          for (const id of next) kv = (await p.model.step([id], kv)).present;
        },
      });
    }
    const times = await race(contenders, opts, false);
    const { weights, kv } = decodeBytes(c, p0 + (DECODE_TOKENS + 1) / 2);
    addCase(`decode ${DECODE_TOKENS} after ${p0}`, times, DECODE_TOKENS, (ms) => {
      const gbps = ((weights + kv) * DECODE_TOKENS) / ms / 1e6;
      return { gbps, note: `${((100 * gbps) / bandwidth).toFixed(0)}% of ${bandwidth.toFixed(1)} GB/s` };
    });
  }
  rows.push({
    section,
    case: 'decode roofline',
    impl: `bandwidth: ${bwRow.impl}`,
    threads: bwRow.threads,
    ms: NaN,
    gbps: bandwidth,
    note:
      `${(decodeBytes(c, 0).weights / 2 ** 20).toFixed(1)} MiB f32 weights + ` +
      `${(decodeBytes(c, 1).kv / 2 ** 10).toFixed(0)} KiB KV per cached token read per decoded token; ` +
      `roofline ${((bandwidth * 1e9) / (decodeBytes(c, 512 + 32).weights + decodeBytes(c, 512 + 32).kv)).toFixed(0)} tok/s after 512`,
  });
  for (const p of peers) await p.model.release();

  // Where Attend's time goes: per backend operation, prefill 512 and decode after 512 and 2048.
  const split = async (label: string, run: () => void, calls: number) => {
    run(); // warm
    timed.ms.clear();
    timed.on.value = true;
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) run();
    const total = (performance.now() - t0) / calls;
    timed.on.value = false;
    const parts = [...timed.ms.entries()].map(([k, ms]) => [k, ms / calls] as const).sort((a, b) => b[1] - a[1]);
    const other = total - parts.reduce((s, [, ms]) => s + ms, 0);
    for (const [k, ms] of [...parts, ['other (JS glue, cache clone, allocation outside ops)', other] as const]) {
      rows.push({ section, case: label, impl: k, threads: k.startsWith('linear') ? threads : 1, ms, note: `${((100 * ms) / total).toFixed(1)}%` });
    }
    await sleep(100);
  };
  const ids512 = prompt.slice(0, 512);
  await split('Attend split: prefill 512', () => prefill(lm.model, newCache(c), ids512), 3);
  for (const p0 of DECODE_AFTER) {
    const start = newCache(c);
    prefill(lm.model, start, prompt.slice(0, p0));
    await split(`Attend split: decode ${DECODE_TOKENS} after ${p0} (ms per ${DECODE_TOKENS} tokens)`, () => {
      const kv = start.clone();
      for (const id of next) lm.model.forward([id], kv, { lastOnly: true });
    }, 3);
  }

  const load = machineLoadRow(section, cpu0, 'model');
  if (load) rows.push(load);
  if (typeof ort === 'string') rows.push({ section, case: '', impl: 'onnxruntime', threads: 0, ms: NaN, note: ort });
  return rows;
}
