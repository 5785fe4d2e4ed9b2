/**
 * DuoAttention (Xiao et al. 2024, "DuoAttention: Efficient Long-Context LLM Inference with Retrieval and Streaming
 * Heads", arXiv 2410.10819; official code mit-han-lab/duo-attention), applying a published attention pattern as
 * kvpress's DuoAttentionPress does (kvpress/presses/duo_attention_press.py at 8bb29b9, the oracle).
 *
 * Rule: every KV head of every layer has a trained gate α in [0, 1] (its share of full attention, optimised by
 * distillation on synthetic passkey data: tools/duo_attention/train_gates.py). With `--ratio R`, the round(N·R) heads
 * of lowest gate among all N = layers × KV heads become streaming heads (kvpress's head_compression_ratio:
 * `n_pruned = round(size · ratio)`, `np.argsort(head_scores, axis=None)[:n_pruned]`); the others are retrieval heads.
 * A retrieval head keeps its whole cache. A streaming head keeps its first `sink_size` entries (attention sinks) and
 * its last `recent_size` entries and frees the rest (head.keep): memory really freed, where kvpress only masks the
 * keys `[sink_size : -recent_size]` of a streaming head (its attention patch replaces them by a fake key that
 * attention weighs 0). A head holding no more than sink + recent entries keeps them all.
 *
 * When (runner.ts): with the plan's default (`--press-during prefill`) once, after the whole prompt ran with full
 * attention, as kvpress; with `--press-during chunks` after every prefill chunk, so a streaming head never holds more
 * than sink + recent + one chunk — the official inference (duo_attn/patch/llama.py, one_way_reordered): the first
 * chunk runs full attention, each later chunk's queries attend the streaming head's sinks, recent window and the
 * chunk, and after every forward the streaming cache is cut back to sink + recent. While decoding the press compresses
 * after every step by default (PressEntry.decode = every 1), the official cache's rolling window, so a streaming head
 * stays at sink + recent; kvpress's masks are fixed at the prefill (its streaming heads grow while decoding).
 *
 * The pattern: a directory in the official format (attn_patterns/<model>/<setting>/ of the official repository, what
 * duo_attn/utils.py load_attn_pattern and kvpress read): `config.json` with integer `sink_size` and `recent_size`
 * (the training run's whole argument dictionary; only these two are read), and `full_attention_heads.tsv`, one row
 * per layer, one tab-separated gate per KV head (np.savetxt's "%.18e"; np.loadtxt's rules: blank lines and text
 * after '#' ignored). Gates are clipped to [0, 1] as both loaders do. The options `sink-size` and `recent-size`
 * replace the pattern's values, as the official evaluation scripts' --sink_size/--recent_size do (they deploy 64 and
 * 256 on patterns trained with 128 and 256); kvpress has no such option, so by default the pattern's values hold.
 *
 * Defaults: the pattern's sink and recent sizes (the published patterns: 128 and 256, from scripts/train.sh).
 * Choices where the sources leave room:
 *  - ties between gates (trained gates clamp to exactly 0 or 1): the earlier head, in layer-major order, becomes
 *    streaming first (a stable sort). numpy's default argsort is not stable in general, so kvpress may break such a
 *    tie otherwise; the official sparsify_attention_heads adds U(0, 1e-6) noise and thresholds at a quantile instead,
 *    which picks about as many heads (same count for most N·R), at random among ties.
 *  - the budget: `--ratio` is the share of KV heads made streaming, not of entries (as ThinK's is of key channels);
 *    the share of entries freed follows from the pattern and the length (kvpress's compression_ratio property,
 *    R · (1 − (sink + recent)/length)). A token budget (`--budget`) names no share of heads and is refused.
 *  - `recent_size` 0 is refused: kvpress's slice `[sink : -0]` would mask nothing and the official `[:, -0:]` keeps
 *    everything, slicing accidents rather than a window of 0 (use streaming-llm for sinks alone).
 *  - sinks and the recent window count entries of the head as it is (kvpress's and the official code's indices into
 *    the cache), which under this press alone are positions 0…sink−1 and the latest ones.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { AttendError } from '../errors.js';
import type { ModelConfig } from '../models/config.js';
import { roundHalfEven } from './lukv.js';
import type { CompressionContext, LayerView, Press } from './press.js';
import { readJsonObject } from './trained-files.js';

/** The two files of a pattern directory, as the official repository names them. */
export const PATTERN_CONFIG = 'config.json';
export const PATTERN_GATES = 'full_attention_heads.tsv';

export interface DuoPattern {
  /** The directory it was read from (for messages). */
  source: string;
  sinkSize: number;
  recentSize: number;
  /** layers × KV heads, clipped to [0, 1]. */
  gates: number[][];
}

/** Replacements of the pattern's sizes (the official evaluation's --sink_size/--recent_size); undefined keeps them. */
export interface DuoAttentionOptions {
  sinkSize?: number;
  recentSize?: number;
}

/**
 * The gate table of a full_attention_heads.tsv text: rows of tab-separated numbers, every row as long as the first.
 * np.loadtxt's reading: text after '#' and blank lines are ignored, spaces around a field are allowed.
 */
export function parseGates(text: string, file: string): number[][] {
  const rows: number[][] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const fields = line.split('\t');
    const row = fields.map((f, c) => {
      const value = Number(f.trim());
      if (f.trim() === '' || !Number.isFinite(value)) {
        throw new AttendError(`duo-attention: ${file}: line ${i + 1}, column ${c + 1}: "${f.trim()}" is not a finite number (gates are tab-separated)`);
      }
      return value;
    });
    if (rows.length > 0 && row.length !== rows[0].length) {
      throw new AttendError(`duo-attention: ${file}: line ${i + 1} has ${row.length} gates, the first row ${rows[0].length} (one gate per KV head in every row)`);
    }
    rows.push(row);
  });
  if (rows.length === 0) throw new AttendError(`duo-attention: ${file}: no gates (one row per layer, one tab-separated gate per KV head)`);
  return rows.map((row) => row.map((g) => Math.min(1, Math.max(0, g))));
}

/** A size of config.json: a whole number ≥ `min`. */
function sizeOf(config: Record<string, unknown>, key: string, min: number, file: string): number {
  const v = config[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new AttendError(`duo-attention: ${file}: "${key}" must be a whole number ≥ ${min}, got ${JSON.stringify(v) ?? 'nothing'}`);
  }
  return v;
}

/** Reads a pattern directory in the official format (config.json + full_attention_heads.tsv). */
export function readDuoPattern(dir: string): DuoPattern {
  const what = `a DuoAttention pattern directory: ${PATTERN_CONFIG} (sink_size, recent_size) + ${PATTERN_GATES}`;
  if (!dir) throw new AttendError(`press duo-attention needs --press-opt pattern=DIR (${what})`);
  if (!existsSync(dir)) throw new AttendError(`duo-attention: ${dir} does not exist (${what})`);
  if (!statSync(dir).isDirectory()) throw new AttendError(`duo-attention: ${dir} is not a directory (${what})`);
  const configFile = join(dir, PATTERN_CONFIG);
  const gatesFile = join(dir, PATTERN_GATES);
  for (const f of [configFile, gatesFile]) if (!existsSync(f)) throw new AttendError(`duo-attention: ${f} does not exist (${what})`);
  const config = readJsonObject('duo-attention', configFile);
  return {
    source: dir,
    sinkSize: sizeOf(config, 'sink_size', 0, configFile),
    // recent_size 0: see the top of this file.
    recentSize: sizeOf(config, 'recent_size', 1, configFile),
    gates: parseGates(readFileSync(gatesFile, 'utf8'), gatesFile),
  };
}

/** Refuses a pattern made for another shape: one row per layer, one gate per KV head. */
export function checkPatternShape(pattern: DuoPattern, config: Pick<ModelConfig, 'numLayers' | 'numKvHeads' | 'modelType'>): void {
  const file = join(pattern.source, PATTERN_GATES);
  if (pattern.gates.length !== config.numLayers) {
    throw new AttendError(`duo-attention: ${file} has ${pattern.gates.length} rows, this model (${config.modelType}) has ${config.numLayers} layers (one row per layer)`);
  }
  if (pattern.gates[0].length !== config.numKvHeads) {
    throw new AttendError(`duo-attention: ${file} has ${pattern.gates[0].length} gates per row, this model (${config.modelType}) has ${config.numKvHeads} KV heads per layer`);
  }
}

/**
 * Which heads are streaming: the round(N·ratio) lowest gates of all N (kvpress's n_pruned, Python's round), ties to
 * the earlier head in layer-major order. [layer][KV head].
 */
export function streamingHeads(gates: readonly (readonly number[])[], ratio: number): boolean[][] {
  const flat = gates.flatMap((row, l) => row.map((g, h) => ({ g, l, h, i: l * row.length + h })));
  const n = Math.max(0, Math.min(flat.length, roundHalfEven(flat.length * ratio)));
  const out = gates.map((row) => row.map(() => false));
  flat.sort((a, b) => a.g - b.g || a.i - b.i).slice(0, n).forEach(({ l, h }) => (out[l][h] = true));
  return out;
}

/** Entry indices a streaming head of `length` entries keeps: the first `sink` and the last `recent` (ascending). */
export function streamingKept(length: number, sink: number, recent: number): Int32Array {
  if (length <= sink + recent) return Int32Array.from({ length }, (_, i) => i);
  const out = new Int32Array(sink + recent);
  for (let i = 0; i < sink; i++) out[i] = i;
  for (let i = 0; i < recent; i++) out[sink + i] = length - recent + i;
  return out;
}

export class DuoAttentionPress implements Press {
  readonly name = 'duo-attention';
  readonly needs = {};
  readonly sinkSize: number;
  readonly recentSize: number;
  /** [layer][KV head], set by prepare from the plan's ratio. */
  private streaming?: boolean[][];

  constructor(readonly pattern: DuoPattern, options: DuoAttentionOptions = {}) {
    this.sinkSize = options.sinkSize ?? pattern.sinkSize;
    this.recentSize = options.recentSize ?? pattern.recentSize;
    if (!Number.isInteger(this.sinkSize) || this.sinkSize < 0) throw new AttendError(`duo-attention: sink-size must be a whole number ≥ 0, got ${this.sinkSize}`);
    if (!Number.isInteger(this.recentSize) || this.recentSize < 1) throw new AttendError(`duo-attention: recent-size must be a whole number ≥ 1, got ${this.recentSize}`);
  }

  /** The streaming heads of the plan's ratio, checked against the model's shape. */
  prepare(context: CompressionContext): void {
    const budget = context.budget;
    if (!budget || !('ratio' in budget)) {
      throw new AttendError('duo-attention: --ratio is the share of KV heads made streaming; a token budget (--budget) names no share of heads');
    }
    // Chosen again at every compression (a sort of layers × KV heads gates): cheap, and always the plan's model.
    checkPatternShape(this.pattern, context.model.config);
    this.streaming = streamingHeads(this.pattern.gates, budget.ratio);
  }

  /** The streaming heads chosen at the last prepare, [layer][KV head]. */
  streamingMask(): boolean[][] | undefined {
    return this.streaming?.map((row) => row.slice());
  }

  /** 1 for the entries the rule keeps, 0 for the others. */
  score(view: LayerView): Float32Array[] {
    const streaming = this.streaming?.[view.layer];
    if (!streaming) throw new AttendError('duo-attention chooses its streaming heads from the plan\'s ratio: it runs in a CompressionSession, not as another press\'s scorer');
    return view.cache.heads.map((head, h) => {
      const s = new Float32Array(head.length);
      if (!streaming[h]) return s.fill(1);
      for (const i of streamingKept(head.length, this.sinkSize, this.recentSize)) s[i] = 1;
      return s;
    });
  }

  /** Retrieval heads keep everything, streaming heads their sinks and recent window, whatever the per-head budget. */
  select(_view: LayerView, scores: Float32Array[]): Int32Array[] {
    return scores.map((s) => {
      const kept: number[] = [];
      for (let i = 0; i < s.length; i++) if (s[i] === 1) kept.push(i);
      return Int32Array.from(kept);
    });
  }
}

/** The press from its registry options: `pattern` (required), `sink-size` and `recent-size` ('' keeps the pattern's). */
export function duoAttentionFrom(options: Record<string, number | string>): DuoAttentionPress {
  const size = (key: string, min: number): number | undefined => {
    const text = String(options[key] ?? '').trim();
    if (text === '') return undefined;
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new AttendError(`press duo-attention: option ${key} must be a whole number ≥ ${min}, got "${text}"`);
    return n;
  };
  return new DuoAttentionPress(readDuoPattern(String(options.pattern ?? '')), { sinkSize: size('sink-size', 0), recentSize: size('recent-size', 1) });
}
