/**
 * KVzap (Jégou & Jeblick 2026, "KVzap: Fast, Adaptive, and Faithful KV Cache Pruning", arXiv 2601.07891), as kvpress's
 * KVzapPress implements it (the oracle; kvzap_press.py).
 *
 * Rule: a small trained model per layer maps each token's hidden state h (the normed input of the attention layer,
 * kvpress's `hidden_states`) to one score per KV head — a linear map W·h + b, or a two-layer MLP W₂·GELU(W₁·h + b₁) + b₂
 * (exact erf GELU) — trained to regress the log of the token's KVzip+ score (the most attention any repeat query of
 * KVzip's "repeat the context" prompt gives it, divided by the query row's ‖h‖, times ‖W_o v‖). Each head keeps its
 * int(n·(1 − ratio)) highest scores (kvpress's ScorerPress; ties to the earlier entry). kvpress pairs it with DMSPress
 * (a threshold on these scores, decoding too): `new DMSPress(new KVzapPress(…))` does that here (the registry's dms
 * creates its scorer on defaults, and this press has no default file).
 *
 * The trained part: nvidia/KVzap-{linear,mlp}-<model> on the Hugging Face hub, a transformers PreTrainedModel saved
 * with save_pretrained: config.json (model_type "kvzap", input_dim = hidden size, output_dim = KV heads, n_modules =
 * layers, hidden_dim null for the linear model) and model.safetensors with `layers.<l>.weight`/`.bias` (linear) or
 * `layers.<l>.0.weight`, `.0.bias`, `.2.weight`, `.2.bias` (MLP). `path` is that folder (or its .safetensors file,
 * the kind then told by the tensor names); kvpress's `model_type` ("mlp", its default) only names which hub repo it
 * downloads, so here the file decides. tools/press_training/kvzap.py trains both for attend-mini with kvpress's own
 * recipe (kvzap/train.py).
 *
 * In Attend each token is scored once, when it runs (token-scores.ts: the press's observer reads the attention input),
 * which is what kvpress computes from the forward's hidden states at the prefill; per-chunk prefill and decoding
 * compressions then score every entry a head holds from its own token's hidden state.
 */
import { cpuBackend } from '../backend/cpu/index.js';
import type { AttentionObserver } from '../backend/backend.js';
import type { KVCache } from '../cache/kv-cache.js';
import { AttendError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import type { LayerView, Press } from './press.js';
import { TokenScores } from './token-scores.js';
import { checkShape, inFolder, readJsonObject, readTensors, requirePath, type Stored, tensorOf } from './trained-files.js';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface KVzapModel {
  kind: 'linear' | 'mlp';
  inputDim: number;
  outputDim: number;
  hiddenDim: number | null;
  /** Per layer: the first Linear (the only one for 'linear'), and the MLP's second. */
  layers: { w1: Stored; b1: Stored; w2?: Stored; b2?: Stored }[];
}

/** Reads a KVzap model folder (config.json + model.safetensors) or its .safetensors file. */
export function readKVzapModel(path: string): KVzapModel {
  const P = 'kvzap';
  requirePath(P, path, 'a KVzap model folder: config.json and model.safetensors');
  const tensors = readTensors(P, path);
  const config = statSync(path).isDirectory() && existsSync(join(path, 'config.json')) ? readJsonObject(P, join(path, 'config.json')) : undefined;
  if (config && config.model_type !== undefined && config.model_type !== 'kvzap') throw new AttendError(`${P}: ${path}/config.json has model_type ${String(config.model_type)}, not kvzap`);
  const source = inFolder(path, 'model.safetensors');
  const mlp = config ? config.hidden_dim !== null && config.hidden_dim !== undefined : tensors.has('layers.0.0.weight');
  const n = config ? Number(config.n_modules) : [...tensors.keys()].filter((k) => /^layers\.\d+\.(0\.)?weight$/.test(k)).length;
  if (!(Number.isInteger(n) && n > 0)) throw new AttendError(`${P}: ${path}: cannot tell how many layers the model has (n_modules)`);
  const layers = Array.from({ length: n }, (_, l) =>
    mlp
      ? {
          w1: tensorOf(P, source, tensors, `layers.${l}.0.weight`, [-1, -1]),
          b1: tensorOf(P, source, tensors, `layers.${l}.0.bias`, [-1]),
          w2: tensorOf(P, source, tensors, `layers.${l}.2.weight`, [-1, -1]),
          b2: tensorOf(P, source, tensors, `layers.${l}.2.bias`, [-1]),
        }
      : { w1: tensorOf(P, source, tensors, `layers.${l}.weight`, [-1, -1]), b1: tensorOf(P, source, tensors, `layers.${l}.bias`, [-1]) },
  );
  const first = layers[0];
  const inputDim = first.w1.shape[1];
  const hiddenDim = mlp ? first.w1.shape[0] : null;
  const outputDim = mlp ? first.w2!.shape[0] : first.w1.shape[0];
  layers.forEach((m, l) => {
    const ok = mlp
      ? m.w1.shape[0] === hiddenDim && m.w1.shape[1] === inputDim && m.b1.shape[0] === hiddenDim && m.w2!.shape[0] === outputDim && m.w2!.shape[1] === hiddenDim && m.b2!.shape[0] === outputDim
      : m.w1.shape[0] === outputDim && m.w1.shape[1] === inputDim && m.b1.shape[0] === outputDim;
    if (!ok) throw new AttendError(`${P}: ${source}: layer ${l}'s tensors do not have the shapes of layer 0's`);
  });
  if (config) {
    for (const [key, want] of [['input_dim', inputDim], ['output_dim', outputDim], ['hidden_dim', hiddenDim]] as const) {
      if (config[key] !== undefined && config[key] !== want) throw new AttendError(`${P}: ${path}/config.json says ${key} ${String(config[key])}, the tensors ${want}`);
    }
  }
  return { kind: mlp ? 'mlp' : 'linear', inputDim, outputDim, hiddenDim, layers };
}

export class KVzapPress implements Press {
  readonly name = 'kvzap';
  readonly needs = {};
  private readonly tokens: TokenScores;
  /** Per layer, the weights as the CPU backend computes with them (the trained part is small: it runs on the host). */
  private readonly weights: { w1: Tensor; b1: Tensor; w2?: Tensor; b2?: Tensor }[];

  constructor(readonly model: KVzapModel) {
    this.tokens = new TokenScores('kvzap', (layer, h, rows) => this.scoreRows(layer, h, rows));
    const up = (s: Stored | undefined) => (s ? cpuBackend.weight(new Tensor(s.shape, s.data)) : undefined);
    this.weights = model.layers.map((t) => ({ w1: up(t.w1)!, b1: up(t.b1)!, w2: up(t.w2), b2: up(t.b2) }));
  }

  observer(cache: KVCache, next: AttentionObserver): AttentionObserver {
    return this.tokens.observer(cache, next);
  }

  /** The model's scores of `rows` hidden states of `layer`: [rows × KV heads]. */
  scoreRows(layer: number, h: Float32Array, rows: number): Float32Array {
    const m = this.model;
    if (layer >= m.layers.length) throw new AttendError(`kvzap: the model has ${m.layers.length} layers, the forward runs layer ${layer}`);
    if (h.length !== rows * m.inputDim) throw new AttendError(`kvzap: the model reads hidden states of ${m.inputDim}, this model's are ${h.length / rows}`);
    const b = cpuBackend;
    const w = this.weights[layer];
    let y = b.linear(b.upload([rows, m.inputDim], h), w.w1, w.b1);
    if (w.w2) {
      b.gelu(y, 'gelu');
      y = b.linear(y, w.w2, w.b2);
    }
    return b.read(y).slice();
  }

  score(view: LayerView): Float32Array[] {
    checkShape('kvzap', 'KVzap model', { layers: this.model.layers.length, 'hidden size': this.model.inputDim, 'KV heads': this.model.outputDim }, view.config, {
      layers: view.config.numLayers,
      'hidden size': view.config.hiddenSize,
      'KV heads': view.config.numKvHeads,
    });
    return this.tokens.scores(view);
  }
}
