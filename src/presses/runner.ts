/**
 * When compression runs, and the one place budgets are computed. A CompressionSession follows one sequence:
 * - during 'prefill' (as kvpress): once, when the whole prompt is in the cache;
 * - during 'chunks': after every prefill chunk, so the cache never holds more than the budget plus one chunk;
 * - while decoding, if asked: every `every` steps and whenever a head passes `maxSize`, back to the target: the
 *   token budget, or for a ratio the size the prefill left (kvpress's DecodingPress keeps a fixed target size
 *   the same way, see presses/decoding.ts; H2O evicts every step). The press's view then says `decoding`.
 * A press that sets its own size (Press.sizesItself: DMS, SimLayerKV, DecodingPress) takes no budget: every entry
 * is offered to it, at the same times, and its `select` decides what each head keeps.
 */
import type { AttentionObserver } from '../backend/backend.js';
import type { KVCache } from '../cache/kv-cache.js';
import { kernelOf } from '../attention/kernels/index.js';
import { check } from '../errors.js';
import type { CausalLM } from '../models/model.js';
import { type Budget, entriesToKeep, uniformKeep, validateBudget } from './budget.js';
import { PressRecorder, type RecordedQueries } from './observe.js';
import { type LayerView, type Press, topK } from './press.js';

export interface CompressionPlan {
  press: Press;
  /** Required, except for a press that sets its own size (Press.sizesItself), which takes none (absent or null). */
  budget?: Budget;
  during?: 'prefill' | 'chunks';
  decode?: { every?: number; maxSize?: number };
}

export interface CompressionStats {
  /** Times the cache was compressed. */
  compressions: number;
  /** Entries removed over all layers and heads. */
  dropped: number;
}

export class CompressionSession {
  readonly observer: AttentionObserver;
  readonly stats: CompressionStats = { compressions: 0, dropped: 0 };
  private readonly recorder: PressRecorder;
  /** Per layer, the entries per head the prefill left: the size decoding compression returns to. */
  private decodeTargets?: number[];
  /** Per layer, the entries per head the last prefill compression aimed at (after the press's layerKeep). */
  private readonly layerTargets: number[] = [];
  private stepsSinceCompression = 0;

  /** `recorded`: query windows of a prefill that ran without this session (see afterSharedPrefill). */
  constructor(
    readonly plan: CompressionPlan,
    private readonly model: CausalLM,
    private readonly cache: KVCache,
    recorded?: RecordedQueries,
  ) {
    if (plan.press.sizesItself) {
      check(plan.budget == null, `${plan.press.name} sets its own size: it takes no budget (no --ratio or --budget)`);
      check(plan.press.select !== undefined, `${plan.press.name} sets its own size, so it must select its entries (Press.select)`);
    } else {
      check(plan.budget != null, `${plan.press.name} needs a budget (--ratio or --budget)`);
      validateBudget(plan.budget);
    }
    const c = model.config;
    const kernel = kernelOf(c.attentionKernel);
    const readsAttention = plan.press.needs.attention || (plan.press.needs.queryWindow ?? 0) > 0 || plan.press.observer !== undefined;
    check(kernel.probabilities || !readsAttention,
      `${plan.press.name} scores entries by attention probabilities, and the ${kernel.spec.name} attention kernel has none`);
    this.recorder = new PressRecorder(plan.press.needs, c.numHeads * c.headDim, recorded);
    this.observer = plan.press.observer?.(cache, this.recorder) ?? this.recorder;
  }

  /**
   * A session joining a whole prompt that was prefilled once for several methods: `cache` holds it with this
   * press's head statistics, `recorded` a recorder's query windows at least as long as the press needs. It is
   * compressed now, as at the end of the prefill. Presses with their own observer saw nothing, so they cannot.
   */
  static afterSharedPrefill(plan: CompressionPlan, model: CausalLM, cache: KVCache, recorded: RecordedQueries): CompressionSession {
    check(!plan.press.observer, `${plan.press.name} records its own statistics: it cannot join a shared prefill`);
    check((plan.during ?? 'prefill') === 'prefill', `a shared prefill is compressed once at its end, not per chunk`);
    const session = new CompressionSession(plan, model, cache, recorded);
    session.afterChunk(cache.nextPosition, cache.nextPosition);
    return session;
  }

  /** Call after each prefill chunk; `end` tokens of `total` are in. */
  afterChunk(end: number, total: number): void {
    if (this.plan.during === 'chunks' || end === total) this.compress((layer, length) => this.prefillKeep(length));
    if (end === total) {
      const budget = this.plan.budget;
      // Decoding returns each layer to what the prefill gave it: the token budget, or the prefill's own target
      // (a ratio's ⌊prompt·(1 − ratio)⌋, shaped per layer by the press) — not the layer's longest head, which for a
      // head-adaptive press would let the layer's total grow past the budget.
      const shaped = this.plan.press.layerKeep !== undefined;
      this.decodeTargets = this.cache.layers.map((l, i) => (budget && 'tokens' in budget && !shaped ? budget.tokens : this.layerTargets[i] ?? l.maxLength()));
    }
  }

  /** Call after each decoded token. */
  afterDecodeStep(): void {
    const decode = this.plan.decode;
    if (!decode || !this.decodeTargets) return;
    this.stepsSinceCompression++;
    const due = decode.every !== undefined && this.stepsSinceCompression >= decode.every;
    const over = decode.maxSize !== undefined && this.cache.layers.some((l) => l.maxLength() > decode.maxSize!);
    if (!due && !over) return;
    const targets = this.decodeTargets;
    this.compress((layer, length) => Math.min(length, targets[layer]), false);
    this.stepsSinceCompression = 0;
  }

  private prefillKeep(length: number): number {
    // A press that sets its own size is offered every entry (its select decides).
    return this.plan.budget ? entriesToKeep(this.plan.budget, this.cache.seenTokens, length) : length;
  }

  /**
   * Compresses every layer whose heads hold more than `keepFor(layer)` allows. `shape`: let the press set per-layer
   * budgets (layerKeep) from the budget of the tokens seen (prefill); decoding passes false, its targets already are,
   * and the press's view then says `decoding`.
   */
  compress(keepFor: (layer: number, length: number) => number, shape = true): void {
    const { press, budget } = this.plan;
    const config = this.model.config;
    let changed = false;
    // Targets before the cap by what a layer holds: keepFor of an unbounded length.
    press.prepare?.({ model: this.model, cache: this.cache, budget, prefill: shape, targets: this.cache.layers.map((_, l) => keepFor(l, Infinity)) });
    this.cache.layers.forEach((cache, layer) => {
      const length = cache.maxLength();
      const keep = keepFor(layer, length);
      const view: LayerView = {
        layer,
        config,
        backend: this.model.backend,
        cache,
        seen: this.cache.seenTokens,
        keep,
        ratio: budget && 'ratio' in budget && length === this.cache.seenTokens ? budget.ratio : 1 - keep / length,
        uniform: budget ? uniformKeep(budget, this.cache.seenTokens) : this.cache.seenTokens,
        queries: this.recorder.window(layer),
        model: this.model,
        ...(shape ? {} : { decoding: true }),
      };
      const layerKeep = shape ? Math.min(length, press.layerKeep?.(view) ?? keep) : keep;
      if (shape) this.layerTargets[layer] = layerKeep;
      if (cache.heads.every((h) => h.length <= layerKeep) && !press.select) return;
      view.keep = layerKeep;
      // A press that prunes key channels (ThinK) keeps every entry and scores none.
      const scores = press.keyChannels ? cache.heads.map((h) => new Float32Array(h.length)) : press.score(view);
      const kept = press.select ? press.select(view, scores) : scores.map((s) => topK(s, layerKeep));
      press.beforeKeep?.(view, kept);
      cache.heads.forEach((head, h) => {
        if (kept[h].length === head.length) return;
        this.stats.dropped += head.length - kept[h].length;
        head.keep(kept[h]);
        changed = true;
      });
      if (press.afterKeep?.(view)) changed = true;
    });
    if (changed) this.stats.compressions++;
    // A press may renumber the cache (key rerotation): the recorded queries follow it.
    const next = this.cache.nextPosition;
    if (changed) press.afterCompress?.(this.cache, config);
    this.recorder.renumbered(next - this.cache.nextPosition, config, next);
  }
}
