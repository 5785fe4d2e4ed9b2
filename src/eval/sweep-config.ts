/**
 * A sweep: methods × budgets × context lengths × needle depths × query-aware/agnostic, over tasks and seeds.
 * Written by hand as JSON (`attend bench --config sweep.json`) or taken from a preset. This file reads, checks
 * and expands it into cells; the presets are at the bottom.
 */
import { readFileSync } from 'node:fs';
import { AttendError, check } from '../errors.js';
import { pressEntry, resolveOptions } from '../presses/registry.js';
import { taskByName } from './tasks/index.js';
import type { CellKey } from './types.js';

export interface MethodSpec {
  /** 'full' or a press name. */
  press: string;
  ratios?: number[];
  budgets?: number[];
  options?: Record<string, number | string>;
  during?: 'prefill' | 'chunks';
}

export interface SweepConfig {
  tasks: string[];
  contextLengths: number[];
  /** Needle depths for tasks that have one; others run once per length. */
  depths: number[];
  /** Instances per (task, length, depth). */
  samples: number;
  methods: MethodSpec[];
  queryAware: boolean[];
  prefillChunk: number;
  /** Base of the instance seeds (same seed, same instances). */
  seed: number;
  /**
   * Prefill each instance once for all the methods that see the same prefill (eval/shared-prefill.ts): same
   * answers and bytes, far less time, but TTFT no longer measures each method's own prefill.
   */
  sharedPrefill: boolean;
  /**
   * Every instance its own seed: the samples of each (task, length, depth) get seeds no other instance of the
   * sweep has, so no two lengths or depths share a needle value, key or haystack and every instance is an
   * independent sample. Off (the default, and how the shipped sweeps ran), sample i has the same seed at every
   * length and depth: the same needle moved through haystacks of other sizes and places.
   */
  seedPerInstance?: boolean;
}

const DEPTHS = [0, 0.25, 0.5, 0.75, 1];

/** What a sweep config leaves out (readSweepConfig): one instance, full KV and four presses at two budgets. */
export const SWEEP_DEFAULTS: SweepConfig = {
  tasks: ['niah_single'],
  contextLengths: [2048, 4096],
  depths: [0.5],
  samples: 1,
  methods: [
    { press: 'full' },
    { press: 'streaming-llm', ratios: [0.5, 0.75] },
    { press: 'snapkv', ratios: [0.5, 0.75] },
    { press: 'pyramidkv', ratios: [0.5, 0.75] },
    { press: 'h2o', ratios: [0.5, 0.75] },
  ],
  queryAware: [false, true],
  prefillChunk: 512,
  seed: 1,
  sharedPrefill: false,
  seedPerInstance: false,
};
const RULER_TASKS = ['passkey', 'niah_single', 'niah_multikey', 'niah_multivalue', 'niah_multiquery', 'vt', 'fwe', 'qa'];

export const PRESETS: Record<string, SweepConfig> = {
  /**
   * The main job (npm start), about two minutes on two cores: full KV and four presses keeping half the KV,
   * query-aware, on 40 independent single-needle instances (20 per context length, 4 per needle depth, each with
   * its own seed, so its own needle value, key, template and haystack), one shared prefill per instance. Accuracy
   * is reported per method pooled over lengths and depths (n = 40: every 95% Wilson interval within ±15 points);
   * the depth × length breakdown is in the report, as counts.
   */
  quick: {
    tasks: ['niah_single'],
    contextLengths: [1024, 2048],
    depths: DEPTHS,
    samples: 4,
    methods: [
      { press: 'full' },
      { press: 'streaming-llm', ratios: [0.5] },
      { press: 'snapkv', ratios: [0.5] },
      { press: 'pyramidkv', ratios: [0.5] },
      { press: 'h2o', ratios: [0.5] },
    ],
    queryAware: [true],
    prefillChunk: 512,
    seed: 11,
    sharedPrefill: true,
    seedPerInstance: true,
  },
  /** RULER-style: every task at 4K and 8K, four methods at three budgets, query-agnostic and aware. */
  ruler: {
    tasks: RULER_TASKS,
    contextLengths: [4096, 8192],
    depths: [0.5],
    samples: 4,
    methods: [
      { press: 'full' },
      { press: 'streaming-llm', ratios: [0.25, 0.5, 0.75] },
      { press: 'snapkv', ratios: [0.25, 0.5, 0.75] },
      { press: 'pyramidkv', ratios: [0.25, 0.5, 0.75] },
      { press: 'h2o', ratios: [0.25, 0.5, 0.75] },
      { press: 'adakv', ratios: [0.25, 0.5, 0.75] },
      { press: 'knorm', ratios: [0.25, 0.5, 0.75] },
    ],
    queryAware: [false, true],
    prefillChunk: 512,
    seed: 1,
    sharedPrefill: true,
  },
  /** Needle in a haystack: depth × length grid. */
  niah: {
    tasks: ['niah_single', 'passkey'],
    contextLengths: [1024, 2048, 4096, 8192],
    depths: DEPTHS,
    samples: 2,
    methods: [
      { press: 'full' },
      { press: 'streaming-llm', ratios: [0.5] },
      { press: 'snapkv', ratios: [0.5] },
      { press: 'pyramidkv', ratios: [0.5] },
      { press: 'h2o', ratios: [0.5] },
    ],
    queryAware: [false],
    prefillChunk: 512,
    seed: 1,
    sharedPrefill: false,
  },
};

export function presetByName(name: string): SweepConfig {
  const preset = PRESETS[name];
  if (!preset) throw new AttendError(`unknown preset "${name}" (known: ${Object.keys(PRESETS).join(', ')})`);
  return preset;
}

export function readSweepConfig(path: string): SweepConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new AttendError(`${path}: cannot read the sweep config (${why})`);
  }
  check(raw !== null && typeof raw === 'object' && !Array.isArray(raw), `${path}: the sweep config must be a JSON object`);
  const base = SWEEP_DEFAULTS;
  const given = raw as Partial<SweepConfig>;
  const known = Object.keys(base);
  for (const key of Object.keys(given)) check(known.includes(key), `${path}: unknown key "${key}" (known: ${known.join(', ')})`);
  return { ...base, ...given };
}

/** Checks a config against the model's context and the known tasks and presses. */
export function validateSweep(config: SweepConfig, modelContext: number, source: string): void {
  for (const task of config.tasks) taskByName(task);
  for (const n of config.contextLengths) {
    check(Number.isInteger(n) && n > 0, `${source}: context length ${n} is not a whole number > 0`);
    check(n <= modelContext, `${source}: context length ${n} is longer than the model's context of ${modelContext}`);
  }
  for (const d of config.depths) check(d >= 0 && d <= 1, `${source}: depth ${d} is outside [0, 1]`);
  check(Number.isInteger(config.samples) && config.samples > 0, `${source}: samples must be a whole number > 0`);
  check(typeof config.sharedPrefill === 'boolean', `${source}: sharedPrefill must be true or false`);
  check(config.seedPerInstance === undefined || typeof config.seedPerInstance === 'boolean', `${source}: seedPerInstance must be true or false`);
  for (const m of config.methods) {
    if (m.press === 'full') continue;
    resolveOptions(pressEntry(m.press), m.options ?? {});
    check((m.ratios?.length ?? 0) + (m.budgets?.length ?? 0) > 0, `${source}: method ${m.press} needs ratios or budgets`);
    for (const r of m.ratios ?? []) check(r > 0 && r < 1, `${source}: ${m.press} ratio ${r} is outside (0, 1)`);
    for (const b of m.budgets ?? []) check(Number.isInteger(b) && b > 0, `${source}: ${m.press} budget ${b} is not a whole number > 0`);
  }
}

/** Every cell of the sweep, in the order they run: grouped by instance so each prompt is built once. */
export function expandSweep(config: SweepConfig, model: string): CellKey[] {
  const cells: CellKey[] = [];
  let instance = 0;
  for (const task of config.tasks) {
    const depths = taskByName(task).hasDepth ? config.depths : [null];
    for (const contextLength of config.contextLengths) {
      for (const depth of depths) {
        for (let sample = 0; sample < config.samples; sample++) {
          const seed = config.seed * 1_000_003 + (config.seedPerInstance ? instance++ : sample);
          for (const m of config.methods) {
            const budgets: CellKey['budget'][] =
              m.press === 'full' ? [null] : [...(m.ratios ?? []).map((ratio) => ({ ratio })), ...(m.budgets ?? []).map((tokens) => ({ tokens }))];
            const aware = m.press === 'full' ? [false] : config.queryAware;
            for (const budget of budgets) {
              for (const queryAware of aware) {
                cells.push({
                  model,
                  task,
                  contextLength,
                  depth,
                  seed,
                  method: m.press,
                  options: m.options ?? {},
                  budget,
                  during: m.press === 'full' ? null : (m.during ?? 'prefill'),
                  queryAware,
                  prefillChunk: config.prefillChunk,
                });
              }
            }
          }
        }
      }
    }
  }
  return cells;
}
