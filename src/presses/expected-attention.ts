/**
 * Expected Attention (Devoto et al. 2025, "Expected Attention: KV Cache Compression by Estimating Attention from
 * Future Queries Distribution", arXiv 2510.00636), as kvpress's ExpectedAttentionPress (expected_attention_press.py).
 * Rule, per layer: the prompt's pre-RoPE queries after the first `n-sink` give each query head a mean μ and a
 * covariance Σ (divided by the number of queries); the RoPE rotation of the next `n-future-positions` positions
 * (from the tokens seen on) is averaged into one matrix R (rotary.ts averageRotation) and μ' = R·μ, Σ' = R·Σ·Rᵀ.
 * Each entry i after the first n-sink gets the logit μ'·kᵢ/√d + kᵢᵀ·Σ'·kᵢ/(2d) (the second term only with
 * `use-covariance`), a softmax over the head's entries, the mean over the query heads of its KV group, and
 * (with `use-vnorm`) (score + epsilon)·‖vᵢ‖. The first n-sink entries score the layer's maximum + 1 (kept).
 * Defaults are kvpress's: n_future_positions 512, n_sink 4, use_covariance True, use_vnorm True, epsilon 0.
 * kvpress asserts the cache holds more than n_sink entries; so does this press (a one-line error).
 *
 * `expected-attention-stats` is kvpress's ExpectedAttentionStatsPress (expected_attention_with_stats.py): the
 * same scores from precomputed query statistics instead of the prompt's queries, read from the file that kvpress's
 * ExpectedAttentionStats module writes (PyTorchModelHubMixin.save_pretrained: a folder with model.safetensors
 * holding `query_mean` [layers × heads × d] and `query_cov` [layers × heads × d × d], and config.json); `stats`
 * is that folder or the .safetensors file. kvpress then always rotates both statistics (use_covariance only
 * decides whether the covariance term is added), as here. Computing such a file: tools/press_stats/.
 * Differences from the paper follow kvpress (the oracle): its sink padding with max + 1 and its divisors.
 * In Attend the prompt's queries are the recorded post-RoPE ones rotated back (rotary.ts unrotated: kvpress's
 * get_prerope_query_states, q_norm included), every query the sequence has run (needs.queryWindow Infinity: a
 * layer keeps tokens × heads·headDim floats until the compression); compressed per chunk or while decoding, the
 * statistics cover every query so far and the future positions start at the tokens seen.
 */
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AttendError } from '../errors.js';
import { prefill } from '../generate/prefill.js';
import { SafetensorsArchive, writeSafetensors } from '../io/safetensors.js';
import { type CausalLM, newCache } from '../models/model.js';
import { PressRecorder } from './observe.js';
import type { LayerView, Press } from './press.js';
import type { OptionSpec } from './registry.js';
import { checkInt, checkLongerThanSinks, checkNumber, congruence, matVec, padSinks, preRopeQueries, type QueryStatistics, queryStatistics, rowNorm, rowsOf } from './query-statistics.js';
import { averageRotation, unrotated } from './rotary.js';

export interface ExpectedAttentionOptions {
  nFuturePositions: number;
  nSink: number;
  useCovariance: boolean;
  useVnorm: boolean;
  epsilon: number;
}

export const EXPECTED_ATTENTION_DEFAULTS: ExpectedAttentionOptions = {
  nFuturePositions: 512,
  nSink: 4,
  useCovariance: true,
  useVnorm: true,
  epsilon: 0,
};

/** The registry's options of both presses (kebab-case of kvpress's fields), with kvpress's defaults. */
export function expectedAttentionOptions(): Record<string, OptionSpec> {
  const d = EXPECTED_ATTENTION_DEFAULTS;
  return {
    'n-future-positions': { default: d.nFuturePositions, description: 'future positions the RoPE rotation is averaged over', kind: 'int' },
    'n-sink': { default: d.nSink, description: 'initial entries always kept (and queries left out of the statistics)', kind: 'int' },
    'use-covariance': { default: String(d.useCovariance), description: 'add the query covariance term', kind: 'bool' },
    'use-vnorm': { default: String(d.useVnorm), description: 'rescale the scores by the value norms', kind: 'bool' },
    epsilon: { default: d.epsilon, description: 'added to the scores before the value-norm rescaling', kind: 'number' },
  };
}

/** ExpectedAttentionOptions from resolved registry options (bools resolved to 1 or 0). */
export function expectedAttentionFrom(o: Record<string, number | string>): ExpectedAttentionOptions {
  return {
    nFuturePositions: Number(o['n-future-positions']),
    nSink: Number(o['n-sink']),
    useCovariance: Number(o['use-covariance']) === 1,
    useVnorm: Number(o['use-vnorm']) === 1,
    epsilon: Number(o.epsilon),
  };
}

export class ExpectedAttentionPress implements Press {
  readonly name: string = 'expected-attention';
  readonly needs: { queryWindow?: number } = { queryWindow: Infinity };

  constructor(readonly options: ExpectedAttentionOptions = EXPECTED_ATTENTION_DEFAULTS, pressName = 'expected-attention') {
    checkInt(pressName, 'n-future-positions', options.nFuturePositions, 0, 'future positions the RoPE rotation is averaged over');
    checkInt(pressName, 'n-sink', options.nSink, 0, 'initial entries always kept');
    checkNumber(pressName, 'epsilon', options.epsilon, -Infinity, 'added to the scores before the value-norm rescaling');
  }

  /** Per query head, the query mean and covariance before RoPE (kvpress's get_query_statistics before its rotation). */
  protected statistics(view: LayerView): QueryStatistics {
    const { numHeads, headDim } = view.config;
    const pre = preRopeQueries(view, this.options.nSink, this.name);
    return queryStatistics(pre.data, pre.rows, numHeads, headDim, this.options.useCovariance);
  }

  score(view: LayerView): Float32Array[] {
    const { nSink, nFuturePositions, useCovariance, useVnorm, epsilon } = this.options;
    const { numHeads, numKvHeads, headDim: d } = view.config;
    checkLongerThanSinks(view, nSink, this.name, 'n-sink');
    const stats = this.statistics(view);
    // The future queries: the statistics rotated by the RoPE of the next positions, averaged.
    const R = averageRotation(view.config, view.seen, nFuturePositions);
    const mean = stats.mean.map((m) => matVec(R, m, d));
    const cov = useCovariance ? stats.cov!.map((C) => congruence(R, C, d)) : undefined;
    const group = numHeads / numKvHeads;
    const scale = 1 / Math.sqrt(d);
    const rest = view.cache.heads.map((head, g) => {
      const keys = rowsOf(head, 'keys', nSink);
      const n = head.length - nSink;
      const acc = new Float64Array(n);
      const logits = new Float64Array(n);
      for (let j = 0; j < group; j++) {
        const h = g * group + j;
        const m = mean[h];
        const C = cov?.[h];
        let max = -Infinity;
        for (let i = 0; i < n; i++) {
          const o = i * d;
          let s = 0;
          for (let c = 0; c < d; c++) s += m[c] * keys[o + c];
          s *= scale;
          if (C) {
            let q = 0;
            for (let a = 0; a < d; a++) {
              let row = 0;
              for (let b = 0; b < d; b++) row += C[a * d + b] * keys[o + b];
              q += keys[o + a] * row;
            }
            s += q / d / 2;
          }
          logits[i] = s;
          if (s > max) max = s;
        }
        let z = 0;
        for (let i = 0; i < n; i++) z += (logits[i] = Math.exp(logits[i] - max));
        for (let i = 0; i < n; i++) acc[i] += logits[i] / z / group;
      }
      const out = new Float32Array(n);
      const values = useVnorm ? rowsOf(head, 'values', nSink) : undefined;
      for (let i = 0; i < n; i++) out[i] = values ? (acc[i] + epsilon) * rowNorm(values, i, d) : acc[i];
      return out;
    });
    return padSinks(rest, nSink);
  }
}

/** Query statistics as kvpress's ExpectedAttentionStats stores them: per layer and query head. */
export interface StoredQueryStatistics {
  layers: number;
  heads: number;
  headDim: number;
  /** [layers × heads × d] */
  mean: Float32Array;
  /** [layers × heads × d × d] */
  cov: Float32Array;
}

/** Reads `query_mean` and `query_cov` from a kvpress ExpectedAttentionStats folder (model.safetensors) or file. */
export function readQueryStatistics(path: string): StoredQueryStatistics {
  const archive = SafetensorsArchive.open(path);
  try {
    for (const name of ['query_mean', 'query_cov']) {
      if (!archive.has(name)) throw new AttendError(`${path}: no tensor "${name}" (not a kvpress ExpectedAttentionStats file)`);
    }
    const m = archive.entry('query_mean').shape;
    const c = archive.entry('query_cov').shape;
    if (m.length !== 3 || c.length !== 4 || c[0] !== m[0] || c[1] !== m[1] || c[2] !== m[2] || c[3] !== m[2]) {
      throw new AttendError(`${path}: query_mean [${m.join(', ')}] and query_cov [${c.join(', ')}] are not [layers, heads, d] and [layers, heads, d, d]`);
    }
    const mean = archive.readF32('query_mean');
    const cov = archive.readF32('query_cov');
    if (!mean.every(Number.isFinite) || !cov.every(Number.isFinite)) throw new AttendError(`${path}: query statistics hold non-finite values`);
    return { layers: m[0], heads: m[1], headDim: m[2], mean, cov };
  } finally {
    archive.close();
  }
}

export class ExpectedAttentionStatsPress extends ExpectedAttentionPress {
  override readonly name: string = 'expected-attention-stats';
  override readonly needs = {};

  constructor(
    readonly stats: StoredQueryStatistics,
    options: ExpectedAttentionOptions = EXPECTED_ATTENTION_DEFAULTS,
  ) {
    super(options, 'expected-attention-stats');
  }

  protected override statistics(view: LayerView): QueryStatistics {
    const { numLayers, numHeads, headDim: d } = view.config;
    const s = this.stats;
    if (s.layers !== numLayers || s.heads !== numHeads || s.headDim !== d) {
      throw new AttendError(
        `${this.name}: the statistics are for ${s.layers} layers × ${s.heads} heads × head_dim ${s.headDim}, the model has ${numLayers} × ${numHeads} × ${d}`,
      );
    }
    const at = view.layer * numHeads;
    return {
      mean: Array.from({ length: numHeads }, (_, h) => Float64Array.from(s.mean.subarray((at + h) * d, (at + h + 1) * d))),
      cov: Array.from({ length: numHeads }, (_, h) => Float64Array.from(s.cov.subarray((at + h) * d * d, (at + h + 1) * d * d))),
    };
  }
}

/**
 * Query statistics of `model` over `samples` (token ids), as kvpress's collect_queries computes them: each
 * sample's pre-RoPE queries of every layer after its first `nSink`, all samples together, their mean and their
 * covariance divided by N − 1. (kvpress runs its model in bf16 over kmfoda/booksum; this runs Attend's forward.)
 */
export function collectQueryStatistics(model: CausalLM, samples: number[][], nSink: number): StoredQueryStatistics {
  const { numLayers: L, numHeads: H, headDim: d } = model.config;
  const width = H * d;
  const sum = new Float64Array(L * H * d);
  const outer = new Float64Array(L * H * d * d);
  let N = 0;
  const perSample: Float32Array[][] = [];
  for (const ids of samples) {
    if (ids.length <= nSink) continue;
    const recorder = new PressRecorder({ queryWindow: Infinity }, width);
    prefill(model, newCache(model.config), ids, { observer: recorder });
    const layers = Array.from({ length: L }, (_, l) => {
      const w = recorder.window(l)!;
      return unrotated(model.config, w.data.subarray(nSink * width), H, w.positions.subarray(nSink));
    });
    perSample.push(layers);
    N += ids.length - nSink;
    layers.forEach((q, l) => {
      for (let t = 0; t < q.length / width; t++) for (let i = 0; i < width; i++) sum[l * width + i] += q[t * width + i];
    });
  }
  if (N < 2) throw new AttendError(`query statistics need at least 2 queries after the ${nSink} sinks of each sample, got ${N}`);
  const mean = sum.map((x) => x / N);
  const c = new Float64Array(d);
  for (const layers of perSample) {
    layers.forEach((q, l) => {
      for (let t = 0; t < q.length / width; t++) {
        for (let h = 0; h < H; h++) {
          const o = t * width + h * d;
          const m = (l * H + h) * d;
          for (let i = 0; i < d; i++) c[i] = q[o + i] - mean[m + i];
          const C = (l * H + h) * d * d;
          for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) outer[C + i * d + j] += c[i] * c[j];
        }
      }
    });
  }
  return { layers: L, heads: H, headDim: d, mean: Float32Array.from(mean), cov: Float32Array.from(outer, (x) => x / (N - 1)) };
}

/**
 * Writes statistics in kvpress's ExpectedAttentionStats format: to a `.safetensors` path, that file; to any other
 * path, a folder with model.safetensors and the config.json PyTorchModelHubMixin.save_pretrained would write
 * (what ExpectedAttentionStats.from_pretrained reads; `info` gives its fields: model_name, dataset_name, …).
 */
export function writeQueryStatistics(path: string, stats: StoredQueryStatistics, info: Record<string, string | number> = {}): string {
  const { layers, heads, headDim: d } = stats;
  const tensors = {
    query_mean: { dtype: 'f32' as const, shape: [layers, heads, d], data: stats.mean },
    query_cov: { dtype: 'f32' as const, shape: [layers, heads, d, d], data: stats.cov },
  };
  if (path.endsWith('.safetensors')) {
    writeSafetensors(path, tensors, { format: 'pt' });
    return path;
  }
  mkdirSync(path, { recursive: true });
  if (!statSync(path).isDirectory()) throw new AttendError(`${path}: not a folder`);
  writeSafetensors(join(path, 'model.safetensors'), tensors, { format: 'pt' });
  const config = { num_layers: layers, num_heads: heads, head_dim: d, dataset_name: '', model_name: '', num_samples: 0, sample_seq_len: 0, n_sink: 4, ...info };
  writeFileSync(join(path, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  return join(path, 'model.safetensors');
}
