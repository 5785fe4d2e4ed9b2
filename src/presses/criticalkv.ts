/**
 * CriticalKV (Feng et al. 2025, "Identify Critical KV Cache in LLM Inference from an Output Perturbation
 * Perspective", arXiv 2502.03805), as kvpress's CriticalKVPress.
 * Rule, per KV head, in two stages: (1) the wrapped scorer's best ⌊(1 − ratio)·length·first-stage-ratio⌋ entries
 * are kept outright; (2) every entry's score is rescaled by how much its value moves the layer's output,
 * (score + epsilon)·‖W_o,h·v‖₁ (the L1 norm of the value projected by its query heads' slice of the output
 * projection, averaged over the query heads sharing the KV head), and the rest of the budget goes to the best of
 * those. The stage-1 entries score float32's largest value, so they stay.
 * Options and defaults (kvpress): `epsilon` 1e-4, `first-stage-ratio` 0.5; `scorer` 'snapkv' (kvpress requires
 * one; its evaluation registry's critical_snapkv). As kvpress, only the scorer's `score` is used, and a press that
 * selects across heads or changes the cache itself is refused (kvpress asserts a ScorerPress).
 * W_o is the model's (LayerView.model.outputProjection); v·W_o,hᵀ runs through the backend's linear op (f32, as
 * torch's matmul), the L1 norms are summed in f64.
 */
import { AttendError } from '../errors.js';
import type { LayerView, Press } from './press.js';
import { topK } from './press.js';
import { F32_MAX, checkScorer } from './wrapped.js';

export interface CriticalKVOptions {
  epsilon: number;
  firstStageRatio: number;
}

export const CRITICALKV_DEFAULTS: CriticalKVOptions = { epsilon: 1e-4, firstStageRatio: 0.5 };

export function checkCriticalOptions(who: string, o: CriticalKVOptions): void {
  if (!Number.isFinite(o.epsilon)) throw new AttendError(`${who}: option epsilon must be a finite number (added to the scores before rescaling), got ${o.epsilon}`);
  if (!(o.firstStageRatio >= 0 && o.firstStageRatio <= 1)) {
    throw new AttendError(`${who}: option first-stage-ratio must be in [0, 1] (the share of the budget kept by the scorer alone), got ${o.firstStageRatio}`);
  }
}

/**
 * Per KV head and entry: ‖v·W_o,h‖₁ averaged over the query heads h of the head's group (kvpress vwl1norm), where
 * W_o,h is the [headDim × hidden] slice of the output projection that query head h's output goes through.
 */
export function outputNorms(view: LayerView, who: string): Float32Array[] {
  if (!view.model) throw new AttendError(`${who}: needs the model's output projection (LayerView.model), which this view lacks`);
  const { numHeads, numKvHeads, headDim: d, hiddenSize } = view.config;
  const group = numHeads / numKvHeads;
  const width = numHeads * d;
  const wo = view.backend.read(view.model.outputProjection(view.layer)); // [hidden × numHeads·headDim]
  if (wo.length !== hiddenSize * width) throw new AttendError(`${who}: the output projection of layer ${view.layer} holds ${wo.length} weights, not ${hiddenSize} × ${width}`);
  // Per query head h, its [hidden × headDim] slice of W_o (columns h·headDim…), as a Linear weight.
  const slices = Array.from({ length: numHeads }, (_, h) => {
    const w = new Float32Array(hiddenSize * d);
    for (let o = 0; o < hiddenSize; o++) w.set(wo.subarray(o * width + h * d, o * width + (h + 1) * d), o * d);
    return view.backend.upload([hiddenSize, d], w);
  });
  return view.cache.heads.map((head, g) => {
    const n = head.length;
    const out = new Float32Array(n);
    if (n === 0) return out;
    const values = view.backend.upload([n, d], head.values(0, n).slice());
    const mean = new Float64Array(n);
    for (let j = 0; j < group; j++) {
      // v·W_o,hᵀ for every entry at once: [n × hidden], then the L1 norm of each row.
      const projected = view.backend.read(view.backend.linear(values, slices[g * group + j]));
      for (let i = 0; i < n; i++) {
        let l1 = 0;
        for (let o = 0; o < hiddenSize; o++) l1 += Math.abs(projected[i * hiddenSize + o]);
        mean[i] += l1 / group;
      }
    }
    for (let i = 0; i < n; i++) out[i] = mean[i];
    return out;
  });
}

export class CriticalKVPress implements Press {
  readonly name: string;
  readonly needs;
  readonly observer?: Press['observer'];

  constructor(
    readonly scorer: Press,
    readonly options: CriticalKVOptions = CRITICALKV_DEFAULTS,
  ) {
    checkScorer('criticalkv', scorer);
    checkCriticalOptions('criticalkv', options);
    this.name = `criticalkv(${scorer.name})`;
    this.needs = scorer.needs;
    if (scorer.observer) this.observer = scorer.observer.bind(scorer);
  }

  score(view: LayerView): Float32Array[] {
    const { epsilon, firstStageRatio } = this.options;
    const scores = this.scorer.score(view);
    const norms = outputNorms(view, 'criticalkv');
    return scores.map((s, h) => {
      const n = s.length;
      const first = topK(s, Math.floor((1 - view.ratio) * n * firstStageRatio));
      const out = Float32Array.from(s, (x, i) => Math.fround(x + Math.fround(epsilon)) * norms[h][i]);
      for (const i of first) out[i] = F32_MAX;
      return out;
    });
  }
}
