/**
 * A copy of a freshly prefilled (uncompressed) cache holding the very memory a prefill of its own would have:
 * KVCache.clone trims every head to its entries, but a cell's kvBytes and the cache's later growth depend on the
 * room each head grew to, so the copy appends the entries in the prefill's chunks and HeadStore grows the same
 * way. Head statistics come along only if named: a run of a press that records none has none.
 */
import { KVCache } from '../cache/kv-cache.js';
import { hostHead } from '../cache/head-store.js';

/** `chunkEnds`: where each prefill chunk ended; `stats`: the head statistics to copy. */
export function copyAsPrefilled(source: KVCache, chunkEnds: number[], stats: string[]): KVCache {
  const copy = new KVCache(source.shape, source.dtype);
  copy.nextPosition = source.nextPosition;
  source.layers.forEach((layer, l) => {
    layer.heads.forEach((head, h) => {
      const target = hostHead(copy.layers[l].heads[h]);
      let start = 0;
      for (const end of chunkEnds) {
        const count = end - start;
        target.append(head.keys(start, count), head.values(start, count), head.positions.subarray(start, end), 0, head.headDim);
        start = end;
      }
      for (const name of stats) target.stat(name).set(head.stat(name));
    });
  });
  return copy;
}
