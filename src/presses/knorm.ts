/**
 * Key norm (Devoto et al. 2024, "A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression").
 * Rule: keys with a low L2 norm draw high attention, so keep the entries with the smallest key norms.
 */
import type { LayerView, Press } from './press.js';

export class KnormPress implements Press {
  readonly name = 'knorm';
  readonly needs = {};

  score(view: LayerView): Float32Array[] {
    return view.cache.heads.map((head) => {
      const keys = head.keys(0, head.length);
      const d = head.headDim;
      return Float32Array.from({ length: head.length }, (_, i) => {
        let s = 0;
        for (let j = 0; j < d; j++) s += keys[i * d + j] ** 2;
        return -Math.sqrt(s);
      });
    });
  }
}
