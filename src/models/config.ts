/**
 * The typed ModelConfig and the strict readers that every family's normaliser uses on a Hugging Face
 * `config.json`, whichever transformers generation wrote it: 4.x (`rope_theta`, `rope_scaling`, `torch_dtype`) or
 * 5.x (`rope_parameters`, `dtype`). Which architectures exist and how each is read is the families' (families.ts).
 */
import { AttendError, check } from '../errors.js';
import type { AttentionKernelSpec } from '../attention/kernels/index.js';
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
  /** The attention kernel the model runs: softmax unless another is chosen when loading (LoadOptions.attention). */
  attentionKernel?: AttentionKernelSpec;
  bosTokenId?: number;
  eosTokenIds: number[];
}

export type Json = Record<string, unknown>;

/**
 * Bounds on config.json numbers. A value above one of these is a corrupt or hostile file, not a model: each is far
 * beyond any released decoder, and keeping every size under 2^24 keeps the products the runtime forms (element
 * counts, bytes per token) exact in a double.
 */
/** Layers: the deepest released decoders have under 200; per-layer tables are allocated before weights are read. */
export const MAX_LAYERS = 4096;
/** Widths, head counts, intermediate size and vocabulary: the widest released values are in the hundreds of thousands. */
export const MAX_DIMENSION = 1 << 24;
/** max_position_embeddings (and RoPE's original context): 16,777,216 tokens, beyond the longest released context (10M). */
export const MAX_POSITIONS = 1 << 24;

/** config.json dtype names and the storage dtype each means. */
const DTYPES: Record<string, DType> = { float32: 'f32', float16: 'f16', bfloat16: 'bf16' };

/**
 * JSON.parse for a file's text, failing with one line: V8's messages quote the text around the error, newlines
 * and all, so control characters in the message are escaped, it is capped, and "at position N" becomes a line and
 * column. Shared by every reader of a model directory's JSON files.
 */
export function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new AttendError(`${file}: not valid JSON (${jsonErrorLine(e, text)})`);
  }
}

function jsonErrorLine(e: unknown, text: string): string {
  let msg = e instanceof Error ? e.message : String(e);
  msg = msg.replace(/ in JSON at position (\d+)(?: \(line \d+ column \d+\))?/, (_, p: string) => {
    const before = text.slice(0, Number(p));
    const line = before.split('\n').length;
    return ` at line ${line} column ${Number(p) - before.lastIndexOf('\n')}`;
  });
  msg = msg.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => (c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
  return msg.length > 200 ? `${msg.slice(0, 200)}...` : msg;
}

/** Strict readers of config.json fields; every failure is one line naming the file and the field. */
export function fields(json: Json, source: string) {
  const show = (v: unknown) => {
    const text = JSON.stringify(v) ?? String(v);
    return text.length > 40 ? `${text.slice(0, 40)}...` : text;
  };
  const present = (key: string) => json[key] !== undefined && json[key] !== null;
  /** A positive integer no larger than `max` (the field, or `fallback` when absent or null). */
  const int = (key: string, max: number, fallback?: number, from: Json = json): number => {
    const v = from[key] ?? fallback;
    check(v !== undefined, `${source}: "${key}" is missing`);
    check(typeof v === 'number' && Number.isInteger(v) && v > 0, () => `${source}: "${key}" is ${show(v)}, expected a positive integer`);
    check(v <= max, () => `${source}: "${key}" is ${v}, above the limit of ${max} (attend refuses sizes no released model has)`);
    return v;
  };
  /** A finite positive number. */
  const pos = (key: string, fallback?: number, from: Json = json): number => {
    const v = from[key] ?? fallback;
    check(v !== undefined, `${source}: "${key}" is missing`);
    check(typeof v === 'number' && Number.isFinite(v) && v > 0, () => `${source}: "${key}" is ${show(v)}, expected a finite positive number`);
    return v;
  };
  /** A boolean, `fallback` when absent or null. */
  const bool = (key: string, fallback: boolean): boolean => {
    const v = json[key] ?? fallback;
    check(typeof v === 'boolean', () => `${source}: "${key}" is ${show(v)}, expected true or false`);
    return v;
  };
  return { int, pos, bool, present, show };
}
export type Fields = ReturnType<typeof fields>;

/**
 * The invariants the model code relies on, checked once on the normalised config (the field readers above have
 * already refused non-integers, non-positive values and sizes past the limits): a config that passes cannot reach
 * the matmuls with a fractional head or an odd rotary width.
 */
export function checkConfig(c: ModelConfig, source = 'config.json'): void {
  const positive = (v: number) => Number.isInteger(v) && v > 0;
  check(positive(c.numLayers) && c.numLayers <= MAX_LAYERS, `${source}: ${c.numLayers} layers (expected 1 to ${MAX_LAYERS})`);
  check(positive(c.numHeads) && positive(c.numKvHeads) && c.numHeads % c.numKvHeads === 0,
    `${source}: ${c.numHeads} attention heads are not a multiple of ${c.numKvHeads} key/value heads`);
  check(positive(c.headDim), `${source}: head dimension ${c.headDim} is not a positive integer`);
  for (const [name, v] of [['hidden size', c.hiddenSize], ['intermediate size', c.intermediateSize], ['vocabulary size', c.vocabSize]] as const) {
    check(positive(v) && v <= MAX_DIMENSION, `${source}: ${name} ${v} is not a positive integer up to ${MAX_DIMENSION}`);
  }
  check(positive(c.maxPositions) && c.maxPositions <= MAX_POSITIONS, `${source}: ${c.maxPositions} positions (expected 1 to ${MAX_POSITIONS})`);
  check(Number.isFinite(c.normEps) && c.normEps > 0, `${source}: norm epsilon ${c.normEps} is not a finite positive number`);
  check(c.slidingWindows.length === c.numLayers && c.slidingWindows.every((w) => w === null || positive(w)),
    `${source}: sliding windows must be positive integers or null, one per layer`);
  if (c.rope) {
    const r = c.rope;
    check(Number.isFinite(r.theta) && r.theta > 0, `${source}: rope_theta ${r.theta} is not a finite positive number`);
    check(positive(r.dim) && r.dim <= c.headDim,
      `${source}: the rotary width ${r.dim} (head_dim ${c.headDim} × partial_rotary_factor) must be from 1 to head_dim`);
  }
}

/** transformers 5.x writes `rope_parameters`; 4.x wrote `rope_theta` plus an optional `rope_scaling`. */
export function ropeConfig(json: Json, f: Fields, headDim: number, maxPositions: number, source: string): RopeConfig {
  const raw = json.rope_parameters ?? json.rope_scaling ?? {};
  const key = json.rope_parameters !== undefined && json.rope_parameters !== null ? 'rope_parameters' : 'rope_scaling';
  check(typeof raw === 'object' && !Array.isArray(raw), () => `${source}: "${key}" is ${f.show(raw)}, expected an object or null`);
  const params = raw as Json;
  const theta = f.pos('rope_theta', (json.rope_theta ?? 10000) as number, params);
  const type = String(params.rope_type ?? params.type ?? 'default');
  const known = ['default', 'linear', 'dynamic', 'llama3'];
  check(known.includes(type), `${source}: RoPE type "${type}" is not supported (supported: ${known.join(', ')})`);
  const partial = params.partial_rotary_factor ?? json.partial_rotary_factor ?? 1;
  check(typeof partial === 'number' && partial > 0 && partial <= 1,
    () => `${source}: "partial_rotary_factor" is ${f.show(partial)}, expected a number in (0, 1]`);
  const dim = Math.floor(headDim * partial);
  // RoPE rotates pairs of dimensions: the rotated width (all of head_dim, or its partial share) must be even.
  check(dim >= 2 && dim % 2 === 0,
    `${source}: "partial_rotary_factor" ${partial} of head_dim ${headDim} rotates ${dim} dimensions; RoPE needs a positive even number`);
  const scaled = type !== 'default';
  const factor = scaled ? f.pos('factor', undefined, params) : Number(params.factor ?? 1);
  const lowFreqFactor = type === 'llama3' ? f.pos('low_freq_factor', 1, params) : Number(params.low_freq_factor ?? 1);
  const highFreqFactor = type === 'llama3' ? f.pos('high_freq_factor', 4, params) : Number(params.high_freq_factor ?? 4);
  check(type !== 'llama3' || highFreqFactor > lowFreqFactor,
    `${source}: RoPE llama3 "high_freq_factor" ${highFreqFactor} must be above "low_freq_factor" ${lowFreqFactor}`);
  const originalMaxPositions = scaled ? f.int('original_max_position_embeddings', MAX_POSITIONS, maxPositions, params) : maxPositions;
  check(type !== 'dynamic' || contextFits(maxPositions, factor),
    `${source}: dynamic RoPE stretches ${maxPositions} positions by factor ${factor}, past the limit of ${MAX_POSITIONS}`);
  return { type: type as RopeConfig['type'], theta, dim, factor, lowFreqFactor, highFreqFactor, originalMaxPositions };
}

const contextFits = (positions: number, factor: number) => positions * factor <= MAX_POSITIONS;

/** Mistral windows every layer; Qwen2 windows layers from `max_window_layers` on when `use_sliding_window`. */
export function slidingWindows(json: Json, f: Fields, modelType: string, numLayers: number, source: string): (number | null)[] {
  const window = f.present('sliding_window') ? f.int('sliding_window', MAX_POSITIONS) : null;
  if (Array.isArray(json.layer_types) && json.layer_types.length === numLayers) {
    return json.layer_types.map((t) => (t === 'sliding_attention' ? window : null));
  }
  if (window === null) return new Array(numLayers).fill(null);
  if (modelType === 'mistral') return new Array(numLayers).fill(window);
  if (modelType === 'qwen2' || modelType === 'qwen3') {
    if (!f.bool('use_sliding_window', false)) return new Array(numLayers).fill(null);
    const from = json.max_window_layers ?? numLayers;
    check(typeof from === 'number' && Number.isInteger(from) && from >= 0,
      () => `${source}: "max_window_layers" is ${f.show(from)}, expected a non-negative integer`);
    return Array.from({ length: numLayers }, (_, i) => (i >= from ? window : null));
  }
  return new Array(numLayers).fill(null);
}

export function dtypeOf(json: Json, source: string): DType {
  const key = json.dtype !== undefined && json.dtype !== null ? 'dtype' : 'torch_dtype';
  const name = json[key] ?? 'float32';
  const dtype = typeof name === 'string' && Object.hasOwn(DTYPES, name) ? DTYPES[name] : undefined;
  check(dtype !== undefined, () => `${source}: "${key}" ${JSON.stringify(name)} is not supported (supported: ${Object.keys(DTYPES).join(', ')})`);
  return dtype;
}

export function tokenIds(json: Json, source: string): { bosTokenId?: number; eosTokenIds: number[] } {
  const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  const eos = json.eos_token_id ?? [];
  const eosTokenIds = Array.isArray(eos) ? eos : [eos];
  check(eosTokenIds.every(isId), () => `${source}: "eos_token_id" is ${JSON.stringify(eos)}, expected a token id or a list of them`);
  const bos = json.bos_token_id;
  check(bos === undefined || bos === null || isId(bos), () => `${source}: "bos_token_id" is ${JSON.stringify(bos)}, expected a token id`);
  return { bosTokenId: isId(bos) ? bos : undefined, eosTokenIds };
}
