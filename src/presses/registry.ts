/**
 * Every press by name, with its options, their defaults and the source they come from: what `--press NAME
 * --press-opt KEY=VALUE` and `attend presses` read. Adding a method = one file + one entry here + its test.
 */
import { AttendError } from '../errors.js';
import { AdaKVPress } from './adakv.js';
import { CriticPress, CRITIC_DEFAULTS } from './critic.js';
import { H2OPress } from './h2o.js';
import { KnormPress } from './knorm.js';
import { LAZY_EVICTION_DEFAULTS, LazyEvictionPress } from './lazy-eviction.js';
import { ObservedAttentionPress } from './observed-attention.js';
import type { Press } from './press.js';
import { PYRAMIDKV_DEFAULTS, PyramidKVPress } from './pyramidkv.js';
import { RandomPress } from './random.js';
import type { CompressionPlan } from './runner.js';
import { SNAPKV_DEFAULTS, SnapKVPress } from './snapkv.js';
import { StreamingLLMPress } from './streaming-llm.js';
import { TOVAPress } from './tova.js';

export interface OptionSpec {
  default: number | string;
  description: string;
  /** 'int': a whole number ≥ 0; 'number': any finite number; 'press': another press's name. */
  kind: 'int' | 'number' | 'press';
}

export interface PressEntry {
  name: string;
  summary: string;
  source: string;
  options: Record<string, OptionSpec>;
  create(options: Record<string, number | string>): Press;
  /** Decoding-time compression the method itself prescribes (e.g. H2O evicts at every step). */
  decode?(options: Record<string, number | string>): CompressionPlan['decode'];
}

const num = (o: Record<string, number | string>, k: string) => Number(o[k]);

export const PRESSES: PressEntry[] = [
  {
    name: 'streaming-llm',
    summary: 'attention sinks + the most recent tokens',
    source: 'Xiao et al. 2023, arXiv 2309.17453; kvpress StreamingLLMPress',
    options: { sinks: { default: 4, description: 'initial tokens always kept', kind: 'int' } },
    create: (o) => new StreamingLLMPress({ sinks: num(o, 'sinks') }),
  },
  {
    name: 'snapkv',
    summary: "the last window's attention, pooled, picks entries per head",
    source: 'Li et al. 2024, arXiv 2404.14469; kvpress SnapKVPress',
    options: {
      window: { default: SNAPKV_DEFAULTS.window, description: 'observation window (last queries)', kind: 'int' },
      kernel: { default: SNAPKV_DEFAULTS.kernel, description: 'average-pooling width', kind: 'int' },
    },
    create: (o) => new SnapKVPress({ window: num(o, 'window'), kernel: num(o, 'kernel') }),
  },
  {
    name: 'pyramidkv',
    summary: 'SnapKV scores with budgets shrinking with depth',
    source: 'Cai et al. 2024, arXiv 2406.02069; kvpress PyramidKVPress, KVCache-Factory',
    options: {
      window: { default: PYRAMIDKV_DEFAULTS.window, description: 'observation window', kind: 'int' },
      kernel: { default: PYRAMIDKV_DEFAULTS.kernel, description: 'average-pooling width', kind: 'int' },
      beta: { default: PYRAMIDKV_DEFAULTS.beta, description: 'pyramid steepness (≥ 1)', kind: 'number' },
    },
    create: (o) => new PyramidKVPress({ window: num(o, 'window'), kernel: num(o, 'kernel'), beta: num(o, 'beta') }),
  },
  {
    name: 'observed-attention',
    summary: 'attention received during prefill, averaged over the queries that saw each entry',
    source: 'kvpress ObservedAttentionPress (related to H2O)',
    options: {},
    create: () => new ObservedAttentionPress(),
  },
  {
    name: 'h2o',
    summary: 'heavy hitters (accumulated attention) + recent tokens, evicting at every decoding step',
    source: 'Zhang et al. 2023, arXiv 2306.14048; FMInference/H2O real-drop cache',
    options: { recent: { default: 0.5, description: 'fraction of the budget kept for recent tokens', kind: 'number' } },
    create: (o) => new H2OPress({ recentFraction: num(o, 'recent') }),
    decode: () => ({ every: 1 }),
  },
  {
    name: 'tova',
    summary: "the latest token's attention, averaged over heads, picks entries per layer",
    source: 'Oren et al. 2024, arXiv 2401.06104; kvpress TOVAPress',
    options: {},
    create: () => new TOVAPress(),
  },
  {
    name: 'knorm',
    summary: 'keep the keys with the smallest L2 norm',
    source: 'Devoto et al. 2024, arXiv 2406.11430; kvpress KnormPress',
    options: {},
    create: () => new KnormPress(),
  },
  {
    name: 'random',
    summary: 'uniform random scores (baseline)',
    source: 'kvpress RandomPress',
    options: { seed: { default: 0, description: 'random seed', kind: 'int' } },
    create: (o) => new RandomPress({ seed: num(o, 'seed') }),
  },
  {
    name: 'adakv',
    summary: "a scorer's scores compared across heads: heads keep different numbers of entries, memory freed per head",
    source: 'Feng et al. 2024, arXiv 2407.11550; kvpress AdaKVPress',
    options: {
      scorer: { default: 'snapkv', description: 'the press whose scores are used', kind: 'press' },
      alpha: { default: 0.2, description: 'safeguard: fraction of the average budget each head keeps first', kind: 'number' },
    },
    create: (o) => new AdaKVPress(createPress(String(o.scorer), {}), { alpha: num(o, 'alpha') }),
  },
  {
    name: 'lazy-eviction',
    summary: 'recurrence-interval tracking while decoding, lagged eviction every observation window',
    source: 'Zhang et al. 2025, arXiv 2506.15969; Halo-949/LazyEviction',
    options: {
      window: { default: LAZY_EVICTION_DEFAULTS.window, description: 'observation window (steps between evictions, recent entries kept)', kind: 'int' },
      alpha: { default: LAZY_EVICTION_DEFAULTS.alpha, description: 'attention that counts as renewed', kind: 'number' },
    },
    create: (o) => new LazyEvictionPress({ window: num(o, 'window'), alpha: num(o, 'alpha') }),
    decode: (o) => ({ every: num(o, 'window') }),
  },
  {
    name: 'critic',
    summary: 'token importance from attention received, attention entropy and output sensitivity',
    source: 'PORAG/ATLAS paper, arXiv 2504.01281, appendix A.1 (no official code; choices in src/presses/critic.ts)',
    options: {
      'w-attention': { default: CRITIC_DEFAULTS.weights.attention, description: 'weight of attention received', kind: 'number' },
      'w-entropy': { default: CRITIC_DEFAULTS.weights.entropy, description: 'weight of attention entropy', kind: 'number' },
      'w-gradient': { default: CRITIC_DEFAULTS.weights.gradient, description: 'weight of output sensitivity', kind: 'number' },
      'min-tokens': { default: CRITIC_DEFAULTS.minTokens, description: 'never compress a layer below this', kind: 'int' },
    },
    create: (o) =>
      new CriticPress({
        weights: { attention: num(o, 'w-attention'), entropy: num(o, 'w-entropy'), gradient: num(o, 'w-gradient') },
        minTokens: num(o, 'min-tokens'),
      }),
    decode: () => ({ every: 1 }),
  },
  // kvpress breadth (issue 14), one block per group; keep entries inside your group's block.
  // -- scorers: expected attention, CAP, KeyDiff, LagKV, CUR
  // -- end scorers
  // -- sketches: non-causal attention, leverage score, Compactor
  // -- end sketches
  // -- wrappers: chunk, chunkkv, block, criticalkv, critical-adakv, per-layer-compression, composed
  // -- end wrappers
  // -- decoding: decoding, prefill-decoding, compression-ratio-decoding, dms, simlayerkv
  // -- end decoding
  // -- structure: key-rerotation, finch, merging
  // -- end structure
  // -- reconstruction: kvzip, kvcompose
  // -- end reconstruction
];

export function pressEntry(name: string): PressEntry {
  const entry = PRESSES.find((p) => p.name === name);
  if (!entry) throw new AttendError(`unknown press "${name}" (known: ${PRESSES.map((p) => p.name).join(', ')})`);
  return entry;
}

/** Fills defaults and checks every given option against the entry's spec. */
export function resolveOptions(entry: PressEntry, given: Record<string, string | number>): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const key of Object.keys(given)) {
    if (!(key in entry.options)) {
      const known = Object.keys(entry.options);
      throw new AttendError(
        `press ${entry.name} has no option "${key}" (${known.length ? `options: ${known.join(', ')}` : 'it takes no options'})`,
      );
    }
  }
  for (const [key, spec] of Object.entries(entry.options)) {
    const raw = given[key] ?? spec.default;
    if (spec.kind === 'press') {
      pressEntry(String(raw));
      out[key] = String(raw);
      continue;
    }
    const value = Number(raw);
    const ok = spec.kind === 'int' ? Number.isInteger(value) && value >= 0 : Number.isFinite(value);
    if (String(raw).trim() === '' || !ok) {
      throw new AttendError(`press ${entry.name}: option ${key} must be ${spec.kind === 'int' ? 'a whole number ≥ 0' : 'a number'}, got "${raw}"`);
    }
    out[key] = value;
  }
  return out;
}

export function createPress(name: string, given: Record<string, string | number>): Press {
  const entry = pressEntry(name);
  return entry.create(resolveOptions(entry, given));
}

/** Parses "key=value" strings as --press-opt gives them. */
export function parsePressOptions(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new AttendError(`--press-opt: expected KEY=VALUE, got "${pair}"`);
    out[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return out;
}
