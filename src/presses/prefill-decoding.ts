/**
 * kvpress's PrefillDecodingPress (kvpress/presses/prefill_decoding_press.py; kvpress's own, no paper): one press for
 * the prefill and a DecodingPress (decoding.ts) for decoding.
 *
 * Rule: the prompt is compressed by the prefill press under the plan's budget (--ratio or --budget, as that press
 * alone would be); while decoding, the DecodingPress brings each layer back to its own `target-size` every
 * `compression-interval` steps, scoring with its `decoding` scorer and the queries buffered since its last
 * compression. kvpress lets either be None (no compression in that phase): Attend's `prefill` and `decoding` name
 * presses, for which kvpress has no defaults; both default to knorm here (kvpress's generation README pairs
 * a prefill press with DecodingPress(KnormPress)). The wrapped presses run on their own defaults.
 * Decoding options and defaults are DecodingPress's (kvpress's): compression_interval 512, target_size 2048,
 * hidden_states_buffer_size 256. The prefill press's hooks (prepare, beforeKeep, afterCompress) run for the prefill only.
 */
import type { AttentionObserver } from '../backend/backend.js';
import type { KVCache } from '../cache/kv-cache.js';
import type { ModelConfig } from '../models/config.js';
import type { DecodingPress } from './decoding.js';
import { type CompressionContext, type LayerView, type Press, type PressNeeds, topK } from './press.js';

export class PrefillDecodingPress implements Press {
  readonly name: string;
  readonly needs: PressNeeds;
  /** The budget is the prefill press's, so this press sizes itself exactly when that one does. */
  readonly sizesItself?: boolean;
  readonly observer?: (cache: KVCache, next: AttentionObserver) => AttentionObserver;
  readonly layerKeep?: (view: LayerView) => number;
  /** Whether the last layer selected was in a decoding compression (afterCompress is the prefill press's only). */
  private decodingNow = false;

  constructor(
    readonly prefill: Press,
    readonly decoding: DecodingPress,
  ) {
    this.name = `prefill-decoding(${prefill.name}, ${decoding.name})`;
    const a = prefill.needs;
    const b = decoding.needs;
    this.needs = {
      queryWindow: Math.max(a.queryWindow ?? 0, b.queryWindow ?? 0) || undefined,
      attention: a.attention || b.attention || undefined,
    };
    this.sizesItself = prefill.sizesItself;
    const po = prefill.observer?.bind(prefill);
    const dob = decoding.observer;
    if (po || dob) {
      this.observer = (cache, next) => {
        const inner = dob ? dob(cache, next) : next;
        return po ? po(cache, inner) : inner;
      };
    }
    if (prefill.layerKeep) this.layerKeep = (view) => prefill.layerKeep!(view);
  }

  score(view: LayerView): Float32Array[] {
    if (view.decoding) return this.decoding.score(view);
    // As the runner does for a press without `select`: a layer within the budget is not scored.
    if (this.withinBudget(view)) return view.cache.heads.map((h) => new Float32Array(h.length));
    return this.prefill.score(view);
  }

  select(view: LayerView, scores: Float32Array[]): Int32Array[] {
    this.decodingNow = view.decoding === true;
    if (view.decoding) return this.decoding.select(view, scores);
    let kept: Int32Array[];
    if (this.prefill.select) kept = this.prefill.select(view, scores);
    else kept = this.withinBudget(view) ? view.cache.heads.map((h) => topK(new Float32Array(h.length), h.length)) : scores.map((s) => topK(s, view.keep));
    // The decoding press learns where the prompt ended (its query buffer starts after it); it keeps everything.
    this.decoding.select(view, scores);
    return kept;
  }

  prepare(context: CompressionContext): void {
    if (context.prefill) this.prefill.prepare?.(context);
  }

  beforeKeep(view: LayerView, kept: Int32Array[]): void {
    if (!view.decoding) this.prefill.beforeKeep?.(view, kept);
  }

  afterCompress(cache: KVCache, config: ModelConfig): void {
    if (!this.decodingNow) this.prefill.afterCompress?.(cache, config);
  }

  private withinBudget(view: LayerView): boolean {
    return !this.prefill.select && view.cache.heads.every((h) => h.length <= view.keep);
  }
}
