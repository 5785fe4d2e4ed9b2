/**
 * RestoreKV (Baek, Shin & Kong 2026, "RestoreKV: Recovering Full-Cache Behavior Under Aggressive Query-Agnostic KV
 * Cache Eviction", arXiv 2608.01247), as kvpress's RestoreKVPress implements it (the oracle; restorekv_press.py).
 *
 * Rule: KVzip (kvzip.ts) scores the context as usual; then, before eviction, n learned restore embeddings run as n
 * more tokens over the full cache, at the positions after the context, in one pass of the model with its LoRA
 * adapter on: their keys and values (the restore cache) join the cache and are always kept, and KVzip evicts with
 * the ratio raised by n/ctx (min 1) so that the budget is the same (budget-matched: n restore entries per head take
 * the place of n context entries, on average). The adapter is off for everything else (the prompt, the repeat,
 * the question and decoding). kvpress runs no restore pass when the ratio is 0; neither does this press.
 *
 * Defaults are KVzipPress's (kvzip.ts: sinks 4, layerwise false, kvzip-plus false, chunk 2048, postfix 8).
 *
 * The trained part: the authors publish, per model, a Hugging Face repo higokri/RestoreKV-<model>[_plus] (the
 * `_plus` one for KVzip+) holding restore_embeddings.safetensors (`restore_embeddings` [n, hidden]) and a PEFT LoRA
 * adapter (adapter_config.json: r, lora_alpha, target_modules, use_rslora…; adapter_model.safetensors:
 * base_model.model.<module>.lora_A.weight [r, in] and .lora_B.weight [out, r]), which kvpress loads with
 * transformers' PEFT integration (model.load_adapter). `path` is that folder. The LoRA is merged here into a copy of
 * the base weights (W + (lora_alpha/r)·B·A, or lora_alpha/√r with use_rslora; rank_pattern and alpha_pattern by
 * module-name suffix), read from `base` (default: the adapter's base_model_name_or_path where that is a local
 * folder), whose first output projection must equal the running model's; the restore embeddings become n extra rows
 * of that copy's embedding table, run as ids vocab…vocab+n−1. Llama-family checkpoints only (the module names are
 * theirs); DoRA, LoRA biases, fan_in_fan_out and modules_to_save are refused. The merged product differs from PEFT's
 * W·x + s·B·(A·x) only by float rounding.
 *
 * No training script: kvpress's docstring describes the training in one sentence (self-distillation from the
 * full-cache teacher, restore embeddings and LoRA only), the authors' repository (cvsp-lab/RestoreKV) says its
 * training code is "coming soon", and kvpress's own loading needs the `peft` package, which the GPU machine lacks.
 * tools/press_training/restorekv.py says this and makes only an untrained (zero-LoRA) adapter of the right format.
 *
 * Differences from kvpress: pruned entries are removed, not masked; the restore pass runs once, at the first
 * compression, which must be the prefill's (kvpress's compress_post): a later compression (per-chunk prefill,
 * decoding) is refused, since the restore tokens have no token ids for KVzip's repeat to re-read and the restore
 * cache is made for the whole context.
 */
import { existsSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { AttentionObserver } from '../backend/backend.js';
import type { KVCache } from '../cache/kv-cache.js';
import { AttendError } from '../errors.js';
import { SafetensorsArchive } from '../io/safetensors.js';
import type { ModelConfig } from '../models/config.js';
import { FAMILIES, readModelConfig } from '../models/families.js';
import type { CausalLM } from '../models/model.js';
import { asF32, WeightReader } from '../models/weights.js';
import { Tensor } from '../tensor/tensor.js';
import { KVZIP_DEFAULTS, type KVzipOptions, KVzipPress } from './kvzip.js';
import type { CompressionContext, LayerView, Press } from './press.js';
import { preparedFor, type PreparedSelection } from './prepared-selection.js';
import { readJsonObject, readTensors, requirePath, type Stored, tensorOf } from './trained-files.js';

/** One LoRA pair for a base weight: ΔW = scaling · B · A. */
export interface LoraDelta {
  a: Stored;
  b: Stored;
  scaling: number;
}

export interface RestoreAdapter {
  /** [n × hidden] */
  embeddings: Stored;
  /** By base weight name (model.layers.<l>.self_attn.q_proj.weight …). */
  deltas: Map<string, LoraDelta>;
  /** base_model_name_or_path of adapter_config.json. */
  baseModel?: string;
  folder: string;
}

const P = 'restorekv';

/** PEFT's per-module override: a pattern key applies to module names ending with it. */
function patterned(pattern: unknown, module: string): number | undefined {
  if (!pattern || typeof pattern !== 'object') return undefined;
  for (const [key, v] of Object.entries(pattern as Record<string, unknown>)) {
    if (module === key || module.endsWith(`.${key}`)) return Number(v);
  }
  return undefined;
}

/** Reads a RestoreKV folder: restore_embeddings.safetensors and a PEFT LoRA adapter. */
export function readRestoreAdapter(folder: string): RestoreAdapter {
  requirePath(P, folder, 'a RestoreKV folder: restore_embeddings.safetensors, adapter_config.json, adapter_model.safetensors');
  if (!statSync(folder).isDirectory()) throw new AttendError(`${P}: ${folder} is not a folder (expected restore_embeddings.safetensors and a PEFT adapter in it)`);
  const file = (name: string) => {
    const p = join(folder, name);
    if (!existsSync(p)) throw new AttendError(`${P}: ${folder} has no ${name}`);
    return p;
  };
  const embFile = file('restore_embeddings.safetensors');
  const embeddings = tensorOf(P, embFile, readTensors(P, embFile), 'restore_embeddings', [-1, -1]);
  if (embeddings.shape[0] < 1) throw new AttendError(`${P}: ${embFile}: no restore embeddings`);
  const config = readJsonObject(P, file('adapter_config.json'));
  const type = config.peft_type ?? 'LORA';
  if (type !== 'LORA') throw new AttendError(`${P}: ${folder}/adapter_config.json is a ${String(type)} adapter, not LORA`);
  for (const [key, bad] of [['use_dora', true], ['fan_in_fan_out', true]] as const) {
    if (config[key] === bad) throw new AttendError(`${P}: ${folder}: adapters with ${key} are not supported`);
  }
  if (config.bias !== undefined && config.bias !== 'none') throw new AttendError(`${P}: ${folder}: LoRA biases (bias "${String(config.bias)}") are not supported`);
  const modules = config.modules_to_save;
  if (Array.isArray(modules) && modules.length > 0) throw new AttendError(`${P}: ${folder}: modules_to_save (${modules.join(', ')}) are not supported`);
  const r = Number(config.r);
  const alpha = Number(config.lora_alpha ?? r);
  if (!(r > 0) || !Number.isFinite(alpha)) throw new AttendError(`${P}: ${folder}/adapter_config.json: r ${String(config.r)} and lora_alpha ${String(config.lora_alpha)} are not a LoRA rank and scale`);
  const rslora = config.use_rslora === true;
  const weightsFile = file('adapter_model.safetensors');
  const tensors = readTensors(P, weightsFile);
  const deltas = new Map<string, LoraDelta>();
  for (const name of tensors.keys()) {
    const m = /^(?:base_model\.model\.)?(.+)\.lora_A(?:\.[^.]+)?\.weight$/.exec(name);
    if (!m) {
      if (!/\.lora_B(?:\.[^.]+)?\.weight$/.test(name)) throw new AttendError(`${P}: ${weightsFile}: tensor "${name}" is not a LoRA A/B weight (only Linear LoRA is supported)`);
      continue;
    }
    const module = m[1];
    const bName = name.replace(/\.lora_A(\.[^.]+)?\.weight$/, '.lora_B$1.weight');
    const a = tensorOf(P, weightsFile, tensors, name, [-1, -1]);
    const b = tensorOf(P, weightsFile, tensors, bName, [-1, a.shape[0]]);
    const rank = patterned(config.rank_pattern, module) ?? r;
    const scale = patterned(config.alpha_pattern, module) ?? alpha;
    if (a.shape[0] !== rank) throw new AttendError(`${P}: ${weightsFile}: ${module} has rank ${a.shape[0]}, adapter_config.json says ${rank}`);
    deltas.set(`${module}.weight`, { a, b, scaling: rslora ? scale / Math.sqrt(rank) : scale / rank });
  }
  if (deltas.size === 0) throw new AttendError(`${P}: ${weightsFile} holds no LoRA weights`);
  const baseModel = typeof config.base_model_name_or_path === 'string' ? config.base_model_name_or_path : undefined;
  return { embeddings, deltas, baseModel, folder };
}

/** The base checkpoint's folder: `base`, else the adapter's base_model_name_or_path where that is a local folder. */
export function baseFolder(adapter: RestoreAdapter, base: string): string {
  const candidates = base ? [base] : adapter.baseModel ? [adapter.baseModel, isAbsolute(adapter.baseModel) ? '' : resolve(adapter.folder, adapter.baseModel)] : [];
  for (const c of candidates) if (c && existsSync(join(c, 'config.json'))) return c;
  throw new AttendError(
    base
      ? `${P}: base ${base} is not a model folder (no config.json)`
      : `${P}: the LoRA is merged into the base weights, and the adapter's base_model_name_or_path (${adapter.baseModel ?? 'none'}) is not a local model folder: pass --press-opt base=DIR`,
  );
}

/** Base weights with the LoRA merged in and the restore embeddings as extra rows of the embedding table (and of an untied lm_head). */
class AdaptedWeights extends WeightReader {
  constructor(
    archive: SafetensorsArchive,
    source: string,
    private readonly adapter: RestoreAdapter,
    private readonly vocab: number,
  ) {
    super(archive, source);
  }

  override get(name: string, shape: number[]): Tensor {
    const n = this.adapter.embeddings.shape[0];
    if ((name === 'model.embed_tokens.weight' || name === 'lm_head.weight') && shape[0] === this.vocab + n) {
      const base = asF32(super.get(name, [this.vocab, shape[1]]));
      const out = new Float32Array((this.vocab + n) * shape[1]);
      out.set(base);
      if (name === 'model.embed_tokens.weight') out.set(this.adapter.embeddings.data, this.vocab * shape[1]);
      return new Tensor(shape, out);
    }
    const t = super.get(name, shape);
    const delta = this.adapter.deltas.get(name);
    if (!delta) return t;
    const [rows, cols] = shape;
    const { a, b, scaling } = delta;
    const r = a.shape[0];
    if (shape.length !== 2 || a.shape[1] !== cols || b.shape[0] !== rows) {
      throw new AttendError(`${P}: the LoRA of ${name} is [${b.shape[0]} × ${r}]·[${r} × ${a.shape[1]}], the weight [${shape.join(' × ')}]`);
    }
    const w = Float32Array.from(asF32(t));
    for (let i = 0; i < rows; i++) {
      for (let k = 0; k < r; k++) {
        const bik = b.data[i * r + k] * scaling;
        if (bik === 0) continue;
        const arow = k * cols;
        for (let j = 0; j < cols; j++) w[i * cols + j] += bik * a.data[arow + j];
      }
    }
    return new Tensor(shape, w);
  }
}

/** The model with the adapter merged in, its vocabulary extended by the restore tokens. */
export function adaptedModel(adapter: RestoreAdapter, dir: string, model: CausalLM): CausalLM {
  const config = readModelConfig(dir);
  const c = model.config;
  if (config.family !== 'llama') throw new AttendError(`${P}: LoRA adapters are merged for the Llama family only (${dir} is ${config.family})`);
  const same = (['numLayers', 'hiddenSize', 'numHeads', 'numKvHeads', 'headDim', 'vocabSize'] as (keyof ModelConfig)[]).filter((k) => config[k] !== c[k]);
  if (same.length) throw new AttendError(`${P}: base ${dir} is not the model being compressed (${same.map((k) => `${String(k)} ${String(config[k])} vs ${String(c[k])}`).join(', ')})`);
  if (adapter.embeddings.shape[1] !== c.hiddenSize) throw new AttendError(`${P}: the restore embeddings have ${adapter.embeddings.shape[1]} dimensions, the model's hidden size is ${c.hiddenSize}`);
  const archive = SafetensorsArchive.open(dir);
  try {
    const known = new Set(archive.names());
    for (const name of adapter.deltas.keys()) if (!known.has(name)) throw new AttendError(`${P}: the adapter changes ${name}, which ${dir} does not hold`);
    const n = adapter.embeddings.shape[0];
    // The base weights must be the running model's: compare the first layer's output projection (unmerged).
    const mine = model.backend.read(model.outputProjection(0));
    const theirs = asF32(new WeightReader(archive, dir).get('model.layers.0.self_attn.o_proj.weight', [c.hiddenSize, c.numHeads * c.headDim]));
    let worst = 0;
    for (let i = 0; i < mine.length; i++) worst = Math.max(worst, Math.abs(mine[i] - theirs[i]));
    if (!(worst <= 1e-6)) throw new AttendError(`${P}: base ${dir} is not the model being compressed (its first output projection differs by ${worst})`);
    const weights = new AdaptedWeights(archive, join(dir, 'model.safetensors'), adapter, c.vocabSize);
    return FAMILIES.llama.create({ ...c, vocabSize: c.vocabSize + n }, weights, model.backend);
  } finally {
    archive.close();
  }
}

export interface RestoreKVOptions extends KVzipOptions {
  /** The base checkpoint's folder ('' = the adapter's base_model_name_or_path). */
  base: string;
}

export const RESTOREKV_DEFAULTS: RestoreKVOptions = { ...KVZIP_DEFAULTS, base: '' };

export class RestoreKVPress implements Press {
  readonly name = 'restorekv';
  readonly needs = {};
  private readonly kvzip: KVzipPress;
  private adapted?: { model: CausalLM; adapted: CausalLM };
  /** Caches whose restore pass ran. */
  private readonly restored = new WeakSet<KVCache>();
  private prepared?: PreparedSelection;

  constructor(
    readonly adapter: RestoreAdapter,
    readonly options: RestoreKVOptions = RESTOREKV_DEFAULTS,
  ) {
    this.kvzip = new KVzipPress(options);
  }

  get restoreTokens(): number {
    return this.adapter.embeddings.shape[0];
  }

  observer(cache: KVCache, next: AttentionObserver): AttentionObserver {
    return this.kvzip.observer(cache, next);
  }

  /** The merged model for `model` (made once). */
  adaptedFor(model: CausalLM): CausalLM {
    if (this.adapted?.model !== model) this.adapted = { model, adapted: adaptedModel(this.adapter, baseFolder(this.adapter, this.options.base), model) };
    return this.adapted.adapted;
  }

  prepare(ctx: CompressionContext): void {
    const { cache, model } = ctx;
    if (this.restored.has(cache)) {
      throw new AttendError('restorekv compresses once, at the end of the prefill (kvpress\'s compress_post): run it with --press-during prefill and no decoding compression');
    }
    const n = this.restoreTokens;
    const context = cache.nextPosition;
    const budget = ctx.budget;
    const byRatio = ctx.prefill && budget != null && 'ratio' in budget ? budget.ratio : undefined;
    // Budget-matched: kvpress raises the ratio by n / context (min 1); a token budget gives n of each head's entries.
    const adjusted: CompressionContext =
      byRatio !== undefined ? { ...ctx, budget: { ratio: Math.min(1, byRatio + n / context) } } : { ...ctx, targets: ctx.targets.map((t) => Math.max(0, t - n)) };
    const held = cache.layers.reduce((s, l) => s + l.heads.reduce((a, h) => a + h.length, 0), 0);
    const wanted = byRatio !== undefined ? byRatio > 0 : held > ctx.targets.reduce((s, t) => s + t * model.config.numKvHeads, 0);
    this.kvzip.prepare(adjusted);
    const views = cache.layers.map((layer, l) => ({ layer: l, cache: layer }) as LayerView);
    const scores = views.map((v) => this.kvzip.score(v).map((s) => s.slice()));
    const kept = views.map((v) => this.kvzip.select(v).map((k) => k.slice()));
    if (wanted) {
      this.restored.add(cache);
      const adapted = this.adaptedFor(model);
      const vocab = model.config.vocabSize;
      adapted.forward(Array.from({ length: n }, (_, i) => vocab + i), cache, { lastOnly: true });
      // The restore cache is always kept (kvpress scores the context only).
      cache.layers.forEach((layer, l) =>
        layer.heads.forEach((head, h) => {
          const before = scores[l][h].length;
          let max = 1;
          for (const x of scores[l][h]) if (x > max) max = x;
          const s = new Float32Array(head.length);
          s.set(scores[l][h]);
          s.fill(max + 1, before);
          scores[l][h] = s;
          const k = new Int32Array(kept[l][h].length + (head.length - before));
          k.set(kept[l][h]);
          for (let i = before; i < head.length; i++) k[kept[l][h].length + i - before] = i;
          kept[l][h] = k;
        }),
      );
    }
    this.prepared = { layers: cache.layers, scores, kept };
  }

  score(view: LayerView): Float32Array[] {
    return this.preparedFor(view).scores[view.layer];
  }

  select(view: LayerView): Int32Array[] {
    return this.preparedFor(view).kept[view.layer];
  }

  private preparedFor(view: LayerView): PreparedSelection {
    return preparedFor(this.prepared, view, "restorekv scores by re-reading the context and adds its restore tokens in its prepare step: it runs in a CompressionSession, not as another press's scorer");
  }
}
