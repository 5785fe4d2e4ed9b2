/**
 * What KVzap and Fast KVzip share: a trained part scores each token from its own hidden state only (kvpress hands
 * their `score` the forward's `hidden_states`, the normed input of the attention layer), so the score of every KV
 * pair can be computed the moment its token runs. TokenScores records them: the press's observer reads each layer's
 * attention input (AttentionObserver.attentionInput) as the model runs, computes the token's score for every KV head
 * of the layer, and files it by the token's original position; a compression later reads the score of each entry a
 * head holds. No hidden state is kept (per layer a table of positions × KV heads floats), so per-chunk prefill,
 * decoding and wrappers (DMS) see the scores of every token that ever ran, whenever they compress.
 *
 * Positions are original ones: after a renumbering (key rerotation) the observer adds the positions taken away and
 * entries of the session's own cache are read back with KVCache.originalPositions; a copy of a layer (DMS hands its
 * scorer one) is read by its positions, which are original unless the cache was renumbered (refused then).
 */
import type { AttentionObserver } from '../backend/backend.js';
import type { KVCache, LayerCache } from '../cache/kv-cache.js';
import { AttendError } from '../errors.js';
import type { LayerView } from './press.js';

/** Scores of `rows` tokens of `layer` from their hidden states h [rows × hidden]: [rows × kvHeads], row by row. */
export type RowScorer = (layer: number, h: Float32Array, rows: number) => Float32Array;

/** One layer's scores by original position. */
class LayerTable {
  scores = new Float32Array(0);
  known = new Uint8Array(0);

  constructor(readonly heads: number) {}

  record(positions: ArrayLike<number>, offset: number, rows: Float32Array): void {
    let top = 0;
    for (let i = 0; i < positions.length; i++) top = Math.max(top, positions[i] + offset + 1);
    if (top > this.known.length) {
      const size = Math.max(top, 2 * this.known.length);
      const scores = new Float32Array(size * this.heads);
      const known = new Uint8Array(size);
      scores.set(this.scores);
      known.set(this.known);
      this.scores = scores;
      this.known = known;
    }
    for (let i = 0; i < positions.length; i++) {
      const p = positions[i] + offset;
      this.scores.set(rows.subarray(i * this.heads, (i + 1) * this.heads), p * this.heads);
      this.known[p] = 1;
    }
  }
}

interface Recorded {
  cache: KVCache;
  layers: LayerTable[];
}

export class TokenScores {
  /** By the session's layer caches, and the last cache observed (for copies of a layer). */
  private readonly byLayer = new WeakMap<LayerCache, Recorded>();
  private last?: Recorded;

  constructor(
    /** The press, for messages. */
    private readonly press: string,
    private readonly scoreRows: RowScorer,
  ) {}

  /** An observer that scores every token `cache`'s sequence runs and forwards everything to `next`. */
  observer(cache: KVCache, next: AttentionObserver): AttentionObserver {
    const recorded: Recorded = { cache, layers: cache.layers.map((l) => new LayerTable(l.heads.length)) };
    for (const layer of cache.layers) this.byLayer.set(layer, recorded);
    this.last = recorded;
    const o: AttentionObserver = {
      attentionInput: (layer, h, positions) => {
        next.attentionInput?.(layer, h, positions);
        const table = recorded.layers[layer];
        if (!table || positions.length === 0) return;
        // Positions a renumbering took away come back as original positions.
        const away = cache.seenTokens - cache.nextPosition;
        table.record(positions, away, this.scoreRows(layer, h, positions.length));
      },
    };
    if (next.tokens) o.tokens = (ids, positions) => next.tokens!(ids, positions);
    if (next.queries) o.queries = (layer, q, positions) => next.queries!(layer, q, positions);
    if (next.observe) o.observe = (block) => next.observe!(block);
    if (next.accumulate) o.accumulate = next.accumulate;
    return o;
  }

  /** Per head of the view's layer, the recorded score of each entry it holds. */
  scores(view: LayerView): Float32Array[] {
    const own = this.byLayer.get(view.cache);
    const recorded = own ?? this.last;
    const table = recorded?.layers[view.layer];
    if (!recorded || !table) {
      throw new AttendError(`${this.press} scores tokens from their hidden states as they run: it needs the session's observer on every forward of the sequence (it saw none)`);
    }
    const renumbered = recorded.cache.seenTokens !== recorded.cache.nextPosition;
    if (!own && renumbered) throw new AttendError(`${this.press}: cannot score a copy of a layer of a renumbered cache (its positions are not the original ones)`);
    return view.cache.heads.map((head, h) => {
      const positions = own && renumbered ? recorded.cache.originalPositions(view.layer, h) : head.positions;
      const out = new Float32Array(head.length);
      for (let i = 0; i < head.length; i++) {
        const p = positions[i];
        if (!table.known[p]) {
          throw new AttendError(`${this.press}: the token at position ${p} ran without the press's observer (pass the session's observer to every forward of the sequence)`);
        }
        out[i] = table.scores[p * table.heads + h];
      }
      return out;
    });
  }
}
