/**
 * Fast KVzip (Kim, Han & Yun 2026, "Fast KVzip: Efficient and Accurate LLM Inference with Gated KV Eviction", arXiv
 * 2601.17668), as kvpress's FastKVzipPress implements it (the oracle; fastkvzip_press.py).
 *
 * Rule: a trained gate per layer scores each token from its own hidden state h (the normed attention input): per KV
 * head, a key k = RMSNorm(W_k·h) and one query per query head of its group q_g = RMSNorm(W_q·h + b_q) (16 dimensions
 * each, RMSNorm eps 1e-6 with learned weights), a logit ℓ_g = ⟨k, q_g⟩/4 + b_g and, against `sink` learned base keys
 * κ_s, the score mean_g 1 / (1 + Σ_s exp(⟨κ_s, q_g⟩/4 − ℓ_g)) — in (0, 1), trained on KVzip's scores. Then, as kvpress:
 * the first `n-sink` entries and the last w = int(ctx·window-ratio) entries (w = window-size from 32000 tokens on)
 * score 1, and the lowest int(N·ratio) of all N = layers·heads·ctx scores are dropped across all layers and heads
 * (`layerwise`: int(heads·ctx·ratio) per layer, across its heads), so heads and layers keep different numbers.
 * kvpress's window is `scores[..., -w:] = 1`, and for w = 0 (a context under 50 tokens at the default ratio) that
 * slice is the whole row: every score is 1 and the selection falls to the tie order (here: earlier layer, head, entry
 * kept). Attend does the same.
 *
 * Defaults are kvpress's fields: layerwise False, n_sink 4, window_size 4096, window_ratio 0.02.
 *
 * The trained part: the authors publish gates in the Hugging Face repo Jang-Hyun/Fast-KVzip as torch.save files
 * `<model>/q<group>_dim16_sink16.pt`, a dict whose "module" is the list of per-layer state dicts (q_proj.weight
 * [heads·group·16, hidden], q_proj.bias, k_proj.weight [heads·16, hidden], q_norm.weight [16], k_norm.weight [16],
 * k_base [heads, 1, sink, 16], b [heads, 1, group]); `path` is such a file (read by io/torch-file.ts, no code run).
 * kvpress takes the number of base keys from the file name ("sink16"); here it is k_base's size, and a file whose name
 * says another is refused. tools/press_training/fastkvzip.py trains gates for attend-mini with the authors' recipe.
 *
 * Differences from kvpress, none in what a prefill keeps: pruned entries are removed, not masked; gates are computed in
 * f64 from f32 projections (kvpress in the model's dtype); each token is scored when it runs (token-scores.ts), so a
 * per-chunk prefill or a decoding compression also scores every entry a head holds, with ctx = the tokens seen and the
 * budget the runner's (Σ heads·target, as kvzip.ts) where kvpress compresses once after the prefill.
 */
import { basename } from 'node:path';
import type { AttentionObserver } from '../backend/backend.js';
import { cpuBackend } from '../backend/cpu/index.js';
import type { KVCache } from '../cache/kv-cache.js';
import { AttendError } from '../errors.js';
import { PyDict, readTorchFile, TorchTensor } from '../io/torch-file.js';
import { Tensor } from '../tensor/tensor.js';
import type { CompressionContext, LayerView, Press } from './press.js';
import { preparedFor, type PreparedSelection } from './prepared-selection.js';
import { keepHighest } from './reread.js';
import { TokenScores } from './token-scores.js';
import { checkShape, requirePath } from './trained-files.js';

export interface FastKVzipOptions {
  /** One ratio per layer (across its heads) instead of one selection across all layers. */
  layerwise: boolean;
  /** Initial entries scored 1 (n_sink). */
  nSink: number;
  /** The window from 32000 tokens on (window_size). */
  windowSize: number;
  /** The window below 32000 tokens, a share of them (window_ratio). */
  windowRatio: number;
}

export const FASTKVZIP_DEFAULTS: FastKVzipOptions = { layerwise: false, nSink: 4, windowSize: 4096, windowRatio: 0.02 };

/** One layer's gate, f32 as stored. */
export interface FastKVzipGate {
  qWeight: Float32Array;
  qBias: Float32Array;
  kWeight: Float32Array;
  qNorm: Float32Array;
  kNorm: Float32Array;
  /** [heads × sink × dim] */
  kBase: Float32Array;
  /** [heads × group] */
  b: Float32Array;
}

export interface FastKVzipGates {
  inputDim: number;
  /** KV heads, query heads per KV head, gate dimension, base keys. */
  heads: number;
  group: number;
  dim: number;
  sink: number;
  layers: FastKVzipGate[];
}

/** RMSNorm eps of the gate's Qwen3RMSNorm (its default). */
const GATE_EPS = 1e-6;

/** Reads a Fast KVzip gate file (torch.save of {"module": [state dict per layer], …}). */
export function readFastKVzipGates(path: string): FastKVzipGates {
  const P = 'fastkvzip';
  requirePath(P, path, 'a Fast KVzip gate file (torch.save, e.g. q4_dim16_sink16.pt)');
  const top = readTorchFile(path);
  const list = top instanceof PyDict ? top.get('module') : undefined;
  if (!Array.isArray(list) || list.length === 0) throw new AttendError(`${P}: ${path} holds no "module" list of per-layer gate state dicts`);
  const get = (sd: unknown, l: number, name: string, rank: number): TorchTensor => {
    const t = sd instanceof PyDict ? sd.get(name) : undefined;
    if (!(t instanceof TorchTensor)) throw new AttendError(`${P}: ${path}: layer ${l}'s gate has no tensor "${name}"`);
    if (t.shape.length !== rank) throw new AttendError(`${P}: ${path}: layer ${l}'s ${name} has shape [${t.shape.join(', ')}] (expected ${rank} dimensions)`);
    return t;
  };
  const q0 = get(list[0], 0, 'q_proj.weight', 2);
  const k0 = get(list[0], 0, 'k_proj.weight', 2);
  const dim = get(list[0], 0, 'q_norm.weight', 1).shape[0];
  const inputDim = q0.shape[1];
  const heads = k0.shape[0] / dim;
  const group = q0.shape[0] / k0.shape[0];
  const sink = get(list[0], 0, 'k_base', 4).shape[2];
  if (!Number.isInteger(heads) || !Number.isInteger(group)) throw new AttendError(`${P}: ${path}: q_proj [${q0.shape.join(', ')}] and k_proj [${k0.shape.join(', ')}] are not heads·group·${dim} and heads·${dim} rows`);
  const named = /sink(\d+)/.exec(basename(path));
  if (named && Number(named[1]) !== sink) throw new AttendError(`${P}: ${path} is named for ${named[1]} base keys (sink), its k_base holds ${sink}`);
  const layers = list.map((sd, l) => {
    const want: [string, number[]][] = [
      ['q_proj.weight', [heads * group * dim, inputDim]],
      ['q_proj.bias', [heads * group * dim]],
      ['k_proj.weight', [heads * dim, inputDim]],
      ['q_norm.weight', [dim]],
      ['k_norm.weight', [dim]],
      ['k_base', [heads, 1, sink, dim]],
      ['b', [heads, 1, group]],
    ];
    const t = Object.fromEntries(
      want.map(([name, shape]) => {
        const x = get(sd, l, name, shape.length);
        if (x.shape.some((d, i) => d !== shape[i])) throw new AttendError(`${P}: ${path}: layer ${l}'s ${name} has shape [${x.shape.join(', ')}], expected [${shape.join(', ')}]`);
        const data = x.f32();
        if (!data.every(Number.isFinite)) throw new AttendError(`${P}: ${path}: layer ${l}'s ${name} holds non-finite values`);
        return [name, data];
      }),
    );
    return {
      qWeight: t['q_proj.weight'],
      qBias: t['q_proj.bias'],
      kWeight: t['k_proj.weight'],
      qNorm: t['q_norm.weight'],
      kNorm: t['k_norm.weight'],
      kBase: t.k_base,
      b: t.b,
    };
  });
  return { inputDim, heads, group, dim, sink, layers };
}

/** The gate's scores of `rows` hidden states (one layer): [rows × heads]. */
export function gateScores(gates: FastKVzipGates, layer: number, h: Float32Array, rows: number, weights?: { q: Tensor; qb: Tensor; k: Tensor }): Float32Array {
  const { heads, group, dim, sink, inputDim } = gates;
  const g = gates.layers[layer];
  const b = cpuBackend;
  const w = weights ?? { q: b.weight(new Tensor([heads * group * dim, inputDim], g.qWeight)), qb: b.weight(new Tensor([heads * group * dim], g.qBias)), k: b.weight(new Tensor([heads * dim, inputDim], g.kWeight)) };
  const x = b.upload([rows, inputDim], h);
  const q = b.read(b.linear(x, w.q, w.qb)).slice();
  const k = b.read(b.linear(x, w.k)).slice();
  const out = new Float32Array(rows * heads);
  const norm = (v: Float32Array, at: number, weight: Float32Array): Float64Array => {
    let s = 0;
    for (let c = 0; c < dim; c++) s += v[at + c] * v[at + c];
    const inv = 1 / Math.sqrt(s / dim + GATE_EPS);
    return Float64Array.from({ length: dim }, (_, c) => weight[c] * (v[at + c] * inv));
  };
  const d = Math.sqrt(dim);
  for (let t = 0; t < rows; t++) {
    for (let hh = 0; hh < heads; hh++) {
      const key = norm(k, (t * heads + hh) * dim, g.kNorm);
      let mean = 0;
      for (let j = 0; j < group; j++) {
        const qv = norm(q, ((t * heads + hh) * group + j) * dim, g.qNorm);
        let dot = 0;
        for (let c = 0; c < dim; c++) dot += key[c] * qv[c];
        const logit = dot / d + g.b[hh * group + j];
        let sum = 0;
        for (let s = 0; s < sink; s++) {
          let base = 0;
          for (let c = 0; c < dim; c++) base += g.kBase[(hh * sink + s) * dim + c] * qv[c];
          sum += Math.exp(base / d - logit);
        }
        mean += 1 / (1 + sum);
      }
      out[t * heads + hh] = mean / group;
    }
  }
  return out;
}

export class FastKVzipPress implements Press {
  readonly name = 'fastkvzip';
  readonly needs = {};
  private readonly tokens: TokenScores;
  private readonly weights: { q: Tensor; qb: Tensor; k: Tensor }[];
  private prepared?: PreparedSelection;

  constructor(
    readonly gates: FastKVzipGates,
    readonly options: FastKVzipOptions = FASTKVZIP_DEFAULTS,
  ) {
    for (const [key, v] of [['n-sink', options.nSink], ['window-size', options.windowSize]] as const) {
      if (!(Number.isInteger(v) && v >= 0)) throw new AttendError(`fastkvzip: option ${key} must be a whole number ≥ 0, got ${v}`);
    }
    if (!(Number.isFinite(options.windowRatio) && options.windowRatio >= 0)) throw new AttendError(`fastkvzip: option window-ratio must be a number ≥ 0, got ${options.windowRatio}`);
    const { heads, group, dim, inputDim } = gates;
    const b = cpuBackend;
    this.weights = gates.layers.map((g) => ({
      q: b.weight(new Tensor([heads * group * dim, inputDim], g.qWeight)),
      qb: b.weight(new Tensor([heads * group * dim], g.qBias)),
      k: b.weight(new Tensor([heads * dim, inputDim], g.kWeight)),
    }));
    this.tokens = new TokenScores('fastkvzip', (layer, h, rows) => {
      if (layer >= gates.layers.length) throw new AttendError(`fastkvzip: the gates cover ${gates.layers.length} layers, the forward runs layer ${layer}`);
      if (h.length !== rows * inputDim) throw new AttendError(`fastkvzip: the gates read hidden states of ${inputDim}, this model's are ${h.length / rows}`);
      return gateScores(gates, layer, h, rows, this.weights[layer]);
    });
  }

  observer(cache: KVCache, next: AttentionObserver): AttentionObserver {
    return this.tokens.observer(cache, next);
  }

  /** The window kvpress sets to 1 for a context of `ctx` tokens. */
  windowOf(ctx: number): number {
    return ctx < 32000 ? Math.trunc(ctx * this.options.windowRatio) : this.options.windowSize;
  }

  prepare(ctx: CompressionContext): void {
    const { model, cache } = ctx;
    const c = model.config;
    const g = this.gates;
    checkShape('fastkvzip', 'gate file', { layers: g.layers.length, 'hidden size': g.inputDim, 'KV heads': g.heads, 'query heads per KV head': g.group }, c, {
      layers: c.numLayers,
      'hidden size': c.hiddenSize,
      'KV heads': c.numKvHeads,
      'query heads per KV head': c.numHeads / c.numKvHeads,
    });
    const seen = cache.seenTokens;
    const heads = c.numKvHeads;
    const w = this.windowOf(seen);
    const scores = cache.layers.map((layer, l) => {
      const s = this.tokens.scores({ layer: l, cache: layer } as LayerView);
      return s.map((row, h) => {
        const positions = cache.originalPositions(l, h);
        // kvpress: scores[..., :n_sink] = 1 and scores[..., -w:] = 1 (for w = 0, the whole row).
        for (let i = 0; i < row.length; i++) if (positions[i] < this.options.nSink || w === 0 || positions[i] >= seen - w) row[i] = 1;
        return row;
      });
    });
    const budget = ctx.budget;
    const byRatio = ctx.prefill && budget != null && 'ratio' in budget ? budget.ratio : undefined;
    const keepOf = (units: number, targets: number) => (byRatio !== undefined ? units - Math.floor(units * byRatio) : targets);
    const held = cache.layers.map((l) => l.heads.reduce((s, h) => s + h.length, 0));
    const layerTotals = ctx.targets.map((t) => keepOf(heads * seen, heads * t));
    const total = keepOf(c.numLayers * heads * seen, ctx.targets.reduce((s, t) => s + heads * t, 0));
    const all = () => cache.layers.map((l) => l.heads.map((h) => Int32Array.from({ length: h.length }, (_, i) => i)));
    const needed = this.options.layerwise ? held.some((n, l) => n > layerTotals[l]) : held.reduce((a, b) => a + b, 0) > total;
    const kept = !needed
      ? all()
      : this.options.layerwise
        ? scores.map((layer, l) => keepHighest(layer, layerTotals[l]))
        : (() => {
            const flat = keepHighest(scores.flat(), total);
            return scores.map((layer, l) => layer.map((_, h) => flat[l * heads + h]));
          })();
    this.prepared = { layers: cache.layers, scores, kept };
  }

  score(view: LayerView): Float32Array[] {
    return this.preparedFor(view).scores[view.layer];
  }

  select(view: LayerView): Int32Array[] {
    return this.preparedFor(view).kept[view.layer];
  }

  private preparedFor(view: LayerView): PreparedSelection {
    return preparedFor(this.prepared, view, "fastkvzip selects across all layers in its prepare step: it runs in a CompressionSession, not as another press's scorer");
  }
}
