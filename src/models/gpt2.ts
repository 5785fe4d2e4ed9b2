/**
 * GPT-2: learned absolute positions, pre-LayerNorm blocks, a gelu MLP, and Conv1D weights stored [in × out]
 * (transposed here at load into the Linear layout the backend multiplies by).
 */
import type { Backend } from '../backend/backend.js';
import type { KVCache } from '../cache/kv-cache.js';
import type { Tensor } from '../tensor/tensor.js';
import { check } from '../errors.js';
import { dtypeOf, type Fields, type Json, MAX_DIMENSION, MAX_LAYERS, MAX_POSITIONS, type ModelConfig, tokenIds } from './config.js';
import type { FamilyEntry } from './families.js';
import { BatchLayout, type SequenceStep } from './batch.js';
import { type BatchOptions, cacheFor, type CausalLM, type ForwardOptions } from './model.js';
import type { DType } from '../tensor/dtype.js';
import type { HeadMemory } from '../cache/head-memory.js';
import { transpose, type WeightReader } from './weights.js';

interface Gpt2Layer {
  ln1: [Tensor, Tensor];
  qkv: Tensor;
  qkvBias: Tensor;
  proj: Tensor;
  projBias: Tensor;
  ln2: [Tensor, Tensor];
  fc: Tensor;
  fcBias: Tensor;
  fcProj: Tensor;
  fcProjBias: Tensor;
}

export class Gpt2Model implements CausalLM {
  private readonly wte: Tensor;
  private readonly wpe: Tensor;
  private readonly layers: Gpt2Layer[];
  private readonly lnF: [Tensor, Tensor];
  private readonly lmHead: Tensor;

  constructor(
    readonly config: ModelConfig,
    weights: WeightReader,
    readonly backend: Backend,
  ) {
    const c = config;
    const n = c.hiddenSize;
    const prefix = weights.has('transformer.wte.weight') ? 'transformer.' : '';
    // Weights come as stored (16-bit or f32) and go to the backend finished (transposed first), once each.
    const get = (name: string, shape: number[]) => backend.weight(weights.get(prefix + name, shape));
    const conv = (name: string, inDim: number, outDim: number) =>
      backend.weight(transpose(weights.get(`${prefix}${name}.weight`, [inDim, outDim])));
    const norm = (name: string): [Tensor, Tensor] => [get(`${name}.weight`, [n]), get(`${name}.bias`, [n])];
    this.wte = get('wte.weight', [c.vocabSize, n]);
    this.wpe = get('wpe.weight', [c.maxPositions, n]);
    this.layers = Array.from({ length: c.numLayers }, (_, i) => {
      const p = `h.${i}.`;
      return {
        ln1: norm(`${p}ln_1`),
        qkv: conv(`${p}attn.c_attn`, n, 3 * n),
        qkvBias: get(`${p}attn.c_attn.bias`, [3 * n]),
        proj: conv(`${p}attn.c_proj`, n, n),
        projBias: get(`${p}attn.c_proj.bias`, [n]),
        ln2: norm(`${p}ln_2`),
        fc: conv(`${p}mlp.c_fc`, n, c.intermediateSize),
        fcBias: get(`${p}mlp.c_fc.bias`, [c.intermediateSize]),
        fcProj: conv(`${p}mlp.c_proj`, c.intermediateSize, n),
        fcProjBias: get(`${p}mlp.c_proj.bias`, [n]),
      };
    });
    this.lnF = norm('ln_f');
    this.lmHead = weights.has('lm_head.weight') && !c.tieEmbeddings ? backend.weight(weights.get('lm_head.weight', [c.vocabSize, n])) : this.wte;
  }

  outputProjection(layer: number): Tensor {
    return this.layers[layer].proj;
  }

  forward(ids: ArrayLike<number>, cache: KVCache, opts: ForwardOptions = {}): Tensor {
    return this.forwardBatch([{ ids, cache, observer: opts.observer, select: opts.select }], opts)[0];
  }

  makeCache(dtype?: DType): KVCache<HeadMemory> {
    return cacheFor(this.config, this.backend, dtype);
  }

  forwardBatch(steps: SequenceStep[], opts: BatchOptions = {}): Tensor[] {
    const c = this.config;
    const b = this.backend;
    const n = c.hiddenSize;
    const batch = new BatchLayout(steps);
    const hooks = opts.hooks;
    const replace = (x: Tensor, by: Tensor | void) => {
      if (by && by !== x) b.copy(x, by);
    };
    // Activations live in backend scopes: each layer's are recycled by the next, only the logits outlive the forward.
    const logits = b.scope(() => {
      let x = b.embedding(this.wte, batch.ids);
      b.add(x, b.embedding(this.wpe, batch.allPositions()));
      this.layers.forEach((layer, i) =>
        b.scope(() => {
          const h = b.layerNorm(x, layer.ln1[0], layer.ln1[1], c.normEps);
          if (hooks?.attentionInput) replace(h, hooks.attentionInput(i, h));
          batch.observeInput(b, i, h);
          const [q, k, v] = b.splitColumns(b.linear(h, layer.qkv, layer.qkvBias), [n, n, n]);
          const attended = batch.attend(b, i, q, k, v, { scale: 1 / Math.sqrt(c.headDim), window: null, kernel: c.attentionKernel });
          if (hooks?.headOutputs) replace(attended, hooks.headOutputs(i, attended));
          b.add(x, b.linear(attended, layer.proj, layer.projBias));
          const m = b.linear(b.layerNorm(x, layer.ln2[0], layer.ln2[1], c.normEps), layer.fc, layer.fcBias);
          b.gelu(m, c.activation === 'gelu' ? 'gelu' : 'gelu_new');
          b.add(x, b.linear(m, layer.fcProj, layer.fcProjBias));
          if (hooks?.residual) replace(x, hooks.residual(i, x));
        }),
      );
      if (opts.lastOnly) x = batch.lastRows(b, x);
      const h = b.layerNorm(x, this.lnF[0], this.lnF[1], c.normEps);
      if (hooks?.final) replace(h, hooks.final(h));
      return batch.split(b, b.linear(h, this.lmHead), Boolean(opts.lastOnly));
    });
    batch.advance();
    return logits;
  }
}

/** config.json of GPT-2, normalised. */
function gpt2Config(json: Json, f: Fields, architecture: string, _modelType: string, source: string): ModelConfig {
  const hiddenSize = f.int('n_embd', MAX_DIMENSION);
  const numHeads = f.int('n_head', MAX_DIMENSION);
  check(hiddenSize % numHeads === 0, `${source}: "n_embd" ${hiddenSize} is not divisible by "n_head" ${numHeads}`);
  const act = String(json.activation_function ?? 'gelu_new');
  check(act === 'gelu_new' || act === 'gelu', `${source}: activation_function "${act}" is not supported (supported: gelu_new, gelu)`);
  check(!json.scale_attn_by_inverse_layer_idx, `${source}: scale_attn_by_inverse_layer_idx is not supported`);
  check(json.scale_attn_weights !== false, `${source}: scale_attn_weights=false is not supported`);
  const numLayers = f.int('n_layer', MAX_LAYERS);
  return {
    architecture,
    modelType: 'gpt2',
    family: 'gpt2',
    vocabSize: f.int('vocab_size', MAX_DIMENSION),
    hiddenSize,
    intermediateSize: f.int('n_inner', MAX_DIMENSION, 4 * hiddenSize),
    numLayers,
    numHeads,
    numKvHeads: numHeads,
    headDim: hiddenSize / numHeads,
    maxPositions: f.int('n_positions', MAX_POSITIONS),
    norm: 'layer',
    normEps: f.pos('layer_norm_epsilon', 1e-5),
    activation: act,
    qkvBias: true,
    outBias: true,
    qkNorm: false,
    tieEmbeddings: f.bool('tie_word_embeddings', true),
    rope: null,
    slidingWindows: new Array(numLayers).fill(null),
    dtype: dtypeOf(json, source),
    ...tokenIds(json, source),
  };
}

/** The family's registry entry (families.ts): its architecture, config normaliser and constructor. */
export const gpt2Family: FamilyEntry = {
  architectures: { GPT2LMHeadModel: 'gpt2' },
  config: gpt2Config,
  create: (config, weights, backend) => new Gpt2Model(config, weights, backend),
};
