/**
 * Per-layer compression (kvpress PerLayerCompressionPress): each layer compressed with its own ratio.
 * Rule: layer l keeps ⌊seen·(1 − ratios[l])⌋ entries per head, chosen by the wrapped scorer's scores (its top
 * entries per head). Options: `ratios`, one ratio in [0, 1) per layer, comma-separated (kvpress's
 * compression_ratios, which it requires: no default; entries past the model's layers are ignored, as kvpress
 * indexes the list by layer); `scorer` 'snapkv' (kvpress requires one; as AdaKV's default here).
 * Attend's budget: kvpress's compression_ratio for this press is the mean of the layers' ratios (and cannot be
 * set). Under a ratio budget equal to that mean (within 1e-12) each layer keeps exactly kvpress's
 * int(k_len·(1 − ratios[l])); under any other budget every layer's kept fraction 1 − ratios[l] is scaled by one
 * factor, (entries per head the budget allows) / (seen·(1 − mean)), so the list shapes how the budget is spread over
 * the layers and the layers together keep the budget (as PyramidKV's shaping does: a shared budget across layers).
 * As kvpress (which asserts a ScorerPress), only the scorer's `score` is used: a press that selects across heads or
 * changes the cache itself is refused, and the scorer's own layer budgets (PyramidKV's) give way to the list.
 */
import { AttendError } from '../errors.js';
import type { LayerView, Press } from './press.js';
import { checkScorer, numberList } from './wrapped.js';

export class PerLayerCompressionPress implements Press {
  readonly name: string;
  readonly needs;
  readonly observer?: Press['observer'];
  readonly ratios: number[];

  constructor(
    readonly scorer: Press,
    ratios: number[] | string,
  ) {
    checkScorer('per-layer-compression', scorer);
    this.ratios = typeof ratios === 'string' ? numberList(ratios) : ratios;
    this.ratios.forEach((r) => {
      if (!(r >= 0 && r < 1)) throw new AttendError(`per-layer-compression: every ratio must be in [0, 1) (the fraction of a layer's entries removed), got ${r}`);
    });
    this.name = `per-layer-compression(${scorer.name})`;
    this.needs = scorer.needs;
    if (scorer.observer) this.observer = scorer.observer.bind(scorer);
  }

  /** The layer's ratio and the factor the budget scales the kept fractions by (1 at a ratio budget of their mean). */
  private layerPlan(view: LayerView): { ratio: number; factor: number } {
    const layers = view.config.numLayers;
    if (this.ratios.length < layers) {
      throw new AttendError(
        `per-layer-compression needs one ratio per layer: --press-opt ratios=r0,r1,… with ${layers} ratios for this model, got ${this.ratios.length}`,
      );
    }
    const used = this.ratios.slice(0, layers);
    const mean = used.reduce((a, b) => a + b, 0) / layers;
    let factor = view.uniform / (view.seen * (1 - mean));
    if (Math.abs(factor - 1) <= 1e-12) factor = 1;
    return { ratio: used[view.layer], factor };
  }

  layerKeep(view: LayerView): number {
    const { ratio, factor } = this.layerPlan(view);
    return Math.floor(view.seen * (1 - ratio) * factor);
  }

  score(view: LayerView): Float32Array[] {
    const { ratio, factor } = this.layerPlan(view);
    return this.scorer.score({ ...view, ratio: 1 - (1 - ratio) * factor });
  }
}
