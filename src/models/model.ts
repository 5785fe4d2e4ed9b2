/** What every model family provides to generation, presses and the CLI. */
import type { AttentionObserver, Backend } from '../backend/backend.js';
import type { HeadMemory } from '../cache/head-memory.js';
import type { TextTokenizer } from '../io/tokenizer.js';
import { KVCache } from '../cache/kv-cache.js';
import { check } from '../errors.js';
import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ModelConfig } from './config.js';
import type { SelectEntries, SequenceStep } from './batch.js';

/**
 * Where code may read and change a forward as it runs (circuit studies: ablation, activation patching, probes).
 * Each hook gets a tensor that is valid during the call only (copy what you keep: Backend.read, or backend
 * ops) and may return a tensor of the same shape to replace it. Rows are the batch's rows in order (one
 * sequence: its new tokens). Layers and heads count from 0; query heads, not KV heads.
 */
export interface ForwardHooks {
  /** The normed input of `layer`'s attention, what its q/k/v projections read: [rows × hiddenSize] (KVzip+ reads its row norms). */
  attentionInput?(layer: number, h: Tensor): Tensor | void;
  /** The attention output of every query head of `layer` before the output projection: [rows × numHeads·headDim], head h in columns [h·headDim, (h+1)·headDim). */
  headOutputs?(layer: number, heads: Tensor): Tensor | void;
  /** The residual stream after `layer` (its attention and MLP added): [rows × hiddenSize]. */
  residual?(layer: number, x: Tensor): Tensor | void;
  /** The final hidden state (after the final norm), the lm head's input: [rows × hiddenSize] (the last rows only with lastOnly). */
  final?(h: Tensor): Tensor | void;
}

export interface BatchOptions {
  /** Return only each sequence's last row of logits (prefill before sampling). */
  lastOnly?: boolean;
  hooks?: ForwardHooks;
}

export interface ForwardOptions extends BatchOptions {
  /** Sees attention probabilities block by block (for presses that score by attention). */
  observer?: AttentionObserver;
  /** Restricts, per layer and KV head, the entries attention reads (selectors: selectors/selector.ts). */
  select?: SelectEntries;
}

export interface CausalLM {
  readonly config: ModelConfig;
  readonly backend: Backend;
  /**
   * Runs `ids` as the next tokens of the sequence whose cache is given: their keys and values are appended at
   * positions cache.nextPosition…, and logits [rows × vocab] come back.
   */
  forward(ids: ArrayLike<number>, cache: KVCache, opts?: ForwardOptions): Tensor;
  /** The same for several sequences at once (each with its own cache, length and position); logits per sequence. */
  forwardBatch(steps: SequenceStep[], opts?: BatchOptions): Tensor[];
  /** A new, empty cache for one sequence, in the backend's memory (Backend.createCache). */
  makeCache(dtype?: DType): KVCache<HeadMemory>;
  /**
   * The attention output projection of `layer` as this backend holds it, [hiddenSize × numHeads·headDim] (query head
   * h in columns [h·headDim, (h+1)·headDim)): what presses that weigh values by their effect on the output read
   * (CriticalKV's ‖W_o v‖₁).
   */
  outputProjection(layer: number): Tensor;
  /**
   * The tokenizer of the checkpoint the model was loaded from (loadModel sets it), for presses that build prompts of
   * their own (KVzip's repeat prompt, from the chat template); absent for a model assembled without one.
   */
  readonly tokenizer?: TextTokenizer;
}

/** makeCache for a family: the config's cache shape, created by the model's backend. */
export function cacheFor(config: ModelConfig, backend: Backend, dtype?: DType): KVCache<HeadMemory> {
  const chosen = dtype ?? backend.preferredKvDtype?.(config.dtype) ?? 'f32';
  return backend.createCache({ numLayers: config.numLayers, numKvHeads: config.numKvHeads, headDim: config.headDim }, chosen);
}

/** Hooks that zero the output of the given query heads before the output projection (head ablation). */
export function ablationHooks(backend: Backend, config: ModelConfig, heads: readonly HeadRef[]): ForwardHooks {
  for (const { layer, head } of heads) {
    check(Number.isInteger(layer) && layer >= 0 && layer < config.numLayers, `ablated head ${layer}.${head}: the model has layers 0…${config.numLayers - 1}`);
    check(Number.isInteger(head) && head >= 0 && head < config.numHeads, `ablated head ${layer}.${head}: the model has query heads 0…${config.numHeads - 1}`);
  }
  const d = config.headDim;
  return {
    headOutputs(layer, out) {
      for (const h of heads) if (h.layer === layer) backend.fillColumns(out, h.head * d, (h.head + 1) * d, 0);
    },
  };
}

/** A query head of a layer, both counted from 0. */
export interface HeadRef {
  layer: number;
  head: number;
}

/** "L.H[,L.H…]" → heads; one-line errors for anything else. */
export function parseHeads(text: string): HeadRef[] {
  return text.split(',').map((part) => {
    const m = /^\s*(\d+)\.(\d+)\s*$/.exec(part);
    check(m !== null, `'${part}' is not a head: expected LAYER.HEAD, both counted from 0 (e.g. 3.5)`);
    return { layer: Number(m![1]), head: Number(m![2]) };
  });
}

/** `a`'s hooks, then `b`'s on what `a` returned. */
export function chainHooks(a: ForwardHooks, b: ForwardHooks | undefined): ForwardHooks {
  if (!b) return a;
  const chain = <T extends unknown[]>(f?: (...args: [...T, Tensor]) => Tensor | void, g?: (...args: [...T, Tensor]) => Tensor | void) =>
    f && g ? (...args: [...T, Tensor]) => {
      const x = args[args.length - 1] as Tensor;
      const first = f(...args) ?? x;
      return g(...([...args.slice(0, -1), first] as [...T, Tensor])) ?? first;
    } : f ?? g;
  return {
    attentionInput: chain<[number]>(a.attentionInput, b.attentionInput),
    headOutputs: chain<[number]>(a.headOutputs, b.headOutputs),
    residual: chain<[number]>(a.residual, b.residual),
    final: chain<[]>(a.final, b.final),
  };
}

/** The model with `hooks` on every forward (before any hooks a caller passes), so that every path through it (prefill, generation, benchmarks) runs them. */
export function withHooks(model: CausalLM, hooks: ForwardHooks): CausalLM {
  return {
    config: model.config,
    backend: model.backend,
    forward: (ids, cache, opts = {}) => model.forward(ids, cache, { ...opts, hooks: chainHooks(hooks, opts.hooks) }),
    forwardBatch: (steps, opts = {}) => model.forwardBatch(steps, { ...opts, hooks: chainHooks(hooks, opts.hooks) }),
    makeCache: (dtype) => model.makeCache(dtype),
    outputProjection: (layer) => model.outputProjection(layer),
    tokenizer: model.tokenizer,
  };
}

/** Logits and the final hidden state (a host copy) of `ids` run as the next tokens of the cache's sequence. */
export function forwardWithHidden(model: CausalLM, ids: ArrayLike<number>, cache: KVCache, opts: ForwardOptions = {}): { logits: Tensor; hidden: Float32Array } {
  let hidden: Float32Array | undefined;
  const logits = model.forward(ids, cache, {
    ...opts,
    hooks: {
      ...opts.hooks,
      final(h) {
        const replaced = opts.hooks?.final?.(h) ?? h;
        hidden = model.backend.read(replaced).slice();
        return replaced;
      },
    },
  });
  return { logits, hidden: hidden! };
}

/** A host cache of the config's shape (the CPU backend's memory); CausalLM.makeCache asks the model's own backend. */
export function newCache(config: ModelConfig, dtype: DType = 'f32'): KVCache {
  return new KVCache({ numLayers: config.numLayers, numKvHeads: config.numKvHeads, headDim: config.headDim }, dtype);
}

/** The longest sequence the model is meant to run: max_position_embeddings, stretched for dynamic RoPE. */
export function contextLength(config: ModelConfig): number {
  return config.rope?.type === 'dynamic' ? Math.floor(config.maxPositions * config.rope.factor) : config.maxPositions;
}

/** KV-cache bytes one token costs at full size, over all layers (keys + values + its position). */
export function kvBytesPerToken(config: ModelConfig, bytesPerElement = 4): number {
  return config.numLayers * config.numKvHeads * (2 * config.headDim * bytesPerElement + 4);
}

export function positionsFrom(start: number, count: number): Int32Array {
  const p = new Int32Array(count);
  for (let i = 0; i < count; i++) p[i] = start + i;
  return p;
}
