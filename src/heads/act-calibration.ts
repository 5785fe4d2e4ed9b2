/**
 * ACT, the attention calibration technique (Yu et al. 2024, "Unveiling and Harnessing Hidden Attention Sinks:
 * Enhancing Large Language Models without Training through Attention Calibration", ICML 2024, arXiv 2406.15765;
 * official code GATECH-EIC/ACT at a267af7, models/llama_modelling_aug.py `atten_process_eval`/`atten_process_cal`,
 * scripts/evaluation.sh): at inference, in the query heads a calibration names, the attention that goes to the
 * head's hidden sinks is scaled down and handed to the other tokens.
 *
 * Rule, per forward call and calibrated query head, on its softmax attention map p (rows: the call's queries; columns:
 * the entries they see):
 *  - the sinks are detected on this very map (input-adaptive): a key's mean received attention, its column sum over
 *    the rows that see it divided by their number, exceeds `threshold`, and the first key that passes is left out
 *    (heads/sinks.ts sinkIndices: `sum(dim=0) / arange(N, 0, -1) > THRES`, `indices[1:]`); THRES = 0.1;
 *  - each row r gives up (1 − β) of what its sinks hold, S_r = Σ_{s∈sinks} p[r,s]: p[r,s] ← β·p[r,s], and the freed
 *    (1 − β)·S_r goes to the row's other entries in proportion to their attention, p[r,j] ← p[r,j] + (1 − β)·S_r ·
 *    p[r,j] / Σ_{i∉sinks} p[r,i] (the official `available_weights * ratios`, ratios the row with its sink columns
 *    zeroed, normalised); the row still sums to 1; β = 0.4 (BETA in both official scripts);
 *  - the head's output is the calibrated map times the values.
 * The official code runs it on whole prompts in one forward (classification: one forward; multiple choice: a
 * one-token generate), where the map is N × N and N − k rows see key k; Attend applies the same rule to every forward
 * call as it comes, so a prompt run as one forward (a prefill chunk at least as long as the prompt) is the official
 * computation, a chunked prefill detects per chunk, and a decoding step detects on its one row (the official decode
 * steps do the same: arange(1, 0, -1) = [1]). The official code also sets the first row's weight on the first key
 * to 1 (`modified_head[0, 0] = 1`), which in a prefill from position 0 is what that row already holds; at a decoding
 * step the first row is the new token, where that line would break the row's sum (and its sink columns are not zeroed
 * in `ratios`): not reproduced, every row follows the rule above. A row whose visible entries are all sinks is left as
 * it is (the official 0/0 would give NaN; with the first passing key left out, the first token is never a sink in a
 * causal prefill, so this needs a cache without its first entry).
 * Which heads: the calibration file (ActCalibration, written by `attend heads --probe sinks --calibrate-act FILE`,
 * heads/act-search.ts: the paper's offline search on a calibration set).
 *
 * The seam (Attend's choice): a model wrapper, as withHooks is (models/model.ts). The calibrated layers' post-RoPE
 * queries are captured through each sequence's AttentionObserver (`queries`, chained with the sequence's own
 * observer), and the `headOutputs` hook recomputes the calibrated query heads' outputs from those queries and the
 * layer's cache (the keys and values the layer just appended included), with the layer's sliding window and the
 * entries' log weights (ENTRY_LOG_WEIGHT); every other head keeps the backend's output. The recomputation is plain f64
 * loops on the host, in two passes over the rows (column sums, then calibrated outputs), so nothing of size
 * rows × entries is kept. A kernel variant would have to see all of a call's rows before weighing any (the detection
 * is over the whole map), which no kernel does now. Selectors' entry lists and kernels other than softmax are
 * refused.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { AttentionObserver } from '../backend/backend.js';
import { ENTRY_LOG_WEIGHT, type HeadMemory } from '../cache/head-memory.js';
import { kernelOf } from '../attention/kernels/index.js';
import { AttendError, check } from '../errors.js';
import type { ModelConfig } from '../models/config.js';
import { type CausalLM, chainHooks, type ForwardHooks } from '../models/model.js';
import type { SequenceStep } from '../models/batch.js';
import { SINK_THRESHOLD, sinkIndices } from './sinks.js';

/** β of the official scripts: the share of their attention the sinks keep. */
export const ACT_BETA = 0.4;

/** Which query heads are calibrated, and how (the file `--act FILE` reads). */
export interface ActCalibration {
  method: 'act';
  beta: number;
  threshold: number;
  /** Query heads, counted from 0. */
  heads: { layer: number; head: number }[];
  /** The model it was searched on, and the search's record (heads/act-search.ts); not read back. */
  model?: string;
  search?: unknown;
}

/** Checks a calibration against a model's shape; one-line errors. */
export function checkCalibration(cal: ActCalibration, config: Pick<ModelConfig, 'numLayers' | 'numHeads'>, source = 'ACT calibration'): void {
  check(Number.isFinite(cal.beta) && cal.beta >= 0 && cal.beta <= 1, `${source}: beta must be in [0, 1], got ${cal.beta}`);
  check(Number.isFinite(cal.threshold) && cal.threshold >= 0 && cal.threshold <= 1, `${source}: threshold must be in [0, 1], got ${cal.threshold}`);
  check(Array.isArray(cal.heads), `${source}: heads must be a list of {layer, head}`);
  for (const h of cal.heads) {
    check(Number.isInteger(h?.layer) && h.layer >= 0 && h.layer < config.numLayers && Number.isInteger(h.head) && h.head >= 0 && h.head < config.numHeads,
      `${source}: head ${h?.layer}.${h?.head} is not one of the model's ${config.numLayers} layers × ${config.numHeads} query heads`);
  }
}

/** Reads a calibration file (JSON: method "act", beta, threshold, heads [{layer, head}]). */
export function readActCalibration(path: string): ActCalibration {
  check(existsSync(path), `--act: ${path} does not exist`);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new AttendError(`--act: ${path} is not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  check(typeof json === 'object' && json !== null && json.method === 'act', `--act: ${path} is not an ACT calibration (expected "method": "act")`);
  return {
    method: 'act',
    beta: Number(json.beta ?? ACT_BETA),
    threshold: Number(json.threshold ?? SINK_THRESHOLD),
    heads: json.heads as ActCalibration['heads'],
    model: typeof json.model === 'string' ? json.model : undefined,
  };
}

/** What one calibrated head of one call gives: its output rows and the sinks it detected (entry indices). */
export interface CalibratedHead {
  out: Float32Array;
  sinks: number[];
}

/**
 * The rule on one query head over one KV head's entries: `q` holds the call's query rows of this head ([rows × d],
 * post-RoPE), `positions` their positions; entries visible causally (and within `window`), scores q·k·scale plus the
 * entries' log weights, softmax, sinks detected over the call's rows, rows calibrated, times the values. f64.
 */
export function calibratedHead(
  q: Float32Array,
  positions: ArrayLike<number>,
  head: HeadMemory,
  scale: number,
  window: number | null,
  beta: number,
  threshold: number,
): CalibratedHead {
  const d = head.headDim;
  const n = head.length;
  const keys = head.keys(0, n);
  const values = head.values(0, n);
  const entryPositions = head.positions;
  const logWeights = head.hasStat?.(ENTRY_LOG_WEIGHT) ? head.stat(ENTRY_LOG_WEIGHT) : null;
  const rows = positions.length;
  const p = new Float64Array(n);
  /** Row r's softmax over its visible entries [lo, hi) into p; returns the range. */
  const weights = (r: number): [number, number] => {
    const pos = positions[r];
    let hi = 0;
    while (hi < n && entryPositions[hi] <= pos) hi++;
    let lo = 0;
    if (window !== null) while (lo < hi && entryPositions[lo] <= pos - window) lo++;
    let max = -Infinity;
    for (let j = lo; j < hi; j++) {
      let dot = 0;
      for (let x = 0; x < d; x++) dot += q[r * d + x] * keys[j * d + x];
      p[j] = dot * scale + (logWeights ? logWeights[j] : 0);
      if (p[j] > max) max = p[j];
    }
    let sum = 0;
    for (let j = lo; j < hi; j++) sum += p[j] = Math.exp(p[j] - max);
    for (let j = lo; j < hi; j++) p[j] /= sum;
    return [lo, hi];
  };
  // Pass 1: each entry's attention summed over the rows that see it, and their number.
  const received = new Float64Array(n);
  const seenBy = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    const [lo, hi] = weights(r);
    for (let j = lo; j < hi; j++) {
      received[j] += p[j];
      seenBy[j] += 1;
    }
  }
  const sinks = sinkIndices(Float64Array.from(received, (s, j) => (seenBy[j] > 0 ? s / seenBy[j] : 0)), threshold);
  const isSink = new Uint8Array(n);
  for (const s of sinks) isSink[s] = 1;
  // Pass 2: each row calibrated, then its output.
  const out = new Float32Array(rows * d);
  const acc = new Float64Array(d);
  for (let r = 0; r < rows; r++) {
    const [lo, hi] = weights(r);
    let held = 0;
    let rest = 0;
    for (let j = lo; j < hi; j++) {
      if (isSink[j]) held += p[j];
      else rest += p[j];
    }
    if (held > 0 && rest > 0) {
      const give = ((1 - beta) * held) / rest;
      for (let j = lo; j < hi; j++) p[j] = isSink[j] ? beta * p[j] : p[j] + give * p[j];
    }
    acc.fill(0);
    for (let j = lo; j < hi; j++) {
      const w = p[j];
      if (w === 0) continue;
      for (let x = 0; x < d; x++) acc[x] += w * values[j * d + x];
    }
    for (let x = 0; x < d; x++) out[r * d + x] = acc[x];
  }
  return { out, sinks };
}

export interface ActOptions {
  /** Called with the sinks each calibrated head detected in each call (entry indices of its KV head). */
  onSinks?: (layer: number, head: number, sinks: number[], step: number) => void;
}

/**
 * The model with ACT on every forward: the calibration's query heads recomputed with their sinks calibrated, every
 * other head as the backend computes it. Like withHooks, every path through the model (prefill, generation,
 * benchmarks) runs it.
 */
export function withActCalibration(model: CausalLM, cal: ActCalibration, opts: ActOptions = {}): CausalLM {
  const c = model.config;
  checkCalibration(cal, c);
  const kernel = kernelOf(c.attentionKernel).spec.name;
  check(kernel === 'softmax', `ACT calibrates softmax attention; the model runs the ${kernel} kernel`);
  const byLayer = new Map<number, number[]>();
  for (const { layer, head } of cal.heads) byLayer.set(layer, [...new Set([...(byLayer.get(layer) ?? []), head])].sort((a, b) => a - b));
  const d = c.headDim;
  const width = c.numHeads * d;
  const group = c.numHeads / c.numKvHeads;
  const scale = 1 / Math.sqrt(d);

  const forwardBatch: CausalLM['forwardBatch'] = (steps, fopts = {}) => {
    if (byLayer.size === 0) return model.forwardBatch(steps, fopts);
    for (const s of steps) check(s.select === undefined, 'ACT recomputes the calibrated heads over the whole cache; it cannot follow a selector\'s entry lists');
    // Each sequence's queries of the calibrated layers, captured as attention is about to run.
    const captured = steps.map(() => new Map<number, { q: Float32Array; positions: Int32Array }>());
    const wrapped: SequenceStep[] = steps.map((s, i) => ({ ...s, observer: capturing(s.observer, byLayer, captured[i]) }));
    const hooks: ForwardHooks = {
      headOutputs(layer, heads) {
        const list = byLayer.get(layer);
        if (!list) return;
        const out = model.backend.read(heads).slice();
        let start = 0;
        steps.forEach((s, i) => {
          const got = captured[i].get(layer);
          check(got !== undefined, `ACT: no queries were captured for layer ${layer}`);
          const rows = s.ids.length;
          for (const h of list) {
            const q = new Float32Array(rows * d);
            for (let r = 0; r < rows; r++) q.set(got!.q.subarray(r * width + h * d, r * width + (h + 1) * d), r * d);
            const head = s.cache.layers[layer].heads[Math.floor(h / group)];
            const res = calibratedHead(q, got!.positions, head, scale, c.slidingWindows[layer], cal.beta, cal.threshold);
            for (let r = 0; r < rows; r++) out.set(res.out.subarray(r * d, (r + 1) * d), (start + r) * width + h * d);
            opts.onSinks?.(layer, h, res.sinks, i);
          }
          start += rows;
          captured[i].delete(layer);
        });
        return model.backend.upload(heads.shape, out);
      },
    };
    return model.forwardBatch(wrapped, { ...fopts, hooks: chainHooks(hooks, fopts.hooks) });
  };
  return {
    config: model.config,
    backend: model.backend,
    forward: (ids, cache, fopts = {}) => forwardBatch([{ ids, cache, observer: fopts.observer, select: fopts.select }], fopts)[0],
    forwardBatch,
    makeCache: (dtype) => model.makeCache(dtype),
    outputProjection: (layer) => model.outputProjection(layer),
    tokenizer: model.tokenizer,
  };
}

/**
 * `inner` with a `queries` callback that keeps a copy of the calibrated layers' queries; every other callback is
 * inner's own (an absent one stays absent: `observe` makes attention compute probability blocks).
 */
function capturing(
  inner: AttentionObserver | undefined,
  layers: Map<number, number[]>,
  into: Map<number, { q: Float32Array; positions: Int32Array }>,
): AttentionObserver {
  const o: AttentionObserver = {
    queries(layer, q, positions) {
      if (layers.has(layer)) into.set(layer, { q: q.slice(), positions: positions.slice() });
      inner?.queries?.(layer, q, positions);
    },
  };
  if (inner?.tokens) o.tokens = inner.tokens.bind(inner);
  if (inner?.attentionInput) o.attentionInput = inner.attentionInput.bind(inner);
  if (inner?.observe) o.observe = inner.observe.bind(inner);
  if (inner?.accumulate) o.accumulate = inner.accumulate;
  return o;
}
