/**
 * Quest (Tang et al. 2024, "Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference";
 * mit-han-lab/Quest, evaluation/quest_attention.py): keys are grouped in pages of consecutive entries; per page and
 * channel the selector keeps the keys' minimum and maximum. At each decoding step a query bounds its dot product
 * with any key of a page by Σ_i max(q_i·min_i, q_i·max_i), and reads only the pages with the highest bounds.
 *
 * Rules and defaults, as the official evaluation code applies them:
 *  - only decoding steps (one query token) are sparse; prefill chunks run full attention;
 *  - the first two layers always run full attention (`layer_id < 2`);
 *  - pages of `page` = 16 entries (`chunk_size`), counted from the head's first entry; the last page may be partial;
 *  - the step reads k = min(max(3, ⌊budget / page⌋), pages) pages (`token_budget`; at least three pages);
 *  - budget: `token_budget` has no default there (the paper sweeps 256–4096); Attend's default is 1024, the middle
 *    of that sweep — give the budget you mean to compare;
 *  - exact when k covers every page (then the lists hold every entry and the logits equal full attention).
 *  - per *query* head (the official code bounds each query head against its repeated KV head): with grouped-query
 *    attention the query heads of one KV head read different pages, through per-query-head entry lists.
 * Choices where Attend differs, written down: (1) pages are over each head's own entries, so Quest runs on a
 * per-head compressed cache too (select within what a press kept); (2) page bounds are kept per KV head and
 * extended as entries arrive, rebuilt when a press or a rollback changes the head.
 */
import type { HeadMemory } from '../cache/head-memory.js';
import { AttendError } from '../errors.js';
import type { Selector, SelectorView } from './selector.js';

export interface QuestOptions {
  budget?: number;
  page?: number;
  /** Layers from 0 that keep full attention (the official code: 2). */
  denseLayers?: number;
}

/** Per head: channel-wise min and max of each page's keys, for the first `entries` entries of the head. */
interface PageBounds {
  positions: Int32Array;
  entries: number;
  min: Float32Array;
  max: Float32Array;
}

export class QuestSelector implements Selector {
  readonly name = 'quest';
  readonly budget: number;
  readonly page: number;
  readonly denseLayers: number;
  private readonly bounds = new WeakMap<HeadMemory, PageBounds>();

  constructor(opts: QuestOptions = {}) {
    this.budget = opts.budget ?? 1024;
    this.page = opts.page ?? 16;
    this.denseLayers = opts.denseLayers ?? 2;
    for (const [name, v, min] of [['budget', this.budget, 1], ['page', this.page, 1], ['denseLayers', this.denseLayers, 0]] as const) {
      if (!Number.isInteger(v) || v < min) throw new AttendError(`quest: ${name} must be a whole number ≥ ${min}, got ${v}`);
    }
  }

  /** Pages each query head reads. */
  pagesToRead(pages: number): number {
    return Math.min(Math.max(3, Math.floor(this.budget / this.page)), pages);
  }

  select(view: SelectorView): (Int32Array | null)[] | undefined {
    const { layer, config, cache, queries, positions } = view;
    if (positions.length !== 1 || layer < this.denseLayers) return undefined;
    const d = config.headDim;
    const group = config.numHeads / config.numKvHeads;
    const scores = new Float64Array(Math.ceil(Math.max(...cache.heads.map((h) => h.length)) / this.page));
    // One list per query head (indices into its KV head's entries).
    return Array.from({ length: config.numHeads }, (_, h) => {
      const head = cache.heads[Math.floor(h / group)];
      const n = head.length;
      const pages = Math.ceil(n / this.page);
      const k = this.pagesToRead(pages);
      if (k >= pages) return null;
      const b = this.pageBounds(head);
      const q = queries.subarray(h * d, (h + 1) * d);
      for (let p = 0; p < pages; p++) {
        let s = 0;
        for (let i = 0; i < d; i++) s += Math.max(q[i] * b.min[p * d + i], q[i] * b.max[p * d + i]);
        scores[p] = s;
      }
      const chosen = topPages(scores.subarray(0, pages), k).sort((a, c) => a - c);
      const list = new Int32Array(chosen.reduce((m, p) => m + Math.min(n, (p + 1) * this.page) - p * this.page, 0));
      let at = 0;
      for (const p of chosen) for (let i = p * this.page; i < Math.min(n, (p + 1) * this.page); i++) list[at++] = i;
      return list;
    });
  }

  /** The head's page bounds, extended over entries appended since, or rebuilt after the head changed. */
  private pageBounds(head: HeadMemory): PageBounds {
    const d = head.headDim;
    const n = head.length;
    let b = this.bounds.get(head);
    const unchanged = b && b.positions.buffer === head.positions.buffer && b.entries <= n && (b.entries === 0 || head.positions[b.entries - 1] === b.positions[b.entries - 1]);
    if (!b || !unchanged) b = { positions: head.positions, entries: 0, min: new Float32Array(0), max: new Float32Array(0) };
    const pages = Math.ceil(n / this.page);
    if (b.min.length < pages * d) {
      const min = new Float32Array(Math.max(pages, 2 * (b.min.length / d || 1)) * d);
      const max = new Float32Array(min.length);
      min.set(b.min);
      max.set(b.max);
      b.min = min;
      b.max = max;
    }
    // Recompute from the start of the page the last known entry was in (a partial page grows).
    const from = Math.floor(b.entries / this.page) * this.page;
    if (from < n) {
      const keys = head.keys(from, n - from);
      for (let p = from / this.page; p < pages; p++) {
        const lo = p * this.page;
        const hi = Math.min(n, lo + this.page);
        for (let i = 0; i < d; i++) {
          let mn = Infinity;
          let mx = -Infinity;
          for (let e = lo; e < hi; e++) {
            const x = keys[(e - from) * d + i];
            if (x < mn) mn = x;
            if (x > mx) mx = x;
          }
          b.min[p * d + i] = mn;
          b.max[p * d + i] = mx;
        }
      }
    }
    b.entries = n;
    b.positions = head.positions;
    this.bounds.set(head, b);
    return b;
  }
}

/** Indices of the k highest scores (ties to the earlier page). */
function topPages(scores: Float64Array, k: number): number[] {
  return Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a] || a - b).slice(0, k);
}
