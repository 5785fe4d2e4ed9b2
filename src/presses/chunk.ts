/**
 * Chunk (kvpress ChunkPress; the chunked processing of FINCH, Corallo & Papotti 2024, "FINCH: Prompt-guided
 * Key-Value Cache Compression for Large Language Models", TACL, doi 10.1162/tacl_a_00716).
 * Rule: the sequence is cut into chunks of `chunk-length` positions and each chunk is compressed on its own: the
 * wrapped scorer scores the chunk's entries from the chunk alone (its keys, values, statistics and its own query
 * rows), and the chunk keeps its max(1, ⌊n·(1 − ratio)⌋) best entries (n: the entries it holds), so compression is
 * spread evenly over the context instead of gathering where the scores are high.
 * Options and defaults: `chunk-length` 1024 (kvpress); `scorer`, the press that scores (kvpress requires one and
 * has no default: 'snapkv' here, as AdaKV's).
 * As kvpress:
 * - only the scorer's `score` is used (its own layer budgets or selection are not: kvpress calls `press.score`);
 *   a press that selects across heads or changes the cache itself is refused, as kvpress asserts a ScorerPress;
 * - a window scorer (SnapKV, TOVA) sees the chunk's last queries turned with the RoPE of the prompt's last
 *   positions, as kvpress's `position_embeddings[:, -window:]` turns them (wrapped.ts restrictedView);
 * - the per-chunk counts are kvpress's, so the layer may keep a little less than ⌊length·(1 − ratio)⌋ (floors per
 *   chunk), or more when max(1, ·) keeps one entry of a chunk that would keep none.
 * Attend: chunks are ranges of original positions (at kvpress's single compression after the prefill, the same as
 * its ranges of cache indices); when the cache is compressed again (per prefill chunk, while decoding) each range
 * keeps its share of what is left of it. kvpress refuses attention-reading scorers here (it asserts no attention
 * weights); Attend's statistics travel with the entries, so they work.
 */
import { AttendError } from '../errors.js';
import type { LayerView, Press } from './press.js';
import { topK } from './press.js';
import { checkScorer, everything, restrictedView, scorePart, wrapperNeeds } from './wrapped.js';

export interface ChunkOptions {
  chunkLength: number;
}

export const CHUNK_DEFAULTS: ChunkOptions = { chunkLength: 1024 };

/** Per chunk [lo, hi) of positions and head: the entries (indices) of that head in it. */
interface ChunkPart {
  lo: number;
  hi: number;
  indices: Int32Array[];
}

function chunksOf(view: LayerView, length: number): ChunkPart[] {
  const heads = view.cache.heads;
  let last = 0;
  for (const h of heads) if (h.length > 0) last = Math.max(last, h.positions[h.length - 1]);
  const parts: ChunkPart[] = [];
  for (let lo = 0; lo <= last; lo += length) {
    const hi = lo + length;
    const indices = heads.map((head) => {
      const from = head.visibleUpTo(lo - 1);
      const to = head.visibleUpTo(hi - 1);
      return Int32Array.from({ length: to - from }, (_, i) => from + i);
    });
    if (indices.some((ix) => ix.length > 0)) parts.push({ lo, hi, indices });
  }
  return parts;
}

/** kvpress's entries kept of a chunk of `n`: max(1, int(n·(1 − ratio))). */
export function chunkKeep(n: number, ratio: number): number {
  return Math.max(1, Math.floor(n * (1 - ratio)));
}

export class ChunkPress implements Press {
  readonly name: string;
  readonly needs;
  readonly observer?: Press['observer'];

  constructor(
    readonly scorer: Press,
    readonly options: ChunkOptions = CHUNK_DEFAULTS,
  ) {
    checkScorer('chunk', scorer);
    if (!(Number.isInteger(options.chunkLength) && options.chunkLength >= 1)) {
      throw new AttendError(`chunk: option chunk-length must be a whole number ≥ 1 (positions per chunk), got ${options.chunkLength}`);
    }
    this.name = `chunk(${scorer.name})`;
    this.needs = wrapperNeeds(scorer, true);
    if (scorer.observer) this.observer = scorer.observer.bind(scorer);
  }

  /** Each chunk's entries scored by the scorer from that chunk alone. */
  score(view: LayerView): Float32Array[] {
    const out = view.cache.heads.map((h) => new Float32Array(h.length));
    if (view.cache.heads.every((h) => h.length <= view.keep)) return out;
    for (const part of chunksOf(view, this.options.chunkLength)) {
      const n = Math.max(...part.indices.map((ix) => ix.length));
      const sub = restrictedView(view, this.scorer, {
        indices: part.indices,
        rows: (positions) => rowsIn(positions, part.lo, part.hi),
        keep: chunkKeep(n, view.ratio),
        uniform: n * (1 - view.ratio),
      });
      const scores = scorePart('chunk', this.scorer, sub, `the chunk at positions ${part.lo}…${part.hi - 1}`);
      part.indices.forEach((ix, h) => ix.forEach((e, i) => (out[h][e] = scores[h][i])));
    }
    return out;
  }

  /** The top max(1, ⌊n·(1 − ratio)⌋) of each chunk's n entries, per head. */
  select(view: LayerView, scores: Float32Array[]): Int32Array[] {
    if (view.cache.heads.every((h) => h.length <= view.keep)) return everything(view);
    const kept: number[][] = view.cache.heads.map(() => []);
    for (const part of chunksOf(view, this.options.chunkLength)) {
      part.indices.forEach((ix, h) => {
        if (ix.length === 0) return;
        const local = Float32Array.from(ix, (e) => scores[h][e]);
        for (const i of topK(local, chunkKeep(ix.length, view.ratio))) kept[h].push(ix[i]);
      });
    }
    return kept.map((k) => Int32Array.from(k));
  }
}

/** Indices of the ascending `positions` in [lo, hi). */
function rowsIn(positions: Int32Array, lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < positions.length; r++) if (positions[r] >= lo && positions[r] < hi) out.push(r);
  return out;
}
