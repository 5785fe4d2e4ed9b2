/**
 * Key norm (Devoto et al. 2024, "A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression").
 * Rule: keys with a low L2 norm draw high attention, so keep the entries with the smallest key norms.
 */
import type { LayerView, Press } from './press.js';

export class KnormPress implements Press {
  readonly name = 'knorm';
  readonly needs = {};

  score(view: LayerView): Float32Array[] {
    return view.backend.keyNorms(view.cache).map((norms) => norms.map((n) => -n));
  }
}
