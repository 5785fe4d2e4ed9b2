/**
 * ACT's offline head search (Yu et al. 2024, arXiv 2406.15765; GATECH-EIC/ACT at a267af7, scripts/calibration.sh
 * with main.py --calibrate 1): which query heads to calibrate, chosen on a calibration set by accuracy.
 *
 * The official procedure: every candidate head is calibrated alone (CALIBRATION=1, LAYER_NUM, HEAD_NUM: the one head
 * of the one layer) and the calibration set's accuracy logged (calibration_results/cal.log); the heads whose
 * calibration alone beats the uncalibrated accuracy make the set that evaluation calibrates together
 * (models/augment_index.py, per layer). Candidates: layers 2 … 30 of Llama-2-7B's 32 (the script's loop, and the
 * `signal in range(2, 31)` of evaluation), i.e. all but the first two and the last; every head of each. Defaults
 * β = 0.4, THRES = 0.1. `mode: 'greedy'` instead keeps a head when adding it to the heads kept so far raises the
 * accuracy (a cumulative variant; not the official script).
 *
 * Attend's calibration set (the official one mixes 900 items of each of nine classification or seven multiple-choice
 * datasets, which attend-mini cannot read): `samples` prompts of an `attend bench` task (TASKS: a held-out context
 * and its question, src/eval/tasks) at `length` tokens, seeds seed…seed + samples − 1; each prompt runs as one
 * forward (context and question together, as the official prompts run), then greedy decoding of the task's answer
 * length, scored as the bench scores it (strict match, part credit for several answers). `evalSamples` held-out
 * prompts (the seeds after the calibration ones) then compare the uncalibrated model with the calibrated one; both
 * accuracies come with n and the 95% Wilson interval (eval/scoring.ts).
 */
import { check } from '../errors.js';
import { score, wilson } from '../eval/scoring.js';
import { taskByName } from '../eval/tasks/index.js';
import type { TaskInstance } from '../eval/types.js';
import { prefill } from '../generate/prefill.js';
import { argmax } from '../generate/sampler.js';
import type { LoadedModel } from '../models/load.js';
import type { CausalLM } from '../models/model.js';
import { ACT_BETA, type ActCalibration, withActCalibration } from './act-calibration.js';
import { SINK_THRESHOLD } from './sinks.js';

export interface ActSearchOptions {
  task?: string;
  length?: number;
  samples?: number;
  seed?: number;
  evalSamples?: number;
  beta?: number;
  threshold?: number;
  /** Candidate layers (default: all but the first two and the last). */
  layers?: number[];
  mode?: 'independent' | 'greedy';
  progress?: (done: number, total: number) => void;
}

export const ACT_SEARCH_DEFAULTS = { task: 'niah_multivalue', length: 512, samples: 20, seed: 0, evalSamples: 0, mode: 'independent' as const };

/** The official candidate layers scaled to the model: 2 … layers − 2. */
export function officialLayers(numLayers: number): number[] {
  return Array.from({ length: Math.max(0, numLayers - 3) }, (_, i) => i + 2);
}

export interface Accuracy {
  n: number;
  /** Sum of the prompts' scores (part credit). */
  hits: number;
  accuracy: number;
  lo: number;
  hi: number;
}

/** A prompt of the calibration or evaluation set: the instance and its ids (context + question). */
export interface ActPrompt {
  instance: TaskInstance;
  ids: number[];
}

export function actPrompts(lm: LoadedModel, task: string, length: number, seeds: number[]): ActPrompt[] {
  const gen = taskByName(task);
  return seeds.map((seed) => {
    const instance = gen.generate({ seed, contextLength: length, tokenizer: lm.tokenizer });
    check('question' in instance, `ACT search: ${task} is not a question task`);
    const t = instance as TaskInstance;
    return { instance: t, ids: [...lm.tokenizer.encode(t.context), ...lm.tokenizer.encode(t.question, { addSpecialTokens: false })] };
  });
}

/** Greedy answers of `model` to the prompts (each prompt one forward), scored as the bench scores them. */
export function actAccuracy(lm: LoadedModel, model: CausalLM, prompts: ActPrompt[]): Accuracy {
  let hits = 0;
  const eos = lm.config.eosTokenIds ?? [];
  for (const { instance, ids } of prompts) {
    const cache = model.makeCache();
    let logits = prefill(model, cache, ids, { chunkSize: ids.length });
    const out: number[] = [];
    for (let t = 0; t < instance.maxNewTokens; t++) {
      const id = argmax(logits);
      if (eos.includes(id)) break;
      out.push(id);
      if (t + 1 < instance.maxNewTokens) logits = model.forward([id], cache, { lastOnly: true }).f32;
    }
    hits += score(instance, lm.tokenizer.decode(out));
  }
  return { n: prompts.length, hits, accuracy: prompts.length ? hits / prompts.length : 0, ...wilson(hits, prompts.length) };
}

export interface ActSearchRecord {
  task: string;
  length: number;
  samples: number;
  seed: number;
  mode: 'independent' | 'greedy';
  /** The uncalibrated accuracy on the calibration set. */
  baseline: Accuracy;
  /** Each candidate's calibration-set accuracy (independent: alone; greedy: with the heads kept before it). */
  candidates: { layer: number; head: number; accuracy: number; kept: boolean }[];
  /** The calibration set with every kept head calibrated. */
  calibrated: Accuracy;
  /** Held-out prompts (seeds after the calibration ones): uncalibrated, calibrated. */
  evaluation?: { seeds: [number, number]; full: Accuracy; act: Accuracy };
}

/** The search; the calibration it returns is what `--act FILE` applies. */
export function actSearch(lm: LoadedModel, options: ActSearchOptions = {}): ActCalibration & { search: ActSearchRecord } {
  const o = { ...ACT_SEARCH_DEFAULTS, beta: ACT_BETA, threshold: SINK_THRESHOLD, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as Required<ActSearchOptions>;
  const c = lm.config;
  const layers = options.layers ?? officialLayers(c.numLayers);
  check(layers.every((l) => Number.isInteger(l) && l >= 0 && l < c.numLayers), `ACT search: layers must be in 0…${c.numLayers - 1}, got ${layers}`);
  check(Number.isInteger(o.samples) && o.samples > 0, `ACT search: samples must be a whole number > 0, got ${o.samples}`);
  check(o.mode === 'independent' || o.mode === 'greedy', `ACT search: mode must be independent or greedy, got ${o.mode}`);
  const cal = (heads: ActCalibration['heads']): ActCalibration => ({ method: 'act', beta: o.beta, threshold: o.threshold, heads });
  const run = (heads: ActCalibration['heads'], prompts: ActPrompt[]) =>
    actAccuracy(lm, heads.length ? withActCalibration(lm.model, cal(heads)) : lm.model, prompts);
  const prompts = actPrompts(lm, o.task, o.length, Array.from({ length: o.samples }, (_, i) => o.seed + i));
  const candidates = layers.flatMap((layer) => Array.from({ length: c.numHeads }, (_, head) => ({ layer, head })));
  const total = candidates.length + 2;
  const baseline = run([], prompts);
  o.progress?.(1, total);
  const kept: ActCalibration['heads'] = [];
  let best = baseline.hits;
  const record: ActSearchRecord['candidates'] = candidates.map((h, i) => {
    const got = run(o.mode === 'greedy' ? [...kept, h] : [h], prompts);
    const keep = got.hits > (o.mode === 'greedy' ? best : baseline.hits);
    if (keep) {
      kept.push(h);
      if (o.mode === 'greedy') best = got.hits;
    }
    o.progress?.(i + 2, total);
    return { ...h, accuracy: got.accuracy, kept: keep };
  });
  const calibrated = run(kept, prompts);
  o.progress?.(total, total);
  const search: ActSearchRecord = { task: o.task, length: o.length, samples: o.samples, seed: o.seed, mode: o.mode, baseline, candidates: record, calibrated };
  if (o.evalSamples > 0) {
    const from = o.seed + o.samples;
    const held = actPrompts(lm, o.task, o.length, Array.from({ length: o.evalSamples }, (_, i) => from + i));
    search.evaluation = { seeds: [from, from + o.evalSamples - 1], full: run([], held), act: run(kept, held) };
  }
  return { ...cal(kept), model: lm.dir, search };
}
