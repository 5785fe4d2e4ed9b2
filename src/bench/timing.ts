/**
 * Timing helpers for the benchmarks: warm up, then the median of repeated samples, each a batch of calls; contenders
 * raced in interleaved rounds; the machine load other processes put on a section.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { Row } from './report.js';

export interface TimingOptions {
  /** Samples to take (fewer when one call is slow; at least 3). */
  repeats: number;
  /** Rough wall-clock budget per measurement, in ms. */
  budgetMs: number;
  /** Warm-up calls at least (default 3). */
  minWarmup?: number;
}

export interface Timing {
  /** Median time of one call, ms. */
  ms: number;
  samples: number;
  callsPerSample: number;
}

const now = () => performance.now();

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Times `fn` (sync or async; awaited only when it returns a promise). Warm-up runs at least 3 calls and 10% of the
 * budget; samples batch enough calls to last ~5 ms so timer resolution and per-sample noise stay small.
 */
export async function measure(fn: () => unknown, opts: TimingOptions): Promise<Timing> {
  let calls = 0;
  const t0 = now();
  while (calls < (opts.minWarmup ?? 3) || (now() - t0 < opts.budgetMs * 0.1 && calls < 1_000_000)) {
    const r = fn();
    if (r instanceof Promise) await r;
    calls++;
  }
  let perCall = (now() - t0) / calls;
  if (calls > 6) {
    // Re-estimate on the last few calls: the first ones may include one-time work.
    const t1 = now();
    for (let i = 0; i < 3; i++) {
      const r = fn();
      if (r instanceof Promise) await r;
    }
    perCall = (now() - t1) / 3;
  }
  const callsPerSample = Math.max(1, Math.round(5 / perCall));
  const samples = Math.max(3, Math.min(opts.repeats, Math.floor((opts.budgetMs * 0.9) / (perCall * callsPerSample))));
  const times: number[] = [];
  for (let s = 0; s < samples; s++) {
    const start = now();
    for (let i = 0; i < callsPerSample; i++) {
      const r = fn();
      if (r instanceof Promise) await r;
    }
    times.push((now() - start) / callsPerSample);
  }
  times.sort((a, b) => a - b);
  const mid = times.length >> 1;
  const ms = times.length % 2 ? times[mid]! : (times[mid - 1]! + times[mid]!) / 2;
  return { ms, samples, callsPerSample };
}

/** The best (lowest) median of `rounds` measurements, each with budgetMs / rounds. */
export async function measureBest(fn: () => unknown, opts: TimingOptions, rounds = 3): Promise<Timing> {
  let best: Timing | undefined;
  for (let r = 0; r < rounds; r++) {
    const t = await measure(fn, { ...opts, budgetMs: opts.budgetMs / rounds });
    if (!best || t.ms < best.ms) best = t;
  }
  return best!;
}

/** Interleaved rounds per contender and case (fewer for slow cases such as the 2048-token prefill). */
const ROUNDS = 3;
const SLOW_ROUNDS = 2;

export interface Contender {
  impl: string;
  threads: number;
  /** One timed call: a whole prefill, or a run of decode steps. */
  call(): unknown;
}

/**
 * Best median over interleaved rounds, per contender (ms per call): each round measures every contender once, so a
 * burst of outside load hits one round of one contender rather than a whole contender.
 */
export async function race(contenders: Contender[], opts: TimingOptions, slow: boolean): Promise<Map<Contender, number>> {
  const best = new Map<Contender, number>();
  const rounds = slow ? (opts.budgetMs < 1000 ? 1 : SLOW_ROUNDS) : ROUNDS;
  for (let r = 0; r < rounds; r++) {
    for (const ct of contenders) {
      const t = await measure(() => ct.call(), { ...opts, minWarmup: 1, budgetMs: opts.budgetMs / rounds });
      best.set(ct, Math.min(best.get(ct) ?? Infinity, t.ms));
      await sleep(100); // let spinning pool threads (OpenBLAS, onnxruntime) go idle before the next contender
    }
  }
  return best;
}

export interface CpuSnapshot {
  machine: number;
  own: number;
  wall: number;
}

/**
 * CPU time the whole machine spent busy (Linux /proc/stat, USER_HZ = 100) and this process's own CPU time, ms: the
 * difference over a section is what other processes took (this VM is shared, and a concurrent job skews timings).
 */
export function cpuSnapshot(): CpuSnapshot | undefined {
  try {
    const v = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const busy = v[0] + v[1] + v[2] + (v[5] ?? 0) + (v[6] ?? 0) + (v[7] ?? 0); // user nice system irq softirq steal
    const own = process.cpuUsage();
    return { machine: busy * 10, own: (own.user + own.system) / 1000, wall: performance.now() };
  } catch {
    return undefined;
  }
}

/** The "machine load" row for a section that began at `cpu0` (and a warning above 5%), or undefined off Linux. */
export function machineLoadRow(section: string, cpu0: CpuSnapshot | undefined, name: string): Row | undefined {
  const cpu1 = cpuSnapshot();
  if (!cpu0 || !cpu1) return undefined;
  const cores = os.availableParallelism();
  const other = Math.max(0, cpu1.machine - cpu0.machine - (cpu1.own - cpu0.own)) / ((cpu1.wall - cpu0.wall) * cores);
  const s = ((cpu1.wall - cpu0.wall) / 1000).toFixed(0);
  if (other > 0.05) console.warn(`warning: other processes used ${(100 * other).toFixed(0)}% of the CPU during the ${name} section; timings are skewed`);
  return { section, case: 'machine load', impl: 'other processes', threads: cores, ms: NaN, note: `${(100 * other).toFixed(1)}% of ${cores} cores over the section's ${s} s` };
}
