/**
 * What KVzip and KVCompose share: both run the model a second time over the cache they compress and score its
 * entries by the attention of that second run (kvpress's KVzipPress re-reads the context behind a "repeat the
 * previous context" prompt; KVComposePress feeds the context again), then roll the cache back. Here:
 * - TokenLogs: the token ids each sequence ran, by position, recorded by the press's observer (a CompressionSession
 *   passes it to every forward; AttentionObserver.tokens), since the session itself is never handed the ids;
 * - reread: the second run, its entries taken back afterwards (KVCache.trim) with the memory they grew;
 * - keepHighest: the highest scores over many heads at once, for selections across layers.
 */
import type { AttentionObserver } from '../backend/backend.js';
import type { KVCache } from '../cache/kv-cache.js';
import { AttendError } from '../errors.js';
import { forwardChunks } from '../generate/chunks.js';
import type { CausalLM, ForwardOptions } from '../models/model.js';

/** Tokens per forward of a re-read (the default prefill chunk): the rows attend causally, so chunking changes nothing. */
export const REREAD_CHUNK = 512;

/** The ids a sequence ran, by position (a rollback's re-run overwrites them). */
class TokenLog {
  ids = new Int32Array(0);
  known = new Uint8Array(0);

  record(ids: ArrayLike<number>, positions: Int32Array): void {
    let top = 0;
    for (const p of positions) top = Math.max(top, p + 1);
    if (top > this.ids.length) {
      const size = Math.max(top, 2 * this.ids.length);
      const grown = new Int32Array(size);
      const known = new Uint8Array(size);
      grown.set(this.ids);
      known.set(this.known);
      this.ids = grown;
      this.known = known;
    }
    positions.forEach((p, i) => {
      this.ids[p] = ids[i];
      this.known[p] = 1;
    });
  }
}

export class TokenLogs {
  private readonly logs = new WeakMap<KVCache, TokenLog>();

  /** An observer that records the ids `cache`'s sequence runs and forwards everything to `next`. */
  observer(cache: KVCache, next: AttentionObserver): AttentionObserver {
    const log = new TokenLog();
    this.logs.set(cache, log);
    const o: AttentionObserver = {
      tokens(ids, positions) {
        log.record(ids, positions);
        next.tokens?.(ids, positions);
      },
    };
    if (next.queries) o.queries = (layer, q, positions) => next.queries!(layer, q, positions);
    if (next.observe) o.observe = (block) => next.observe!(block);
    if (next.accumulate) o.accumulate = next.accumulate;
    return o;
  }

  /** The ids at positions [0, cache.nextPosition): refused when some of them ran without this press's observer. */
  ids(cache: KVCache, press: string): Int32Array {
    const log = this.logs.get(cache);
    const n = cache.nextPosition;
    const missing = log ? Array.from({ length: n }, (_, p) => p).find((p) => !log.known[p]) : 0;
    if (!log || missing !== undefined) {
      throw new AttendError(
        `${press} runs the model again over the tokens it compresses, and the token at position ${missing} ran without its observer: pass the session's observer to every forward of the sequence`,
      );
    }
    return log.ids.slice(0, n);
  }
}

/**
 * Runs `ids` as the next tokens of the cache's sequence (with `opts`: an observer, hooks), calls `score` while their
 * entries are in the cache, then rolls the cache back to where it was. Heads whose memory the re-read grew are
 * compacted to exactly their entries again, so that a head the compression then leaves whole holds no spare room.
 */
export function reread(model: CausalLM, cache: KVCache, ids: ArrayLike<number>, opts: ForwardOptions, score: () => void): void {
  const end = cache.nextPosition;
  const capacities = cache.layers.map((l) => l.heads.map((h) => h.capacity));
  cache.checkpoint();
  try {
    forwardChunks(model, cache, ids, REREAD_CHUNK, { ...opts, lastOnly: true }, () => {});
    score();
  } finally {
    cache.trim(end);
    cache.layers.forEach((layer, l) =>
      layer.heads.forEach((head, h) => {
        if (head.capacity > capacities[l][h]) head.keep(Int32Array.from({ length: head.length }, (_, i) => i));
      }),
    );
  }
}

/**
 * Per head (heads[k] = scores of one head's entries), the ascending indices of its entries among the `total`
 * highest scores of all the heads together; ties go to the earlier head, then the earlier entry.
 */
export function keepHighest(heads: ArrayLike<number>[], total: number): Int32Array[] {
  const offsets = [0];
  for (const s of heads) offsets.push(offsets[offsets.length - 1] + s.length);
  const n = offsets[offsets.length - 1];
  const flat = new Float64Array(n);
  heads.forEach((s, k) => {
    for (let i = 0; i < s.length; i++) flat[offsets[k] + i] = s[i];
  });
  const order = Int32Array.from({ length: n }, (_, i) => i).sort((a, b) => flat[b] - flat[a] || a - b);
  const kept: number[][] = heads.map(() => []);
  let k = 0;
  for (const i of Array.from(order.subarray(0, Math.max(0, Math.min(n, total)))).sort((a, b) => a - b)) {
    while (i >= offsets[k + 1]) k++;
    kept[k].push(i - offsets[k]);
  }
  return kept.map((x) => Int32Array.from(x));
}
