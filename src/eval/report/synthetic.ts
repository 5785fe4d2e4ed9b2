/**
 * Synthetic sweep cells with plausible shapes (accuracy falling with the budget and context length, a
 * lost-in-the-middle press, cache bytes proportional to the tokens kept): for the report's tests and for showing
 * the report without running a sweep. Deterministic for a seed. Not measurements.
 */
import type { CellResult } from '../types.js';

export interface SyntheticOptions {
  methods?: string[];
  /** Compression ratios (fraction removed) of the presses; token budgets instead where budgetTokens is given. */
  ratios?: number[];
  budgetTokens?: number[];
  contextLengths?: number[];
  /** Needle depths; an empty list gives cells without a depth. */
  depths?: number[];
  seeds?: number[];
  task?: string;
  /** Perplexity cells (task 'perplexity', no depth) instead of accuracy cells. */
  perplexity?: boolean;
  model?: string;
}

/** Small deterministic PRNG (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BYTES_PER_TOKEN = 24 * 2 * 64 * 2 * 4;
const MiB = 1024 * 1024;

/** The chance that a method finds the needle. */
function hitChance(method: string, kept: number, contextLength: number, depth: number): number {
  const base = 0.97 - 0.05 * Math.log2(contextLength / 1024);
  const lost = 1 - kept;
  switch (method) {
    case 'full': return base;
    case 'snapkv': return base - 0.35 * lost ** 2.2;
    case 'streaming-llm': return depth > 0.08 && depth < 1 - kept + 0.05 ? 0.04 : base - 0.05 * lost;
    case 'knorm': return base - 0.55 * lost ** 1.6;
    case 'random': return base * kept ** 1.3;
    default: return base - 0.45 * lost ** 1.8;
  }
}

export function syntheticCells(options: SyntheticOptions = {}): CellResult[] {
  const methods = options.methods ?? ['full', 'snapkv', 'streaming-llm', 'knorm', 'random'];
  const contextLengths = options.contextLengths ?? [1024, 2048, 4096];
  const depths: Array<number | null> = options.perplexity ? [null]
    : options.depths === undefined ? [0, 0.25, 0.5, 0.75, 1] : options.depths.length > 0 ? options.depths : [null];
  const seeds = options.seeds ?? [0];
  const budgets: CellResult['budget'][] = options.budgetTokens
    ? options.budgetTokens.map((tokens) => ({ tokens }))
    : (options.ratios ?? [0.25, 0.5, 0.75]).map((ratio) => ({ ratio }));
  const cells: CellResult[] = [];
  const start = Date.parse('2025-01-15T09:00:00Z');
  for (const method of methods) {
    for (const budget of method === 'full' ? [null] : budgets) {
      for (const contextLength of contextLengths) {
        for (const depth of depths) {
          for (const seed of seeds) {
            const rnd = random(cells.length * 7919 + seed * 104729 + 1);
            const keptTokens = budget === null ? contextLength
              : 'ratio' in budget ? Math.round(contextLength * (1 - budget.ratio)) : Math.min(contextLength, budget.tokens);
            const kept = keptTokens / contextLength;
            const p = Math.max(0, Math.min(1, hitChance(method, kept, contextLength, depth ?? 0.5)));
            let found = 0;
            for (let i = 0; i < 4; i++) found += rnd() < p ? 1 : 0;
            const kvBytes = keptTokens * BYTES_PER_TOKEN;
            const peakKvBytes = contextLength * BYTES_PER_TOKEN;
            const prefill = 900 / (1 + contextLength / 8192) * (0.9 + 0.2 * rnd());
            cells.push({
              model: options.model ?? 'attend-mini', task: options.perplexity ? 'perplexity' : options.task ?? 'niah_single',
              contextLength, depth, seed, method,
              options: method === 'snapkv' ? { window: 64 } : {},
              budget, during: method === 'full' ? null : 'prefill', queryAware: false, prefillChunk: 512,
              commit: 'a1b2c3d4e5f6a7b8', date: new Date(start + cells.length * 41_000).toISOString(),
              metrics: {
                accuracy: options.perplexity ? 0 : found / 4,
                ...(options.perplexity ? { perplexity: 8 + 6 * (1 - kept) ** 1.5 + rnd() } : { prediction: found === 4 ? ' 7319.' : found === 0 ? ' 73199999999999' : ' 7319 or 4455', expected: ['7319'] }),
                kvBytes, peakKvBytes,
                peakRssBytes: 620 * MiB + peakKvBytes * 1.1 + rnd() * 30 * MiB,
                promptTokens: contextLength,
                ttftMs: (contextLength / prefill) * 1000,
                prefillTokensPerS: prefill,
                decodeTokensPerS: 32 / (1 + keptTokens / 4096) * (0.9 + 0.2 * rnd()),
              },
            });
          }
        }
      }
    }
  }
  return cells;
}
