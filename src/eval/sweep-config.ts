/**
 * A sweep: methods × budgets × context lengths × needle depths × query-aware/agnostic, over tasks and seeds.
 * Written by hand as JSON (`attend bench --config sweep.json`) or taken from a preset. This file reads, checks
 * and expands it into cells; the presets are at the bottom.
 */
import { readFileSync, statSync } from 'node:fs';
import { AttendError, check } from '../errors.js';
import { PRESSES, pressEntry, resolveOptions } from '../presses/registry.js';
import { createSelector, SELECTORS } from '../selectors/registry.js';
import { readActCell } from './act-method.js';
import { jsonErrorReason, oneLine } from './json-text.js';
import { checkPromptOptions, isPromptMethod, PROMPT_METHODS } from './prompt-methods.js';
import { taskByName } from './tasks/index.js';
import type { CellKey, WithinPress } from './types.js';

export interface MethodSpec {
  /** 'full' or a press name; for a selector, its name (with `selector: true`). */
  press: string;
  /**
   * Written {"selector": "quest", "budgets": [256]} in a config: a decode-time selector instead of a press, its
   * budgets the tokens each head reads per decoding step (nothing is dropped; the prompt is prefilled whole).
   */
  selector?: true;
  /**
   * Written {"prompt": "specpc", "ratios": [0.75], "options": {"draft": DIR}} in a config: a prompt compressor
   * (eval/prompt-methods.ts) that drops prompt tokens before the prefill; its ratios are the share of the prompt's
   * tokens removed, its budgets the tokens kept; one query mode (query-aware: it compresses the whole prompt).
   */
  prompt?: true;
  /** Ratios and token budgets, one cell each; none for a press that sets its own size (PressEntry.sizesItself). */
  ratios?: number[];
  budgets?: number[];
  options?: Record<string, number | string>;
  during?: 'prefill' | 'chunks';
  /**
   * A selector only: written {"selector": "quest", "budgets": [256], "within": {"press": "snapkv", "ratio": 0.5}},
   * the press compresses the cache first (after prefill, in each query mode of the sweep) and the selector
   * chooses what each decoding step reads from what it kept.
   */
  within?: WithinPress;
  /**
   * Written {"press": "full", "act": "models/attend-mini/act-calibration.json"}: the method's cells run on the model
   * with ACT attention calibration from that file (eval/act-method.ts), each with a prefill of its own.
   */
  act?: string;
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
/** The ruler preset's budgets: a quarter, half and three quarters of the KV removed. */
const RULER_RATIOS = [0.25, 0.5, 0.75];

/**
 * Every registered press in the ruler preset, in the registry's order, with the options it runs with there: its
 * defaults (no options, as the six presses of the first ruler sweep ran) except where they would not act on a 4K or
 * 8K prompt and a short answer, or an option has no default. Presses that set their own size (PressEntry.sizesItself)
 * run without a budget, once per query mode; the others at RULER_RATIOS. Choices, on attend-mini:
 * - per-layer-compression: one ratio per layer of attend-mini's eight, from 0.2 to 0.8, mean 0.5 (the list shapes
 *   the budget over the layers; at the other ratios the kept fractions are scaled, per-layer-compression.ts);
 * - decoding, prefill-decoding, cam: back to 1024 entries per head every 8 decoding steps, and
 *   compression-ratio-decoding back to half the tokens seen every 8 steps (their defaults, 2048 every 512 steps,
 *   would never act within an answer of a dozen tokens);
 * - dms: knorm's −‖k‖ below −20 is evicted outside the last 128 tokens (no default: on a 4K niah_single prompt the
 *   layers' median key norms run from 3 to 48, so it evicts from a few layers' entries to all of them);
 * - simlayerkv: lazy threshold 0.8 (the default 1 never makes a layer lazy; at 4K, with 1024 recent tokens, the
 *   layers' lazy scores were 0.24, 0.65, 1.0, 0.83, 0.76, 0.78, 0.71, 0.81: three lazy layers);
 * - qfilter, kvzap, fastkvzip, lukv: attend-mini's trained parts as shipped (models/press-parts/attend-mini/, made by
 *   tools/press_training/ on the GPU machine; relative to the repository root, where the bench runs, as the shipped
 *   cells name the bundled model): kvzap with its MLP model, kvpress's default model_type.
 * RULER_LEFT_OUT names the registered presses left out, and why; a test checks that every press is in one or the other.
 */
export const RULER_PRESSES: { press: string; options?: Record<string, number | string> }[] = [
  { press: 'streaming-llm' },
  { press: 'snapkv' },
  { press: 'pyramidkv' },
  { press: 'observed-attention' },
  { press: 'h2o' },
  { press: 'tova' },
  { press: 'knorm' },
  { press: 'random' },
  { press: 'adakv' },
  { press: 'lazy-eviction' },
  { press: 'critic' },
  { press: 'expected-attention' },
  { press: 'cap' },
  { press: 'keydiff' },
  { press: 'lagkv' },
  { press: 'cur' },
  { press: 'non-causal-attention' },
  { press: 'leverage-score' },
  { press: 'compactor' },
  { press: 'chunk' },
  { press: 'chunkkv' },
  { press: 'block' },
  { press: 'criticalkv' },
  { press: 'critical-adakv' },
  { press: 'per-layer-compression', options: { ratios: '0.2,0.3,0.4,0.5,0.5,0.6,0.7,0.8' } },
  { press: 'composed' },
  { press: 'decoding', options: { 'compression-interval': 8, 'target-size': 1024 } },
  { press: 'prefill-decoding', options: { 'compression-interval': 8, 'target-size': 1024 } },
  { press: 'compression-ratio-decoding', options: { 'compression-interval': 8 } },
  { press: 'dms', options: { threshold: -20 } },
  { press: 'simlayerkv', options: { 'lazy-threshold': 0.8 } },
  { press: 'cam', options: { 'compression-interval': 8, 'target-size': 1024 } },
  { press: 'key-rerotation' },
  { press: 'finch' },
  { press: 'merging' },
  { press: 'kvzip' },
  { press: 'kvcompose' },
  { press: 'think' },
  { press: 'qfilter', options: { path: 'models/press-parts/attend-mini/qfilter' } },
  { press: 'kvzap', options: { path: 'models/press-parts/attend-mini/kvzap/mlp' } },
  { press: 'fastkvzip', options: { path: 'models/press-parts/attend-mini/fastkvzip/q4_dim16_sink16.pt' } },
  { press: 'lukv', options: { path: 'models/press-parts/attend-mini/lukv/ea_0.02_sink4_win1_avg_ratio.npy' } },
];

/**
 * Registered presses the ruler preset leaves out, and why: each needs a file made for the model that the repository
 * does not ship for attend-mini (add it to a sweep config with its file, or here once the file ships).
 */
export const RULER_LEFT_OUT: Record<string, string> = {
  'expected-attention-stats': "needs the model's query statistics (stats=PATH, made by tools/press_stats/); expected-attention, in the preset, takes them from the prompt",
  speckv: 'needs a draft model (draft=DIR): run it from a config with {"press": "speckv", "options": {"draft": "models/attend-mini-draft"}}; it never joins a shared prefill (its observer must see every prompt id: eval/shared-prefill.ts canShare; test/eval/speckv-sweep.test.ts)',
  'duo-attention': "needs the model's pattern directory (pattern=DIR; attend-mini's: models/attend-mini/duo-pattern), and its ratio is a share of KV heads, not of entries: compared at equal real KV bytes in docs/sweeps/heads.json",
  'razor-attention': 'head-aware (retrieval heads whole): compared at equal real KV bytes beside DuoAttention, AdaKV and SnapKV in docs/sweeps/heads.json, added after the RULER sweep ran',
  restorekv: "needs RestoreKV's trained adapter for the model (path=PATH), which cannot be made here: no published training recipe (tools/press_training/restorekv.py says why)",
};

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
  /**
   * RULER-style: every task at 4K and 8K, full KV and every press of RULER_PRESSES at three budgets (or its own size),
   * query-agnostic and aware.
   */
  ruler: {
    tasks: RULER_TASKS,
    contextLengths: [4096, 8192],
    depths: [0.5],
    samples: 4,
    methods: [
      { press: 'full' },
      ...RULER_PRESSES.map(({ press, options }): MethodSpec => ({ press, ...(setsOwnSize(press) ? {} : { ratios: RULER_RATIOS }), ...(options ? { options } : {}) })),
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

/**
 * The largest sweep config file read (1 MiB): a hand-written config is a few hundred bytes, and reading stops
 * before a mistaken path (a log, a device such as /dev/zero) can fill the memory.
 */
export const MAX_SWEEP_CONFIG_BYTES = 1 << 20;
/**
 * The most cells one sweep may have: 100,000, about 7 times the ruler preset (13,760), already days of running
 * at a second a cell. Cells are expanded before they run (about 1 KB each with their id), so a config such as
 * `"samples": 1e9` would exhaust the memory; split a larger sweep into several configs.
 */
export const MAX_SWEEP_CELLS = 100_000;
/** Seeds are whole numbers in [0, MAX_SEED]: seed × 1,000,003 + instance must stay an exact integer. */
export const MAX_SEED = 2 ** 32 - 1;

/** Reads a sweep config file: one-line errors for an unreadable file, bad JSON, unknown keys and wrong types. */
export function readSweepConfig(path: string): SweepConfig {
  let text: string;
  try {
    const stat = statSync(path);
    check(stat.isFile(), `${path}: cannot read the sweep config (not a regular file)`);
    check(stat.size <= MAX_SWEEP_CONFIG_BYTES, () => `${path}: cannot read the sweep config (${stat.size} bytes, more than `
      + `MAX_SWEEP_CONFIG_BYTES = ${MAX_SWEEP_CONFIG_BYTES} in src/eval/sweep-config.ts)`);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof AttendError) throw new AttendError(oneLine(e.message, 500));
    const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new AttendError(oneLine(`${path}: cannot read the sweep config (${why})`, 500));
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new AttendError(oneLine(`${path}: cannot read the sweep config (not valid JSON: ${jsonErrorReason(e, text)})`, 500));
  }
  return parseSweepConfig(raw, path);
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
/** A value as the config holds it, for messages: JSON, one line, short. */
const shown = (v: unknown): string => oneLine(JSON.stringify(v) ?? String(v), 60);

/** A non-empty list whose every item passes `ok`, without repeats; `what` says what an item must be. */
function checkList(source: string, key: string, value: unknown, ok: (item: unknown) => boolean, what: string, example: string): void {
  const expected = `${source}: "${key}" must be a non-empty list of ${what}, e.g. ${example}`;
  check(Array.isArray(value) && value.length > 0, () => `${expected} (got ${shown(value)})`);
  const bad = value.findIndex((item) => !ok(item));
  check(bad < 0, () => `${expected} (item ${bad + 1} is ${shown(value[bad])})`);
  const seen = new Set<string>();
  for (const item of value) {
    const id = JSON.stringify(item);
    check(!seen.has(id), () => `${source}: "${key}" lists ${shown(item)} twice`);
    seen.add(id);
  }
}

const wholeAbove0 = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
const METHOD_KEYS = ['press', 'selector', 'prompt', 'ratios', 'budgets', 'options', 'during', 'within', 'act'];
const WITHIN_KEYS = ['press', 'ratio', 'options'];

function checkWithin(where: string, w: unknown): void {
  const example = '{"press": "snapkv", "ratio": 0.5}';
  check(isObject(w), () => `${where}: "within" must be an object such as ${example} (got ${shown(w)})`);
  for (const key of Object.keys(w)) check(WITHIN_KEYS.includes(key), () => `${where}: "within" has an unknown key "${oneLine(key, 40)}" (known: ${WITHIN_KEYS.join(', ')})`);
  check(typeof w.press === 'string' && PRESSES.some((p) => p.name === w.press),
    () => `${where}: "within" needs "press", a press name (see attend presses), got ${shown(w.press)}`);
  check(!setsOwnSize(w.press as string), () => `${where}: "within": ${w.press as string} sets its own size; give a press that takes a ratio`);
  check(typeof w.ratio === 'number' && w.ratio > 0 && w.ratio < 1,
    () => `${where}: "within" needs "ratio", a number in (0, 1), the share of the KV removed (got ${shown(w.ratio)})`);
  if (w.options !== undefined) {
    check(isObject(w.options) && Object.values(w.options).every((v) => typeof v === 'number' || typeof v === 'string'),
      () => `${where}: "within" "options" must be an object of numbers or strings such as {"window": 32} (got ${shown(w.options)})`);
  }
}

/** Whether a cell's method is a selector (selectors/registry.ts) rather than 'full' or a press. */
export function isSelectorMethod(method: string): boolean {
  return Object.hasOwn(SELECTORS, method);
}

function checkMethod(source: string, m: unknown, index: number): void {
  const where = `${source}: methods item ${index + 1}`;
  check(isObject(m), () => `${where} must be an object such as {"press": "snapkv", "ratios": [0.5]} (got ${shown(m)})`);
  for (const key of Object.keys(m)) check(METHOD_KEYS.includes(key), () => `${where}: unknown key "${oneLine(key, 40)}" (known: ${METHOD_KEYS.join(', ')})`);
  if (m.act !== undefined) {
    check(typeof m.act === 'string' && m.act !== '', () => `${where}: "act" must be the path of an ACT calibration file (attend heads --probe sinks --calibrate-act FILE), got ${shown(m.act)}`);
    check(m.selector === undefined, `${where}: "act" recomputes the calibrated heads over the whole cache and cannot run under a selector's entry lists`);
  }
  if (m.selector !== undefined && m.selector !== true) {
    check(m.press === undefined, `${where}: give "press" or "selector", not both`);
    check(typeof m.selector === 'string' && isSelectorMethod(m.selector),
      () => `${where}: "selector" must be a selector name (${Object.keys(SELECTORS).join(', ')}), got ${shown(m.selector)}`);
    for (const key of ['ratios', 'during']) {
      check(m[key] === undefined, `${where}: a selector drops nothing and takes no "${key}" (to compress first, give "within": {"press": …, "ratio": …})`);
    }
    if (m.within !== undefined) checkWithin(where, m.within);
    checkList(where, 'budgets', m.budgets, wholeAbove0, 'whole numbers > 0, the tokens each head reads per decoding step', '[256, 512]');
    if (m.options !== undefined) {
      check(isObject(m.options) && Object.values(m.options).every((v) => typeof v === 'number'),
        () => `${where}: "options" must be an object of numbers such as {"page": 16} (got ${shown(m.options)})`);
    }
    // Normalised: the selector's name is the cell's method.
    m.press = m.selector;
    m.selector = true;
    return;
  }
  if (m.prompt !== undefined && m.prompt !== true) {
    check(m.press === undefined && m.selector === undefined, `${where}: give one of "press", "selector" or "prompt"`);
    check(typeof m.prompt === 'string' && isPromptMethod(m.prompt),
      () => `${where}: "prompt" must be a prompt compressor's name (${Object.keys(PROMPT_METHODS).join(', ')}), got ${shown(m.prompt)}`);
    for (const key of ['during', 'within']) check(m[key] === undefined, `${where}: a prompt compressor runs before the prefill and takes no "${key}"`);
    check(m.ratios !== undefined || m.budgets !== undefined, `${where}: ${m.prompt as string} needs ratios or budgets`);
    if (m.ratios !== undefined) {
      checkList(where, 'ratios', m.ratios, (r) => typeof r === 'number' && r > 0 && r < 1, "numbers in (0, 1), the share of the prompt's tokens removed", '[0.5, 0.75]');
    }
    if (m.budgets !== undefined) checkList(where, 'budgets', m.budgets, wholeAbove0, "whole numbers > 0, the prompt's tokens kept", '[1024, 2048]');
    check(isObject(m.options), () => `${where}: ${m.prompt as string} needs "options" such as {"draft": "models/attend-mini-draft"} (got ${shown(m.options)})`);
    checkPromptOptions(m.prompt as string, m.options as Record<string, number | string>, where);
    // Normalised as a selector is: the compressor's name is the cell's method.
    m.press = m.prompt;
    m.prompt = true;
    return;
  }
  if (m.prompt === true) {
    // Checked again after normalisation (or written so by hand): the name moved to "press".
    check(typeof m.press === 'string' && isPromptMethod(m.press),
      () => `${where}: "prompt" must be a prompt compressor's name (${Object.keys(PROMPT_METHODS).join(', ')}), got ${shown(m.press)}`);
    checkPromptOptions(m.press, (isObject(m.options) ? m.options : {}) as Record<string, number | string>, where);
    return;
  }
  check(typeof m.press === 'string' && m.press !== '', () => `${where}: "press" must be "full" or a press name (see attend presses), got ${shown(m.press)}`);
  // A selector method checked again after normalisation (its name moved to "press") keeps its "within".
  if (m.selector === true && m.within !== undefined) checkWithin(where, m.within);
  else check(m.within === undefined, `${where}: "within" belongs to a selector method ({"selector": …, "budgets": […], "within": …})`);
  const name = m.press;
  if (name === 'full') {
    for (const key of ['ratios', 'budgets', 'during', 'options']) {
      check(m[key] === undefined, `${where}: full KV keeps every entry and takes no "${key}"`);
    }
    return;
  }
  if (setsOwnSize(name)) {
    for (const key of ['ratios', 'budgets']) {
      check(m[key] === undefined, `${where}: ${name} sets its own size and takes no "${key}" (give its options instead)`);
    }
  } else check(m.ratios !== undefined || m.budgets !== undefined, `${source}: method ${name} needs ratios or budgets`);
  if (m.ratios !== undefined) {
    checkList(where, 'ratios', m.ratios, (r) => typeof r === 'number' && r > 0 && r < 1, 'numbers in (0, 1), the share of the KV removed', '[0.5, 0.75]');
  }
  if (m.budgets !== undefined) checkList(where, 'budgets', m.budgets, wholeAbove0, 'whole numbers > 0, the tokens kept', '[256, 512]');
  check(m.during === undefined || m.during === 'prefill' || m.during === 'chunks',
    () => `${where}: "during" must be "prefill" or "chunks" (got ${shown(m.during)})`);
  if (m.options !== undefined) {
    check(isObject(m.options), () => `${where}: "options" must be an object such as {"window": 32} (got ${shown(m.options)})`);
    for (const [key, value] of Object.entries(m.options)) {
      check(typeof value === 'number' || typeof value === 'string',
        () => `${where}: option "${oneLine(key, 40)}" must be a number or a string (got ${shown(value)})`);
    }
  }
}

/**
 * Checks the types of every field of a sweep config, so that a wrong one ends in a one-line error naming the
 * field and what it must be, before anything else reads it. Whether tasks, presses and lengths exist for the
 * model is validateSweep's part.
 */
export function checkSweepShape(config: unknown, source: string): asserts config is SweepConfig {
  check(isObject(config), `${source}: the sweep config must be a JSON object`);
  checkList(source, 'tasks', config.tasks, (t) => typeof t === 'string' && t !== '', 'task names', '["niah_single", "passkey"]');
  checkList(source, 'contextLengths', config.contextLengths, wholeAbove0, 'whole numbers of tokens > 0', '[2048, 4096]');
  checkList(source, 'depths', config.depths, (d) => typeof d === 'number' && d >= 0 && d <= 1, 'needle depths in [0, 1]', '[0, 0.5, 1]');
  check(wholeAbove0(config.samples), () => `${source}: "samples" must be a whole number > 0 (got ${shown(config.samples)})`);
  check(Array.isArray(config.methods) && config.methods.length > 0,
    () => `${source}: "methods" must be a non-empty list such as [{"press": "full"}, {"press": "snapkv", "ratios": [0.5]}] (got ${shown(config.methods)})`);
  config.methods.forEach((m, i) => checkMethod(source, m, i));
  checkList(source, 'queryAware', config.queryAware, (q) => typeof q === 'boolean', 'true or false', '[false, true]');
  check(wholeAbove0(config.prefillChunk), () => `${source}: "prefillChunk" must be a whole number of tokens > 0 (got ${shown(config.prefillChunk)})`);
  check(typeof config.seed === 'number' && Number.isInteger(config.seed) && config.seed >= 0 && config.seed <= MAX_SEED,
    () => `${source}: "seed" must be a whole number in [0, ${MAX_SEED}] (got ${shown(config.seed)})`);
  check(typeof config.sharedPrefill === 'boolean', () => `${source}: "sharedPrefill" must be true or false (got ${shown(config.sharedPrefill)})`);
  check(config.seedPerInstance === undefined || typeof config.seedPerInstance === 'boolean',
    () => `${source}: "seedPerInstance" must be true or false (got ${shown(config.seedPerInstance)})`);
}

/** A parsed sweep config (JSON.parse's value) with the defaults filled in and every field's type checked. */
export function parseSweepConfig(raw: unknown, source: string): SweepConfig {
  return oneLineErrors(() => parseSweepConfigAsGiven(raw, source));
}

/**
 * Runs `work` with its user errors made one line: names taken from the config (a task, a press, an option, the
 * file's own path) may hold newlines, and other modules' messages quote them as they are.
 */
function oneLineErrors<T>(work: () => T): T {
  try {
    return work();
  } catch (e) {
    if (e instanceof AttendError) throw new AttendError(oneLine(e.message, 500));
    throw e;
  }
}

function parseSweepConfigAsGiven(raw: unknown, source: string): SweepConfig {
  check(isObject(raw), `${source}: the sweep config must be a JSON object`);
  const known = Object.keys(SWEEP_DEFAULTS);
  for (const key of Object.keys(raw)) check(known.includes(key), () => `${source}: unknown key "${oneLine(key, 40)}" (known: ${known.join(', ')})`);
  const config: unknown = { ...SWEEP_DEFAULTS, ...raw };
  checkSweepShape(config, source);
  checkCellCount(config, source);
  return config;
}

/**
 * Whether `name` is a registered press that sets its own size (PressEntry.sizesItself: DMS, SimLayerKV, the decoding
 * presses): its method has no ratios or budgets, one cell per query mode with no budget (run-cell.ts planOf).
 */
export function setsOwnSize(name: string): boolean {
  return PRESSES.some((p) => p.name === name && p.sizesItself === true);
}

/** The budgets a method runs at, one cell each (and per query mode): null for full KV and for presses that size themselves. */
function methodBudgets(m: MethodSpec): CellKey['budget'][] {
  if (m.press === 'full' || (!m.selector && setsOwnSize(m.press))) return [null];
  return [...(m.ratios ?? []).map((ratio) => ({ ratio })), ...(m.budgets ?? []).map((tokens) => ({ tokens }))];
}

/** The query modes a method runs in: a press (or a selector over one) in each of the sweep's; full KV and a bare selector, which compress nothing, in one. */
function queryModes(config: SweepConfig, m: MethodSpec): boolean[] {
  if (m.prompt) return [true];
  return m.press === 'full' || (m.selector && !m.within) ? [false] : config.queryAware;
}

/** How many cells expandSweep makes of `config`, computed without making them. */
export function countCells(config: SweepConfig): number {
  const perInstance = config.methods.reduce(
    (n, m) => n + (m.press === 'full' ? 1 : methodBudgets(m).length * queryModes(config, m).length), 0);
  const instances = config.tasks.reduce(
    (n, task) => n + (taskByName(task).hasDepth ? config.depths.length : 1) * config.contextLengths.length * config.samples, 0);
  return instances * perInstance;
}

function checkCellCount(config: SweepConfig, source: string): void {
  for (const task of config.tasks) taskByName(task);
  const n = countCells(config);
  check(n <= MAX_SWEEP_CELLS, () => `${source}: the sweep has ${n.toLocaleString('en-US')} cells, more than MAX_SWEEP_CELLS = `
    + `${MAX_SWEEP_CELLS.toLocaleString('en-US')} (src/eval/sweep-config.ts); split it into smaller sweeps (fewer samples, lengths, depths or methods)`);
}

/** Checks a config against the model's context and the known tasks and presses. */
export function validateSweep(config: SweepConfig, modelContext: number, source: string): void {
  oneLineErrors(() => validateSweepAsGiven(config, modelContext, source));
}

function validateSweepAsGiven(config: SweepConfig, modelContext: number, source: string): void {
  checkSweepShape(config, source);
  checkCellCount(config, source);
  for (const n of config.contextLengths) {
    check(n <= modelContext, `${source}: context length ${n} is longer than the model's context of ${modelContext}`);
  }
  for (const m of config.methods) {
    if (m.act !== undefined) readActCell(m.act, source);
    if (m.press === 'full') continue;
    if (m.prompt) {
      check(!config.tasks.includes('perplexity'), `${source}: ${m.press} compresses a prompt before its prefill and has no perplexity cells; run it on prompted tasks`);
      checkPromptOptions(m.press, m.options ?? {}, source);
      continue;
    }
    if (m.selector) {
      for (const budget of m.budgets ?? []) createSelector(m.press, { ...(m.options as Record<string, number>), budget });
      if (m.within) resolveOptions(pressEntry(m.within.press), m.within.options ?? {});
    }
    else resolveOptions(pressEntry(m.press), m.options ?? {});
  }
}

/** Every cell of the sweep, in the order they run: grouped by instance so each prompt is built once. */
export function expandSweep(config: SweepConfig, model: string): CellKey[] {
  oneLineErrors(() => {
    checkSweepShape(config, 'the sweep');
    checkCellCount(config, 'the sweep');
  });
  const cells: CellKey[] = [];
  // Each method's ACT calibration, read once (eval/act-method.ts).
  const acts = config.methods.map((m) => (m.act === undefined ? undefined : oneLineErrors(() => readActCell(m.act!, 'the sweep'))));
  let instance = 0;
  for (const task of config.tasks) {
    const depths = taskByName(task).hasDepth ? config.depths : [null];
    for (const contextLength of config.contextLengths) {
      for (const depth of depths) {
        for (let sample = 0; sample < config.samples; sample++) {
          const seed = config.seed * 1_000_003 + (config.seedPerInstance ? instance++ : sample);
          for (const [mi, m] of config.methods.entries()) {
            const budgets = methodBudgets(m);
            const aware = queryModes(config, m);
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
                  during: m.press === 'full' || m.selector || m.prompt ? null : (m.during ?? 'prefill'),
                  queryAware,
                  prefillChunk: config.prefillChunk,
                  ...(m.within ? { within: m.within } : {}),
                  ...(acts[mi] ? { act: acts[mi] } : {}),
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
