/**
 * The Llama family: Llama 1/2/3, Mistral, Qwen2/2.5 (q/k/v bias) and Qwen3 (per-head q/k RMSNorm). Pre-norm
 * decoder layers, RoPE, grouped-query attention and a SwiGLU MLP, as transformers' LlamaForCausalLM and its
 * siblings compute them. q/k/v and gate/up projections are stacked at load so each is one matrix product.
 */
import type { Backend } from '../backend/backend.js';
import type { KVCache } from '../cache/kv-cache.js';
import { inverseFrequencies, ropeTables } from '../attention/rope.js';
import { Tensor } from '../tensor/tensor.js';
import { check } from '../errors.js';
import { dtypeOf, type Fields, type Json, MAX_DIMENSION, MAX_LAYERS, MAX_POSITIONS, type ModelConfig, ropeConfig, slidingWindows, tokenIds } from './config.js';
import type { FamilyEntry } from './families.js';
import { BatchLayout, type SequenceStep } from './batch.js';
import { type BatchOptions, cacheFor, type CausalLM, type ForwardOptions } from './model.js';
import type { DType } from '../tensor/dtype.js';
import type { HeadMemory } from '../cache/head-memory.js';
import type { WeightReader } from './weights.js';

interface LlamaLayer {
  inputNorm: Tensor;
  qkv: Tensor;
  qkvBias?: Tensor;
  qNorm?: Tensor;
  kNorm?: Tensor;
  o: Tensor;
  oBias?: Tensor;
  postNorm: Tensor;
  gateUp: Tensor;
  down: Tensor;
}

export class LlamaModel implements CausalLM {
  private readonly embed: Tensor;
  private readonly layers: LlamaLayer[];
  private readonly norm: Tensor;
  private readonly lmHead: Tensor;

  constructor(
    readonly config: ModelConfig,
    weights: WeightReader,
    readonly backend: Backend,
  ) {
    const c = config;
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    // Weights come as stored (16-bit or f32) and go to the backend finished: stacked first, then handed over once.
    const w = (t: Tensor) => backend.weight(t);
    const opt = (t: Tensor | undefined) => (t ? w(t) : undefined);
    this.embed = w(weights.get('model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]));
    this.layers = Array.from({ length: c.numLayers }, (_, i) => {
      const p = `model.layers.${i}.`;
      const a = `${p}self_attn.`;
      const proj = (n: string, rows: number) => weights.get(`${a}${n}_proj.weight`, [rows, c.hiddenSize]);
      const bias = (n: string, rows: number) => weights.get(`${a}${n}_proj.bias`, [rows]);
      return {
        inputNorm: w(weights.get(`${p}input_layernorm.weight`, [c.hiddenSize])),
        qkv: w(weights.stackRows([proj('q', qDim), proj('k', kvDim), proj('v', kvDim)])),
        qkvBias: opt(c.qkvBias ? weights.stackRows([bias('q', qDim), bias('k', kvDim), bias('v', kvDim)]) : undefined),
        qNorm: opt(c.qkNorm ? weights.get(`${a}q_norm.weight`, [c.headDim]) : undefined),
        kNorm: opt(c.qkNorm ? weights.get(`${a}k_norm.weight`, [c.headDim]) : undefined),
        o: w(weights.get(`${a}o_proj.weight`, [c.hiddenSize, qDim])),
        oBias: opt(c.outBias ? weights.get(`${a}o_proj.bias`, [c.hiddenSize]) : undefined),
        postNorm: w(weights.get(`${p}post_attention_layernorm.weight`, [c.hiddenSize])),
        gateUp: w(weights.stackRows([
          weights.get(`${p}mlp.gate_proj.weight`, [c.intermediateSize, c.hiddenSize]),
          weights.get(`${p}mlp.up_proj.weight`, [c.intermediateSize, c.hiddenSize]),
        ])),
        down: w(weights.get(`${p}mlp.down_proj.weight`, [c.hiddenSize, c.intermediateSize])),
      };
    });
    this.norm = w(weights.get('model.norm.weight', [c.hiddenSize]));
    this.lmHead =
      c.tieEmbeddings && !weights.has('lm_head.weight')
        ? this.embed
        : w(weights.get('lm_head.weight', [c.vocabSize, c.hiddenSize]));
  }

  outputProjection(layer: number): Tensor {
    return this.layers[layer].o;
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
    const batch = new BatchLayout(steps);
    const tables = this.ropeTables(batch);
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    const hooks = opts.hooks;
    const replace = (x: Tensor, by: Tensor | void) => {
      if (by && by !== x) b.copy(x, by);
    };
    // Activations live in backend scopes: each layer's are recycled by the next, only the logits outlive the forward.
    const logits = b.scope(() => {
      const x = b.embedding(this.embed, batch.ids);
      // The normed input of the next layer (or of the lm head): each layer's last op, its residual add fused with the
      // next norm, rewrites it in place.
      const h = b.rmsNorm(x, this.layers[0]?.inputNorm ?? this.norm, c.normEps);
      this.layers.forEach((layer, i) =>
        b.scope(() => {
          if (hooks?.attentionInput) replace(h, hooks.attentionInput(i, h));
          batch.observeInput(b, i, h);
          let [q, k, v] = b.splitColumns(b.linear(h, layer.qkv, layer.qkvBias), [qDim, kvDim, kvDim]);
          if (layer.qNorm && layer.kNorm) {
            q = b.rmsNorm(q.reshape([q.size / c.headDim, c.headDim]), layer.qNorm, c.normEps).reshape(q.shape);
            k = b.rmsNorm(k.reshape([k.size / c.headDim, c.headDim]), layer.kNorm, c.normEps).reshape(k.shape);
          }
          b.rope(q, c.numHeads, c.headDim, tables);
          b.rope(k, c.numKvHeads, c.headDim, tables);
          const attended = batch.attend(b, i, q, k, v, { scale: 1 / Math.sqrt(c.headDim), window: c.slidingWindows[i], kernel: c.attentionKernel });
          if (hooks?.headOutputs) replace(attended, hooks.headOutputs(i, attended));
          const m = b.addRmsNorm(x, b.linear(attended, layer.o, layer.oBias), layer.postNorm, c.normEps);
          const down = b.linear(b.swiglu(b.linear(m, layer.gateUp), c.intermediateSize), layer.down);
          const nextNorm = this.layers[i + 1]?.inputNorm ?? this.norm;
          if (!hooks?.residual) b.addRmsNorm(x, down, nextNorm, c.normEps, h);
          else {
            // Unfused so that the hook sees the residual stream between the add and the next norm (same numbers:
            // adding zero leaves x exact).
            b.add(x, down);
            replace(x, hooks.residual(i, x));
            b.fillColumns(down, 0, down.cols, 0);
            b.addRmsNorm(x, down, nextNorm, c.normEps, h);
          }
        }),
      );
      const last = opts.lastOnly ? batch.lastRows(b, h) : h;
      if (hooks?.final) replace(last, hooks.final(last));
      return batch.split(b, b.linear(last, this.lmHead), Boolean(opts.lastOnly));
    });
    batch.advance();
    return logits;
  }

  /** cos/sin rows for every row of the batch; dynamic RoPE sizes its base by each sequence's own length. */
  private ropeTables(batch: BatchLayout): { cos: Float32Array; sin: Float32Array } {
    const rope = this.config.rope!;
    const parts = batch.positions.map((p) => ropeTables(inverseFrequencies(rope, p[p.length - 1] + 1), p));
    if (parts.length === 1) return parts[0];
    const half = rope.dim / 2;
    const cos = new Float32Array(batch.rows * half);
    const sin = new Float32Array(batch.rows * half);
    parts.forEach((t, s) => {
      cos.set(t.cos, batch.starts[s] * half);
      sin.set(t.sin, batch.starts[s] * half);
    });
    return { cos, sin };
  }
}

/** config.json of the Llama-family architectures, normalised. */
function llamaConfig(json: Json, f: Fields, architecture: string, modelType: string, source: string): ModelConfig {
  const hiddenSize = f.int('hidden_size', MAX_DIMENSION);
  const numHeads = f.int('num_attention_heads', MAX_DIMENSION);
  const numKvHeads = f.int('num_key_value_heads', MAX_DIMENSION, numHeads);
  check(numHeads % numKvHeads === 0,
    `${source}: "num_attention_heads" ${numHeads} is not a multiple of "num_key_value_heads" ${numKvHeads}`);
  let headDim: number;
  if (f.present('head_dim')) headDim = f.int('head_dim', MAX_DIMENSION);
  else {
    check(hiddenSize % numHeads === 0, `${source}: "hidden_size" ${hiddenSize} is not divisible by "num_attention_heads" ${numHeads} (and there is no "head_dim")`);
    headDim = hiddenSize / numHeads;
  }
  const numLayers = f.int('num_hidden_layers', MAX_LAYERS);
  const maxPositions = f.int('max_position_embeddings', MAX_POSITIONS);
  const act = String(json.hidden_act ?? 'silu');
  check(act === 'silu', `${source}: hidden_act "${act}" is not supported for ${architecture} (supported: silu)`);
  const bias = f.bool('attention_bias', false);
  return {
    architecture,
    modelType,
    family: 'llama',
    vocabSize: f.int('vocab_size', MAX_DIMENSION),
    hiddenSize,
    intermediateSize: f.int('intermediate_size', MAX_DIMENSION),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    maxPositions,
    norm: 'rms',
    normEps: f.pos('rms_norm_eps', 1e-6),
    activation: 'silu',
    qkvBias: modelType === 'qwen2' ? true : bias,
    outBias: modelType === 'qwen2' ? false : bias,
    qkNorm: modelType === 'qwen3',
    tieEmbeddings: f.bool('tie_word_embeddings', false),
    rope: ropeConfig(json, f, headDim, maxPositions, source),
    slidingWindows: slidingWindows(json, f, modelType, numLayers, source),
    dtype: dtypeOf(json, source),
    ...tokenIds(json, source),
  };
}

/** The family's registry entry (families.ts): its architectures, config normaliser and constructor. */
export const llamaFamily: FamilyEntry = {
  architectures: { LlamaForCausalLM: 'llama', MistralForCausalLM: 'mistral', Qwen2ForCausalLM: 'qwen2', Qwen3ForCausalLM: 'qwen3' },
  config: llamaConfig,
  create: (config, weights, backend) => new LlamaModel(config, weights, backend),
};
