/**
 * Normalises a Hugging Face `config.json` into one typed ModelConfig, whichever transformers generation wrote
 * it: 4.x (`rope_theta`, `rope_scaling`, `torch_dtype`) or 5.x (`rope_parameters`, `dtype`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AttendError, check } from '../errors.js';
import type { DType } from '../tensor/dtype.js';

export type Family = 'llama' | 'gpt2';

/** How rotary frequencies are derived; see attention/rope.ts for each rule. */
export interface RopeConfig {
  type: 'default' | 'linear' | 'dynamic' | 'llama3';
  theta: number;
  /** Rotated dimensions per head (head_dim × partial_rotary_factor). */
  dim: number;
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}

export interface ModelConfig {
  architecture: string;
  modelType: string;
  family: Family;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  maxPositions: number;
  norm: 'rms' | 'layer';
  normEps: number;
  activation: 'silu' | 'gelu_new' | 'gelu';
  /** Bias on the q/k/v projections (Qwen2, GPT-2). */
  qkvBias: boolean;
  /** Bias on the output projection and the MLP (GPT-2). */
  outBias: boolean;
  /** Per-head RMSNorm on queries and keys before RoPE (Qwen3). */
  qkNorm: boolean;
  tieEmbeddings: boolean;
  /** RoPE, or null for learned absolute positions (GPT-2). */
  rope: RopeConfig | null;
  /** Per layer: a sliding attention window in tokens, or null for full attention. */
  slidingWindows: (number | null)[];
  dtype: DType;
  bosTokenId?: number;
  eosTokenIds: number[];
}

/** Architectures this runtime implements, by the name in config.json's `architectures`. */
export const SUPPORTED_ARCHITECTURES: Record<string, { modelType: string; family: Family }> = {
  LlamaForCausalLM: { modelType: 'llama', family: 'llama' },
  MistralForCausalLM: { modelType: 'mistral', family: 'llama' },
  Qwen2ForCausalLM: { modelType: 'qwen2', family: 'llama' },
  Qwen3ForCausalLM: { modelType: 'qwen3', family: 'llama' },
  GPT2LMHeadModel: { modelType: 'gpt2', family: 'gpt2' },
};

type Json = Record<string, unknown>;

export function readModelConfig(dir: string): ModelConfig {
  check(existsSync(dir), `model directory not found: ${dir}`);
  const path = join(dir, 'config.json');
  check(existsSync(path), `${path}: missing (a Hugging Face model directory needs config.json)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new AttendError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  check(raw !== null && typeof raw === 'object' && !Array.isArray(raw), `${path}: expected a JSON object`);
  return normaliseConfig(raw as Json, path);
}

export function normaliseConfig(json: Json, source = 'config.json'): ModelConfig {
  const architecture = pickArchitecture(json, source);
  const { modelType, family } = SUPPORTED_ARCHITECTURES[architecture];
  const num = (key: string, fallback?: number): number => {
    const v = json[key] ?? fallback;
    check(typeof v === 'number' && Number.isFinite(v), `${source}: "${key}" must be a number`);
    return v;
  };
  if (family === 'gpt2') return gpt2Config(json, num, architecture, source);

  const hiddenSize = num('hidden_size');
  const numHeads = num('num_attention_heads');
  const numKvHeads = num('num_key_value_heads', numHeads);
  const headDim = typeof json.head_dim === 'number' ? json.head_dim : hiddenSize / numHeads;
  check(Number.isInteger(headDim), `${source}: hidden_size ${hiddenSize} is not divisible by ${numHeads} heads`);
  check(numHeads % numKvHeads === 0, `${source}: ${numHeads} attention heads are not a multiple of ${numKvHeads} key/value heads`);
  const numLayers = num('num_hidden_layers');
  const maxPositions = num('max_position_embeddings');
  const act = String(json.hidden_act ?? 'silu');
  check(act === 'silu', `${source}: hidden_act "${act}" is not supported for ${architecture} (supported: silu)`);
  return {
    architecture,
    modelType,
    family,
    vocabSize: num('vocab_size'),
    hiddenSize,
    intermediateSize: num('intermediate_size'),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    maxPositions,
    norm: 'rms',
    normEps: num('rms_norm_eps', 1e-6),
    activation: 'silu',
    qkvBias: modelType === 'qwen2' ? true : Boolean(json.attention_bias),
    outBias: modelType === 'qwen2' ? false : Boolean(json.attention_bias),
    qkNorm: modelType === 'qwen3',
    tieEmbeddings: Boolean(json.tie_word_embeddings ?? false),
    rope: ropeConfig(json, headDim, maxPositions, source),
    slidingWindows: slidingWindows(json, modelType, numLayers),
    dtype: dtypeOf(json),
    ...tokenIds(json),
  };
}

function gpt2Config(json: Json, num: (k: string, f?: number) => number, architecture: string, source: string): ModelConfig {
  const hiddenSize = num('n_embd');
  const numHeads = num('n_head');
  const act = String(json.activation_function ?? 'gelu_new');
  check(act === 'gelu_new' || act === 'gelu', `${source}: activation_function "${act}" is not supported (supported: gelu_new, gelu)`);
  check(!json.scale_attn_by_inverse_layer_idx, `${source}: scale_attn_by_inverse_layer_idx is not supported`);
  check(json.scale_attn_weights !== false, `${source}: scale_attn_weights=false is not supported`);
  return {
    architecture,
    modelType: 'gpt2',
    family: 'gpt2',
    vocabSize: num('vocab_size'),
    hiddenSize,
    intermediateSize: typeof json.n_inner === 'number' ? json.n_inner : 4 * hiddenSize,
    numLayers: num('n_layer'),
    numHeads,
    numKvHeads: numHeads,
    headDim: hiddenSize / numHeads,
    maxPositions: num('n_positions'),
    norm: 'layer',
    normEps: num('layer_norm_epsilon', 1e-5),
    activation: act,
    qkvBias: true,
    outBias: true,
    qkNorm: false,
    tieEmbeddings: Boolean(json.tie_word_embeddings ?? true),
    rope: null,
    slidingWindows: new Array(num('n_layer')).fill(null),
    dtype: dtypeOf(json),
    ...tokenIds(json),
  };
}

function pickArchitecture(json: Json, source: string): string {
  const supported = Object.keys(SUPPORTED_ARCHITECTURES);
  const listed = Array.isArray(json.architectures) ? json.architectures.map(String) : [];
  const byName = listed.find((a) => a in SUPPORTED_ARCHITECTURES);
  if (byName) return byName;
  const byType = supported.find((a) => SUPPORTED_ARCHITECTURES[a].modelType === json.model_type);
  if (byType && listed.length === 0) return byType;
  const what = listed.length ? listed.join(', ') : `model_type "${String(json.model_type)}"`;
  throw new AttendError(`${source}: unsupported architecture ${what} (supported: ${supported.join(', ')})`);
}

/** transformers 5.x writes `rope_parameters`; 4.x wrote `rope_theta` plus an optional `rope_scaling`. */
function ropeConfig(json: Json, headDim: number, maxPositions: number, source: string): RopeConfig {
  const params = (json.rope_parameters ?? json.rope_scaling ?? {}) as Json;
  const theta = Number(params.rope_theta ?? json.rope_theta ?? 10000);
  const type = String(params.rope_type ?? params.type ?? 'default');
  const known = ['default', 'linear', 'dynamic', 'llama3'];
  check(known.includes(type), `${source}: RoPE type "${type}" is not supported (supported: ${known.join(', ')})`);
  const partial = Number(params.partial_rotary_factor ?? json.partial_rotary_factor ?? 1);
  const factor = Number(params.factor ?? 1);
  check(type === 'default' || (Number.isFinite(factor) && factor > 0), `${source}: RoPE "${type}" needs a positive factor`);
  return {
    type: type as RopeConfig['type'],
    theta,
    dim: Math.floor(headDim * partial),
    factor,
    lowFreqFactor: Number(params.low_freq_factor ?? 1),
    highFreqFactor: Number(params.high_freq_factor ?? 4),
    originalMaxPositions: Number(params.original_max_position_embeddings ?? maxPositions),
  };
}

/** Mistral windows every layer; Qwen2 windows layers from `max_window_layers` on when `use_sliding_window`. */
function slidingWindows(json: Json, modelType: string, numLayers: number): (number | null)[] {
  const window = typeof json.sliding_window === 'number' ? json.sliding_window : null;
  if (Array.isArray(json.layer_types) && json.layer_types.length === numLayers) {
    return json.layer_types.map((t) => (t === 'sliding_attention' ? window : null));
  }
  if (window === null) return new Array(numLayers).fill(null);
  if (modelType === 'mistral') return new Array(numLayers).fill(window);
  if (modelType === 'qwen2' || modelType === 'qwen3') {
    if (!json.use_sliding_window) return new Array(numLayers).fill(null);
    const from = Number(json.max_window_layers ?? numLayers);
    return Array.from({ length: numLayers }, (_, i) => (i >= from ? window : null));
  }
  return new Array(numLayers).fill(null);
}

function dtypeOf(json: Json): DType {
  const name = String(json.dtype ?? json.torch_dtype ?? 'float32');
  if (name === 'bfloat16') return 'bf16';
  if (name === 'float16') return 'f16';
  return 'f32';
}

function tokenIds(json: Json): { bosTokenId?: number; eosTokenIds: number[] } {
  const eos = json.eos_token_id;
  const eosTokenIds = Array.isArray(eos) ? eos.map(Number) : typeof eos === 'number' ? [eos] : [];
  return { bosTokenId: typeof json.bos_token_id === 'number' ? json.bos_token_id : undefined, eosTokenIds };
}
