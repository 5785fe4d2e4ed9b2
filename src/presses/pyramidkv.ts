/**
 * PyramidKV (Cai et al. 2024, "PyramidKV: Dynamic KV Cache Compression based on Pyramidal Information Funneling").
 * Rule: SnapKV's scores, with budgets that shrink linearly with depth: lower layers keep more, upper layers fewer,
 * the total equal to a uniform budget. The arithmetic is KVCache-Factory's, as kvpress's PyramidKVPress applies it:
 * with k the entries per layer under the uniform budget, max_num + min_num = 2k, min_num = k / beta, and layer l
 * keeps round(max_num − l · (max_num − min_num) / (layers − 1)); when the pyramid does not fit (short contexts),
 * every layer keeps the uniform budget. Defaults: beta 20, window 64, kernel 5 (kvpress).
 */
import { SNAPKV_DEFAULTS, SnapKVPress, type SnapKVOptions } from './snapkv.js';
import type { LayerView } from './press.js';

export interface PyramidKVOptions extends SnapKVOptions {
  beta: number;
}

export const PYRAMIDKV_DEFAULTS: PyramidKVOptions = { ...SNAPKV_DEFAULTS, beta: 20 };

export class PyramidKVPress extends SnapKVPress {
  override readonly name = 'pyramidkv';

  constructor(readonly pyramid: PyramidKVOptions = PYRAMIDKV_DEFAULTS) {
    super(pyramid, 'pyramidkv');
  }

  /**
   * From the budget of the tokens seen (view.uniform, view.seen), not from the layer's current length: on a prompt
   * compressed once they are the same (kvpress's case), and after per-chunk or decoding compressions have left the
   * layers unequal the pyramid still sums to the budget.
   */
  layerKeep(view: LayerView): number {
    const { window, beta } = this.pyramid;
    const length = view.seen;
    const layers = view.config.numLayers;
    const capacity = window + view.uniform;
    let minNum = (capacity - window) / beta;
    let maxNum = (capacity - window) * 2 - minNum;
    if (maxNum >= length - window) {
      maxNum = length - window;
      minNum = (capacity - window) * 2 - maxNum;
    }
    if (!(length >= maxNum && maxNum >= minNum && minNum >= window) || layers < 2) return Math.round(view.uniform);
    return Math.round(maxNum - (view.layer * (maxNum - minNum)) / (layers - 1));
  }
}
