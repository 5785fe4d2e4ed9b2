/**
 * Compactor (Chari & Van Durme 2025, "Compactor: Calibrated Query-Agnostic KV Cache Compression with Approximate
 * Leverage Scores", arXiv 2507.08143); kvpress's CompactorPress (compactor_press.py), which this follows.
 *
 * Rule (kvpress's): the first `sink-size-start` and the last `sink-size-end` entries are sinks; on the entries
 * between them (and the prompt's queries at the same positions) it computes the leverage scores of the pre-RoPE
 * keys (leverage-score.ts) and the non-causal chunked attention scores (non-causal-attention.ts), each z-scored
 * over that middle span of every head of the layer, and blends them as blending·leverage + attention. The sinks
 * then score the highest blended score of the layer (kvpress pads with scores.max(), not max + 1: a sink ties with
 * the best entry, and ties keep the earlier entry here).
 *
 * Defaults as kvpress's: sink-size-start 8, sink-size-end 4, chunk-size 256, sketch-dimension 48, blending 'ratio'
 * = the compression ratio (kvpress's blending=None; the paper tunes a fixed blending, kvpress says the ratio is a
 * good heuristic; its fallback 0.35 for a ratio of None cannot happen, a press always has a ratio here). Attend's
 * ratio is the budget's at the prefill (for a token budget, 1 − kept/held, as LayerView.ratio).
 * The leverage sketch is random: `seed` and `sketch=PATH` as in leverage-score.ts (one Φ per call, drawn before the
 * attention half, as kvpress calls its leverage press first).
 * Choices beyond kvpress (which asserts the prefill, once): when the cache is compressed again, the sinks are the
 * first and last entries each head holds, the middle queries those at positions [sinks start, seen − sinks end),
 * chunked from the first of them, each held entry in the chunk of its original position. A layer with no middle
 * entries (kvpress would fail on the max of nothing) scores every entry 0.
 */
import { AttendError } from '../errors.js';
import { zScoreAll } from './linalg.js';
import { GaussianSketch, checkSketchDimension, drawSketch, leverageRaw } from './leverage-score.js';
import { allQueries, checkChunkSize, nonCausalAttentionRaw, type ScoredSpan } from './non-causal-attention.js';
import type { LayerView, Press } from './press.js';

export interface CompactorOptions {
  sinkSizeStart: number;
  sinkSizeEnd: number;
  chunkSize: number;
  sketchDimension: number;
  /** Weight of the leverage scores; 'ratio' for the compression ratio (kvpress's default). */
  blending: number | 'ratio';
  seed: number;
  sketch: string;
}

export const COMPACTOR_DEFAULTS: CompactorOptions = {
  sinkSizeStart: 8,
  sinkSizeEnd: 4,
  chunkSize: 256,
  sketchDimension: 48,
  blending: 'ratio',
  seed: 0,
  sketch: '',
};

/** Reads the blending option: a finite number, or 'ratio'. */
export function parseBlending(raw: number | string): number | 'ratio' {
  if (typeof raw === 'string' && raw.trim() === 'ratio') return 'ratio';
  const value = typeof raw === 'number' ? raw : String(raw).trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(value)) throw new AttendError(`compactor: option blending must be a number or "ratio" (the compression ratio), got "${raw}"`);
  return value;
}

export class CompactorPress implements Press {
  readonly name = 'compactor';
  readonly needs = { queryWindow: Infinity };
  private readonly sketch: GaussianSketch;

  constructor(readonly options: CompactorOptions = COMPACTOR_DEFAULTS) {
    for (const key of ['sinkSizeStart', 'sinkSizeEnd'] as const) {
      const v = options[key];
      if (!(Number.isInteger(v) && v >= 0)) {
        throw new AttendError(`compactor: option ${key === 'sinkSizeStart' ? 'sink-size-start' : 'sink-size-end'} must be a whole number ≥ 0, got ${v}`);
      }
    }
    checkChunkSize(options.chunkSize, this.name);
    checkSketchDimension(options.sketchDimension, this.name);
    parseBlending(options.blending);
    this.sketch = new GaussianSketch(options.seed, options.sketch, this.name);
  }

  score(view: LayerView): Float32Array[] {
    const { sinkSizeStart, sinkSizeEnd, chunkSize, sketchDimension: k } = this.options;
    const queries = allQueries(view, this.name);
    const { numKvHeads, headDim } = view.config;
    // kvpress: left_keep = min(start, n), right_keep = min(end, max(0, n − left_keep)) — of the queries, and of
    // each head's entries.
    const sinks = (n: number): [number, number] => {
      const left = Math.min(sinkSizeStart, n);
      return [left, Math.min(sinkSizeEnd, Math.max(0, n - left))];
    };
    const [qLeft, qRight] = sinks(view.seen);
    const ranges = view.cache.heads.map((h): [number, number] => {
      const [left, right] = sinks(h.length);
      return [left, h.length - right];
    });
    const span: ScoredSpan = { qFrom: qLeft, qTo: view.seen - qRight, keys: ranges };

    const phi = drawSketch(this.sketch, numKvHeads, headDim, k);
    const leverage = zScoreAll(leverageRaw(view, phi, k, ranges, this.name));
    const attention = zScoreAll(nonCausalAttentionRaw(view, queries, chunkSize, span));
    const blending = this.options.blending === 'ratio' ? view.ratio : this.options.blending;

    const middle = leverage.map((l, h) => Float32Array.from(l, (x, t) => blending * x + attention[h][t]));
    let max = -Infinity;
    for (const m of middle) for (const x of m) if (x > max) max = x;
    if (max === -Infinity) max = 0;
    return view.cache.heads.map((head, h) => {
      const out = new Float32Array(head.length).fill(max);
      out.set(middle[h], ranges[h][0]);
      return out;
    });
  }
}
