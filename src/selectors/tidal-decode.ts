/**
 * TidalDecode (Yang et al. 2024, "TidalDecode: Fast and Accurate LLM Decoding with Position Persistent Sparse
 * Attention"; DerrickYLJ/TidalDecode, src/tidal_build/modify_llama.py, the code behind the paper's accuracy results):
 * a few token-selection layers attend in full, and each picks, per query head, the positions with the highest
 * attention scores; the layers after it, up to the next selection layer, read only those positions ("position
 * persistent" sparse attention): one top-k per selection layer instead of one per layer.
 *
 * Rules and defaults, as the official code applies them:
 *  - only decoding steps (one query token) are sparse; prefill chunks run full attention (`q_len == kv_seq_len`);
 *  - layers below `denseLayers` = 2 run full attention (`sparse_layer_start` = 2 in every script);
 *  - layer `denseLayers` is the first token-selection layer, and `reselectLayer` the token re-selection layer (the
 *    code's `correction_layer`: 13 for Llama-3-8B-Instruct-Gradient-1048k, 32 layers, in every run script); a
 *    selection layer runs full attention itself and keeps its top-k for the layers that follow;
 *  - top-k per *query* head (scores after `repeat_kv`), over every entry the head holds, the step's own token
 *    included; nothing is forced in (no sink tokens, no current token);
 *  - k = min(budget, entries) (`token_budget = min(kv_len, top_k)`); exact when the budget covers the cache;
 *  - budget: 256, the default of the code's `enable_tidal` and the README's demo (the scripts run 128 for needle
 *    retrieval, 4096 for LongBench and perplexity) — give the budget you mean to compare.
 * Depth: the paper gives layers for 32-layer models only. Attend keeps `denseLayers` as given and puts the
 * re-selection layer at the same share of the layers after the first selection layer as 13 is in Llama-3-8B
 * (layers 3–12 reuse the first choice: 10 of the 29 after layer 2), rounded: layer 13 of 32, 5 of 8 (attend-mini),
 * 12 of 28. `reselectLayer` ≤ `denseLayers` means no re-selection. The paper treats the layer as a per-model
 * choice (its needle figure compares TD+L7 … TD+L15), and on attend-mini the scaled 5 is a poor one: its needle copy
 * heads sit in layers 4, 6 and 7, and the entry layer 6 copies ranks ~600–2000th of ~2K in layer 5's scores, so at
 * 256 the needle is lost, while `reselectLayer` 6 answers it (4 of 4 at 4K; tools/probes/tidal-recycled-miss.ts).
 * The rule itself matches the official code on attend-mini (test/selectors/tidal-oracle.test.ts).
 * Not implemented: the paper's KV cache correction (refilling the keys/values of sparsely decoded tokens with a
 * full-attention pass now and then). The official code has none (its `correction_layer` is the re-selection layer
 * above), and a selector only chooses what attention reads; recomputing cached keys/values is the generation
 * loop's (truncate the cache to the first decoded position and prefill the decoded tokens again without a selector).
 * Choices where Attend differs, written down: (1) the choice is kept as original positions, and a later layer reads
 * the entries of its own KV head at those positions, so a per-head compressed cache works too (a position the later
 * layer's head no longer holds is skipped, so it reads fewer); (2) the official kernel path (tidal/) always reads
 * the current token plus the top budget − 1 others; Attend follows the accuracy path above; (3) ties go to the
 * earlier position; (4) the choice belongs to the step that made it (by query position): a later layer of another
 * step with no choice of its own runs full attention. One selector serves one sequence at a time.
 */
import type { HeadMemory } from '../cache/head-memory.js';
import { AttendError } from '../errors.js';
import type { Selector, SelectorView } from './selector.js';

export interface TidalDecodeOptions {
  /** Positions each query head reads in the sparse layers (the official `top_k`). */
  budget?: number;
  /** Layers from 0 at full attention; the next one is the first token-selection layer (the code: 2). */
  denseLayers?: number;
  /** The token re-selection layer (the code's `correction_layer`); default scaled by depth (see above). */
  reselectLayer?: number;
}

export class TidalDecodeSelector implements Selector {
  readonly name = 'tidal-decode';
  readonly budget: number;
  readonly denseLayers: number;
  private readonly reselect: number | undefined;
  /** The last selection: the step's query position and, per query head, the chosen positions (ascending; null: all). */
  private chosen: { step: number; positions: (Int32Array | null)[] } | undefined;

  constructor(opts: TidalDecodeOptions = {}) {
    this.budget = opts.budget ?? 256;
    this.denseLayers = opts.denseLayers ?? 2;
    this.reselect = opts.reselectLayer;
    for (const [name, v, min] of [['budget', this.budget, 1], ['denseLayers', this.denseLayers, 0], ['reselectLayer', this.reselect ?? 0, 0]] as const) {
      if (!Number.isInteger(v) || v < min) throw new AttendError(`tidal-decode: ${name} must be a whole number ≥ ${min}, got ${v}`);
    }
  }

  /** The re-selection layer for a model of `numLayers` layers. */
  reselectLayer(numLayers: number): number {
    const after = numLayers - this.denseLayers - 1;
    return this.reselect ?? this.denseLayers + 1 + Math.round((10 * after) / 29);
  }

  select(view: SelectorView): (Int32Array | null)[] | undefined {
    const { layer, config, cache, positions } = view;
    if (positions.length !== 1 || layer < this.denseLayers) return undefined;
    if (layer === this.denseLayers || layer === this.reselectLayer(config.numLayers)) {
      this.chosen = { step: positions[0], positions: this.choose(view) };
      return undefined; // a selection layer attends in full
    }
    if (this.chosen?.step !== positions[0]) return undefined;
    const group = config.numHeads / config.numKvHeads;
    return this.chosen.positions.map((chosen, h) => chosen && entriesAt(cache.heads[Math.floor(h / group)], chosen));
  }

  /** Per query head, the positions of its `budget` highest-scoring entries (null when that is every entry). */
  private choose({ config, cache, queries }: SelectorView): (Int32Array | null)[] {
    const { headDim: d, numHeads } = config;
    const group = numHeads / config.numKvHeads;
    const keysOf: Float32Array[] = []; // per KV head, read once for its query heads
    return Array.from({ length: numHeads }, (_, h) => {
      const g = Math.floor(h / group);
      const head = cache.heads[g];
      const n = head.length;
      if (this.budget >= n) return null;
      // The score's 1/√d and any softcap keep the order, so the plain product ranks the same.
      const keys = (keysOf[g] ??= head.keys(0, n));
      const q = queries.subarray(h * d, (h + 1) * d);
      const scores = new Float64Array(n);
      for (let e = 0; e < n; e++) {
        let s = 0;
        for (let i = 0; i < d; i++) s += q[i] * keys[e * d + i];
        scores[e] = s;
      }
      const top = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a] || a - b).slice(0, this.budget);
      return Int32Array.from(top.sort((a, b) => a - b), (e) => head.positions[e]);
    });
  }
}

/** Indices of the head's entries whose positions are in `chosen` (both ascending). */
function entriesAt(head: HeadMemory, chosen: Int32Array): Int32Array {
  const out: number[] = [];
  for (let e = 0, c = 0; e < head.length && c < chosen.length; ) {
    const p = head.positions[e];
    if (p === chosen[c]) out.push(e);
    if (p <= chosen[c]) e++;
    if (p >= chosen[c]) c++;
  }
  return Int32Array.from(out);
}
