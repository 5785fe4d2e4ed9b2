/**
 * What the wrapper presses (chunk, chunkkv, block, criticalkv, critical-adakv, per-layer-compression, composed)
 * share: checking the press they wrap, passing its needs through, and views of a layer restricted to some of its
 * entries — kvpress's wrappers hand their ScorerPress a slice of the keys, values and hidden states, and here the
 * wrapped press sees a LayerView whose heads hold only those entries (copies: the real cache is untouched until
 * the runner keeps the final selection).
 */
import { LayerCache } from '../cache/kv-cache.js';
import { AttendError } from '../errors.js';
import type { LayerView, Press, PressNeeds, QueryWindow } from './press.js';
import { topK } from './press.js';
import { rotate, unrotated } from './rotary.js';

/** torch.finfo(torch.float32).max: what kvpress writes into scores that must be kept. */
export const F32_MAX = 3.4028234663852886e38;

/**
 * Refuses, in one line, a press that a kvpress wrapper of ScorerPresses cannot take (kvpress asserts
 * `isinstance(press, ScorerPress)`): one that selects across heads itself, or that changes the cache itself.
 */
export function checkScorer(wrapper: string, scorer: Press): void {
  const own = scorer.select ? 'selects its own entries across heads' : scorer.beforeKeep || scorer.afterCompress ? 'changes the cache itself' : '';
  if (own) throw new AttendError(`${wrapper}: scorer ${scorer.name} ${own}; ${wrapper} wraps a press that scores entries (kvpress: a ScorerPress)`);
}

/**
 * The needs of a wrapper around `scorer`: the scorer's own, except that a wrapper that scores parts of the sequence
 * (`parts`: chunk, block) needs every query, since each part is scored with the scorer's window of its own last
 * queries (kvpress slices the prompt's hidden states).
 */
export function wrapperNeeds(scorer: Press, parts: boolean): PressNeeds {
  const window = scorer.needs.queryWindow ?? 0;
  return parts && window > 0 ? { ...scorer.needs, queryWindow: Infinity } : scorer.needs;
}

/** The last `n` rows of a query window (all of them for n = Infinity; none for n ≤ 0). */
export function lastRows(queries: QueryWindow | undefined, n: number, width: number): QueryWindow | undefined {
  if (!queries || !(n > 0)) return undefined;
  const rows = queries.positions.length;
  if (n >= rows) return queries;
  return { data: queries.data.subarray((rows - n) * width), positions: queries.positions.subarray(rows - n) };
}

/** A copy of `cache` whose head h holds only its entries at `indices[h]` (ascending, unique). */
export function subsetLayer(cache: LayerCache, indices: ArrayLike<number>[]): LayerCache {
  return new LayerCache(
    cache.heads.map((head, h) => {
      const copy = head.clone();
      if (indices[h].length !== head.length) copy.keep(indices[h]);
      return copy;
    }),
  );
}

export interface Restriction {
  /** Per head, the entries (ascending indices into the view's heads) the restricted view holds. */
  indices: Int32Array[];
  /** The query rows of the part: those whose positions are in this ascending list (the part's tokens). */
  rows: (positions: Int32Array) => number[];
  keep: number;
  uniform: number;
}

/**
 * The view of a part of the layer that kvpress's chunk and block wrappers hand their scorer: the part's entries,
 * and its own query rows, the last `scorer.needs.queryWindow` of them. kvpress takes a window scorer's queries
 * from the last rows of the hidden states it is given, and turns them with the RoPE of the last positions of the
 * whole forward (`position_embeddings[:, -window:]`), whichever part of the prompt those rows come from. So for a
 * scorer with a finite window the rows are re-rotated here the same way: the k-th of N rows to position
 * seen − N + k (kept as recorded for the last part). Their `positions` stay the original ones, so causality (and
 * where the window starts) is by original position, as kvpress's mask of the window's own keys is. A scorer
 * reading every query (queryWindow Infinity) gets the part's rows as recorded (kvpress's handling of RoPE varies
 * from one such press to another and is not reproduced).
 */
export function restrictedView(view: LayerView, scorer: Press, part: Restriction): LayerView {
  const { config } = view;
  const width = config.numHeads * config.headDim;
  const cache = subsetLayer(view.cache, part.indices);
  const window = scorer.needs.queryWindow ?? 0;
  let queries: QueryWindow | undefined;
  if (window > 0 && view.queries) {
    const picked = part.rows(view.queries.positions);
    const n = Math.min(window, picked.length);
    const chosen = picked.slice(picked.length - n);
    const positions = Int32Array.from(chosen, (r) => view.queries!.positions[r]);
    let data: Float32Array = new Float32Array(n * width);
    chosen.forEach((r, k) => data.set(view.queries!.data.subarray(r * width, (r + 1) * width), k * width));
    const target = Int32Array.from({ length: n }, (_, k) => view.seen - n + k);
    if (Number.isFinite(window) && positions.some((p, k) => p !== target[k])) {
      data = unrotated(config, data, config.numHeads, positions, view.seen);
      rotate(config, data, config.numHeads, target, false, view.seen);
    }
    queries = { data, positions };
  }
  return { ...view, cache, keep: part.keep, uniform: part.uniform, queries };
}

/** The scorer's scores of a restricted view; its one-line errors say which part of the layer they concern. */
export function scorePart(wrapper: string, scorer: Press, view: LayerView, what: string): Float32Array[] {
  try {
    return scorer.score(view);
  } catch (e) {
    if (e instanceof AttendError) throw new AttendError(`${wrapper}: ${what}: ${e.message}`);
    throw e;
  }
}

/**
 * What a press keeps of `view` when it runs alone (the runner's rule): its own per-layer budget if it shapes one,
 * then its own selection across heads or the top entries of each head. Returns the entries per head. `scored`:
 * the press's scores of this view, if they were computed already (with the keep its layer budget gives).
 */
export function ownSelection(press: Press, view: LayerView, scored?: Float32Array[]): Int32Array[] {
  const length = view.cache.maxLength();
  const keep = Math.min(length, press.layerKeep?.(view) ?? view.keep);
  const v = { ...view, keep };
  const scores = scored ?? press.score(v);
  return press.select ? press.select(v, scores) : scores.map((s) => topK(s, keep));
}

/** Every entry of every head (a selection that drops nothing). */
export function everything(view: LayerView): Int32Array[] {
  return view.cache.heads.map((h) => Int32Array.from({ length: h.length }, (_, i) => i));
}

/** Parses a comma-separated list of numbers (the 'numbers' option kind); an empty text is an empty list. */
export function numberList(text: string | number): number[] {
  const s = String(text).trim();
  if (s === '') return [];
  return s.split(',').map((x) => Number(x.trim()));
}
