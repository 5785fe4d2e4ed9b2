/**
 * Key rerotation (kvpress KeyRerotationPress; the rerotation of transformers' SinkCache, of StreamingLLM's
 * implementation — Xiao et al. 2023, "Efficient Streaming Language Models with Attention Sinks", arXiv 2309.17453
 * — and of FINCH, Corallo & Papotti 2024, TACL, doi 10.1162/tacl_a_00716).
 * Rule: a scorer picks the kept entries as it would alone (top ⌊length·(1 − ratio)⌋ of its scores per head); the
 * kept keys are then re-rotated so that they sit at positions 0…n−1, each turned by RoPE at its position difference
 * (new − old, angles computed in f32 as kvpress does), and the sequence continues at n: kvpress's pipeline places
 * the question at the compressed length. In Attend this is a cache operation, KVCache.renumber: every head of
 * every layer is renumbered, the cache's nextPosition moves to n and `seenTokens` still counts the tokens seen.
 * Options: `scorer`, the press whose scores are used (kvpress requires one, it has no default; 'snapkv' here, as
 * AdaKV's). As kvpress, which only calls its ScorerPress's `score`: the scorer's own budget shaping (PyramidKV's
 * layerKeep) is not used, so all heads keep the same number of entries; a press that selects its own entries
 * (AdaKV), sets its own size (DMS), runs the model again (KVzip) or restructures the cache itself (key rerotation,
 * FINCH, merging) is refused, as kvpress's assert refuses anything but a ScorerPress. Should heads ever hold different numbers (a later compression of another kind), the
 * renumbering aligns each head's last entry with the next token (KVCache.renumber).
 * Attend also rerotates after per-chunk and decoding compressions (kvpress compresses once, after the prefill).
 */
import type { KVCache } from '../cache/kv-cache.js';
import { inverseFrequencies } from '../attention/rope.js';
import { AttendError } from '../errors.js';
import type { ModelConfig } from '../models/config.js';
import type { LayerView, Press } from './press.js';

/** Renumbers `cache` to the entries it holds, re-rotating the keys (nothing turns for a model without RoPE). */
export function rerotateKeys(cache: KVCache, config: ModelConfig): number {
  return cache.renumber(config.rope ? inverseFrequencies(config.rope, cache.nextPosition) : undefined);
}

/** Refuses, in one line, a press that a kvpress wrapper of ScorerPresses cannot take. */
export function checkScorer(wrapper: string, scorer: Press): void {
  const own = scorer.select
    ? 'selects its own entries'
    : scorer.sizesItself
      ? 'sets its own size'
      : scorer.beforeKeep || scorer.afterCompress
        ? 'changes the cache itself'
        : scorer.prepare
          ? 'runs the model again before it scores'
          : '';
  if (own) throw new AttendError(`${wrapper}: scorer ${scorer.name} ${own}; ${wrapper} wraps a press that scores entries (kvpress: a ScorerPress)`);
}

export class KeyRerotationPress implements Press {
  readonly name: string;
  readonly needs;
  readonly observer?: Press['observer'];

  constructor(readonly scorer: Press) {
    checkScorer('key-rerotation', scorer);
    this.name = `key-rerotation(${scorer.name})`;
    this.needs = scorer.needs;
    if (scorer.observer) this.observer = scorer.observer.bind(scorer);
  }

  score(view: LayerView): Float32Array[] {
    return this.scorer.score(view);
  }

  afterCompress(cache: KVCache, config: ModelConfig): void {
    rerotateKeys(cache, config);
  }
}
