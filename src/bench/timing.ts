/** Timing helpers for the benchmarks: warm up, then the median of repeated samples, each a batch of calls. */

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
