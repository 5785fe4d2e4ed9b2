/**
 * kvpress's CompressionRatioDecodingPress (kvpress/presses/compression_ratio_decoding_press.py; kvpress's own, no
 * paper): DecodingPress (decoding.ts) whose target is a share of all the tokens seen so far instead of a fixed size.
 *
 * Rule: every `compression-interval` decoding steps each layer is brought to max(1, int(seen·(1 − ratio))) entries
 * per head, `seen` the tokens the sequence has seen (kvpress: position_ids.max() + 1 of the current forward), with
 * `ratio` = `target-compression-ratio`; everything else is DecodingPress's (no prefill compression, kvpress's ratio
 * search, the scorer reading the queries buffered since the last compression, turned with the current RoPE).
 *
 * Defaults, kvpress's: target_compression_ratio 0.5, compression_interval 512, hidden_states_buffer_size 256;
 * `scorer` knorm as for DecodingPress (kvpress's base_press has no default). kvpress asserts 0 ≤ ratio < 1: so here.
 */
import { check } from '../errors.js';
import { DECODING_DEFAULTS, DecodingPress } from './decoding.js';
import type { LayerView, Press } from './press.js';

export interface CompressionRatioDecodingOptions {
  /** Fraction of the tokens seen that decoding removes (kvpress target_compression_ratio). */
  targetRatio: number;
  interval: number;
  bufferSize: number;
}

export const COMPRESSION_RATIO_DECODING_DEFAULTS: CompressionRatioDecodingOptions = {
  targetRatio: 0.5,
  interval: DECODING_DEFAULTS.interval,
  bufferSize: DECODING_DEFAULTS.bufferSize,
};

export class CompressionRatioDecodingPress extends DecodingPress {
  constructor(scorer: Press, readonly ratioOptions: CompressionRatioDecodingOptions = COMPRESSION_RATIO_DECODING_DEFAULTS) {
    // kvpress's target_size field is fixed at 1 for this class (unused: the target is computed).
    super(scorer, { interval: ratioOptions.interval, targetSize: 1, bufferSize: ratioOptions.bufferSize }, 'compression-ratio-decoding');
    const r = ratioOptions.targetRatio;
    check(r >= 0 && r < 1, `compression-ratio-decoding: target-compression-ratio must be in [0, 1), the fraction of the tokens seen removed; got ${r}`);
  }

  override target(view: LayerView): number {
    return Math.max(1, Math.trunc(view.seen * (1 - this.ratioOptions.targetRatio)));
  }
}
