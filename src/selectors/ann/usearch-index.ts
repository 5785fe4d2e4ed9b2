/**
 * The baseline of RetrievalAttention's comparison: a standard ANN index built on the keys alone, here USearch's HNSW
 * (unum-cloud/USearch, npm `usearch`, an optional dependency: prebuilt binaries for linux-x64/arm64 and macOS in
 * the package, no download or compiler at install). The paper compares its attention-aware index with off-the-shelf
 * indexes (HNSW among them) that, built on keys, must scan far more of them for the same recall, the queries being
 * out of distribution. Loaded lazily on first use, so that Attend runs without it; absent, the selector says so in
 * one line. Parameters are USearch's own defaults (connectivity 16, expansion_add 128, expansion_search 64; the
 * search expands max(expansion_search, k) candidates), metric inner product (USearch's `ip` distance is 1 − q·k),
 * one thread for add and search so that a run is reproducible. The binding does not report how many keys a search
 * compared, so `distances` is NaN.
 */
import { createRequire } from 'node:module';
import { AttendError } from '../../errors.js';
import type { KeyIndex, KeySearch } from './key-index.js';

/** The part of usearch's API used here (declared locally: the package may be absent at type-check time too). */
interface UsearchIndex {
  add(keys: BigUint64Array, vectors: Float32Array, threads?: number): void;
  search(vector: Float32Array, k: number, threads?: number): { keys: BigUint64Array; distances: Float32Array };
  size(): number;
}

interface UsearchModule {
  Index: new (config: {
    dimensions: number;
    metric: unknown;
    quantization: unknown;
    connectivity: number;
    expansion_add: number;
    expansion_search: number;
    multi: boolean;
  }) => UsearchIndex;
  MetricKind: { IP: unknown };
  ScalarKind: { F32: unknown };
}

export const USEARCH_VERSION = '2.25.3';

export const HNSW_DEFAULTS = { connectivity: 16, expansionAdd: 128, expansionSearch: 64 } as const;

let loaded: UsearchModule | undefined;

/** The usearch module, or an AttendError saying it is not installed. */
export function usearch(): UsearchModule {
  if (loaded) return loaded;
  try {
    loaded = createRequire(import.meta.url)('usearch') as UsearchModule;
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
    throw new AttendError(`retrieval-attention: the library baseline (baseline=1) needs the optional package usearch (npm install usearch@${USEARCH_VERSION}): ${why}`);
  }
  return loaded;
}

/** Whether usearch loads here (for tests that skip without it). */
export function usearchAvailable(): boolean {
  try {
    usearch();
    return true;
  } catch {
    return false;
  }
}

export interface HnswOptions {
  connectivity?: number;
  expansionAdd?: number;
  expansionSearch?: number;
}

export class UsearchHnswIndex implements KeyIndex {
  readonly kind = 'hnsw';
  private readonly index: UsearchIndex;
  private count = 0;

  constructor(readonly headDim: number, opts: HnswOptions = {}) {
    const u = usearch();
    this.index = new u.Index({
      dimensions: headDim,
      metric: u.MetricKind.IP,
      quantization: u.ScalarKind.F32,
      connectivity: opts.connectivity ?? HNSW_DEFAULTS.connectivity,
      expansion_add: opts.expansionAdd ?? HNSW_DEFAULTS.expansionAdd,
      expansion_search: opts.expansionSearch ?? HNSW_DEFAULTS.expansionSearch,
      multi: false,
    });
  }

  get size(): number {
    return this.count;
  }

  add(keys: Float32Array, count: number): void {
    if (count === 0) return;
    const ids = new BigUint64Array(count);
    for (let i = 0; i < count; i++) ids[i] = BigInt(this.count + i);
    this.index.add(ids, keys.slice(0, count * this.headDim), 1);
    this.count += count;
  }

  search(query: Float32Array, k: number): KeySearch {
    if (this.count === 0 || k <= 0) return { ids: new Int32Array(0), distances: NaN };
    const found = this.index.search(query.slice(0, this.headDim), Math.min(k, this.count), 1);
    const ids = new Int32Array(found.keys.length);
    for (let i = 0; i < ids.length; i++) ids[i] = Number(found.keys[i]);
    return { ids, distances: NaN };
  }

  bytes(): number {
    return 0;
  }
}
