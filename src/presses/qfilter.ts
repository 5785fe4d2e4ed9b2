/**
 * Q-Filters (Godey et al. 2025, "Q-Filters: Leveraging QK Geometry for Efficient KV Cache Compression", arXiv
 * 2503.02812), as kvpress's QFilterPress implements it (the oracle; qfilter_press.py).
 *
 * Rule: each KV head of each layer has one learned direction, its Q-filter f (head_dim values); an entry's score is
 * −⟨f, k⟩ with k its key as cached (post-RoPE), and each head keeps its int(n·(1 − ratio)) highest scores (kvpress's
 * ScorerPress; ties to the earlier entry). The paper's filter is the principal right singular vector of a head's
 * queries over calibration text, signed so that most queries project positively on it, averaged over the query heads
 * of the KV group and negated (the authors' make_filters.py): the score then rises with the key's alignment to the
 * queries' dominant direction, a context-free estimate of the attention the key will get.
 *
 * The trained part: the authors publish one Hugging Face repo per model (nthngdy/<model>_qfilt) holding a
 * PyTorchModelHubMixin module saved with save_pretrained: model.safetensors with the parameter `q_filters`
 * [layers, kv_heads, head_dim] and config.json ({num_layers, num_kv_heads, kv_head_dim}); kvpress downloads it from
 * the model's name. Here `path` is that folder (or its .safetensors file): kvpress's hub download is the only
 * difference, and a filter made for another shape is refused. tools/press_training/qfilter.py makes one for
 * attend-mini with the authors' recipe. kvpress's QFilterPress has no option of its own (compression_ratio is the
 * budget); it casts the filters to the model's dtype, which for an f32 model changes nothing.
 */
import { AttendError } from '../errors.js';
import type { LayerView, Press } from './press.js';
import { checkShape, readTensors, requirePath, tensorOf } from './trained-files.js';

export interface QFilters {
  layers: number;
  kvHeads: number;
  headDim: number;
  /** [layers × kvHeads × headDim] */
  filters: Float32Array;
}

/** Reads a Q-filters folder (model.safetensors with `q_filters`) or file. */
export function readQFilters(path: string): QFilters {
  requirePath('qfilter', path, 'a Q-filters folder: model.safetensors with q_filters [layers, kv_heads, head_dim]');
  const t = tensorOf('qfilter', path, readTensors('qfilter', path), 'q_filters', [-1, -1, -1]);
  return { layers: t.shape[0], kvHeads: t.shape[1], headDim: t.shape[2], filters: t.data };
}

export class QFilterPress implements Press {
  readonly name = 'qfilter';
  readonly needs = {};

  constructor(readonly qfilters: QFilters) {}

  score(view: LayerView): Float32Array[] {
    const { numLayers, numKvHeads, headDim: d } = view.config;
    const q = this.qfilters;
    checkShape('qfilter', 'Q-filters file', { layers: q.layers, 'KV heads': q.kvHeads, 'head dim': q.headDim }, view.config, {
      layers: numLayers,
      'KV heads': numKvHeads,
      'head dim': d,
    });
    if (view.layer >= q.layers) throw new AttendError(`qfilter: no filter for layer ${view.layer}`);
    return view.cache.heads.map((head, h) => {
      const f = q.filters.subarray((view.layer * q.kvHeads + h) * d, (view.layer * q.kvHeads + h + 1) * d);
      const keys = head.keys(0, head.length);
      const out = new Float32Array(head.length);
      for (let i = 0; i < head.length; i++) {
        let s = 0;
        for (let c = 0; c < d; c++) s += f[c] * keys[i * d + c];
        out[i] = -s;
      }
      return out;
    });
  }
}
