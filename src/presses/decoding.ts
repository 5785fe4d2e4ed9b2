/**
 * Decoding-time compression as kvpress's DecodingPress does it (kvpress/presses/decoding_press.py; kvpress's own
 * method, no paper of its own: "generation presses", experimental in kvpress).
 *
 * Rule: the prompt is not compressed. While decoding, every `compression-interval` steps each layer is brought back
 * to exactly `target-size` entries per head by a scorer press: the scorer keeps its top int(k_len·(1 − ratio))
 * entries, with `ratio` found by kvpress's binary search so that this is `target-size` (targetCompressionRatio:
 * the search itself is replayed, so a rare failed search keeps what kvpress's keeps); a layer already within the
 * target is left as it is. The scorer reads the queries of the decoding steps since the layer's last compression
 * (kvpress buffers their hidden states and clears the buffer at each compression), at most
 * `hidden-states-buffer-size` + 1 of them (its buffer keeps that many forwards besides the current one).
 *
 * Defaults, kvpress's: compression_interval 512, target_size 2048, hidden_states_buffer_size 256. kvpress's
 * base_press has no default; Attend's `scorer` defaults to knorm, the scorer kvpress's generation README uses and
 * names as fit for decoding (it reads keys only).
 *
 * Relation to Attend's runner (runner.ts): CompressionPlan.decode { every } already brings every layer back to a
 * target every `every` steps, and kvpress's per-layer step count is the same count (every layer sees every step),
 * so this press reuses it: its registry entry's schedule is { every: compression-interval }, and the press only
 * supplies what differs from a budgeted press, namely no prefill compression, its own target (so it takes no
 * --ratio/--budget, Press.sizesItself), and the scorer's view of the buffered queries.
 *
 * As kvpress, also where it is odd:
 * - The buffered queries are turned with the current step's RoPE, all of them: kvpress's scorers rebuild queries
 *   from the buffered hidden states with the position embeddings of the forward that triggers the compression,
 *   which are the current token's alone. So each buffered query is turned on from its own position to the latest
 *   query's (causal masking still by the original positions). Scorers reading one query (TOVA) or none (knorm)
 *   are unaffected.
 * Differences (Attend's structure):
 * - A step is a decoded token (afterDecodeStep). kvpress's pipeline feeds the question as one more forward, which
 *   counts as a step and buffers all its tokens; Attend adds a question without compression steps (its queries are
 *   still buffered, as recorded positions after the prompt). The buffer is capped at `hidden-states-buffer-size` + 1
 *   queries, not forwards. kvpress also compresses when one forward has ≥ target-size tokens; Attend decodes one.
 * - A scorer that reads a window of w queries needs w buffered (kvpress's SnapKV asserts more than w): an error.
 * - k_len is the layer's longest head (heads differ only under a head-adaptive scorer, which kvpress masks).
 */
import { check } from '../errors.js';
import type { KVCache } from '../cache/kv-cache.js';
import type { AttentionObserver } from '../backend/backend.js';
import { type LayerView, type Press, type PressNeeds, type QueryWindow, topK } from './press.js';
import { rotate } from './rotary.js';

export interface DecodingOptions {
  /** Decoding steps between compressions (kvpress compression_interval). */
  interval: number;
  /** Entries per head a compression leaves (kvpress target_size). */
  targetSize: number;
  /** Forwards kvpress keeps buffered besides the current one (kvpress hidden_states_buffer_size). */
  bufferSize: number;
}

export const DECODING_DEFAULTS: DecodingOptions = { interval: 512, targetSize: 2048, bufferSize: 256 };

/** Head statistic: 1 for the entries the layer held at its last compression call (the prefill's end counts). */
export const DECODING_OLD = 'decoding-old';

/**
 * kvpress's DecodingPress._find_target_compression_ratio, step for step: the ratio whose int(length·(1 − ratio)) is
 * `target` (0 when the length is within it), by at most 20 halvings from 1 − target/length.
 */
export function targetCompressionRatio(length: number, target: number): number {
  if (length <= target) return 0;
  let ratio = 1 - target / length;
  let low = 0;
  let high = 1;
  for (let i = 0; i < 20; i++) {
    const kept = Math.trunc(length * (1 - ratio));
    if (kept === target) break;
    if (kept > target) {
      low = ratio;
      ratio = (ratio + high) / 2;
    } else {
      high = ratio;
      ratio = (low + ratio) / 2;
    }
  }
  return ratio;
}

export class DecodingPress implements Press {
  readonly name: string;
  readonly needs: PressNeeds;
  readonly sizesItself = true;
  readonly observer?: (cache: KVCache, next: AttentionObserver) => AttentionObserver;
  /** The scorer's view of the last layer view asked about (score and select get the same view object). */
  private memo?: { view: LayerView; inner: LayerView | undefined };

  /** `pressName` names the press in errors (CompressionRatioDecodingPress builds on this class). */
  constructor(
    readonly scorer: Press,
    readonly options: DecodingOptions = DECODING_DEFAULTS,
    readonly pressName = 'decoding',
  ) {
    const whole = (key: keyof DecodingOptions, min: number, what: string) =>
      check(Number.isInteger(options[key]) && options[key] >= min, `${pressName}: ${what} must be a whole number ≥ ${min}, got ${options[key]}`);
    whole('interval', 1, 'compression-interval (decoding steps between compressions)');
    whole('targetSize', 1, 'target-size (entries per head after a compression)');
    whole('bufferSize', 0, 'hidden-states-buffer-size (buffered decoding steps)');
    check(!scorer.sizesItself, `${pressName}: the scorer must be a press that scores entries for a budget; ${scorer.name} sets its own size`);
    this.name = `${pressName}(${scorer.name})`;
    const window = scorer.needs.queryWindow ?? 0;
    this.needs = { ...scorer.needs, queryWindow: window > 0 ? Math.min(window, options.bufferSize + 1) : undefined };
    if (scorer.observer) this.observer = (cache, next) => scorer.observer!(cache, next);
  }

  /** Entries per head a decoding compression brings the layer to (kvpress's _resolve_target_size). */
  target(_view: LayerView): number {
    return this.options.targetSize;
  }

  score(view: LayerView): Float32Array[] {
    const inner = this.scorerView(view);
    return inner ? this.scorer.score(inner) : view.cache.heads.map((h) => new Float32Array(h.length));
  }

  select(view: LayerView, scores: Float32Array[]): Int32Array[] {
    const inner = this.scorerView(view);
    this.memo = undefined;
    const kept = inner
      ? this.scorer.select
        ? this.scorer.select(inner, scores)
        : scores.map((s) => topK(s, inner.keep))
      : view.cache.heads.map((h) => Int32Array.from({ length: h.length }, (_, i) => i));
    // The buffer restarts here (kvpress clears it at every compression step, also one that removed nothing).
    for (const head of view.cache.heads) head.stat(DECODING_OLD).fill(1);
    return kept;
  }

  /**
   * The view the scorer compresses with: the target as `keep`, kvpress's searched ratio as `ratio`, the buffered
   * queries; undefined in the prefill and when the layer is within the target (kvpress: ratio 0, nothing scored).
   */
  private scorerView(view: LayerView): LayerView | undefined {
    if (this.memo?.view === view) return this.memo.inner;
    let inner: LayerView | undefined;
    if (view.decoding) {
      const length = view.cache.maxLength();
      const ratio = targetCompressionRatio(length, this.target(view));
      if (ratio > 0) {
        const keep = Math.trunc(length * (1 - ratio));
        inner = { ...view, keep, ratio, uniform: keep, queries: this.buffered(view) };
      }
    }
    this.memo = { view, inner };
    return inner;
  }

  /** The queries of the steps since the layer's last compression, at most bufferSize + 1, at the current RoPE. */
  private buffered(view: LayerView): QueryWindow | undefined {
    const q = view.queries;
    const window = this.scorer.needs.queryWindow ?? 0;
    if (!q || window <= 0) return undefined;
    const { config } = view;
    const width = config.numHeads * config.headDim;
    // The buffer starts at the first entry appended since the last compression call (none marked old).
    let since = Infinity;
    for (const head of view.cache.heads) {
      const old = head.stat(DECODING_OLD);
      let i = head.length;
      while (i > 0 && old[i - 1] === 0) i--;
      if (i < head.length) since = Math.min(since, head.positions[i]);
    }
    let start = q.positions.findIndex((p) => p >= since);
    if (start < 0) start = q.positions.length;
    start = Math.max(start, q.positions.length - Math.min(window, this.options.bufferSize + 1));
    const rows = q.positions.length - start;
    check(window === Infinity || rows >= window, () =>
      `${this.pressName}: the scorer ${this.scorer.name} reads the last ${window} queries, but only ${rows} decoding steps are buffered ` +
      `(compression-interval ${this.options.interval}, hidden-states-buffer-size ${this.options.bufferSize})`);
    const positions = q.positions.slice(start);
    const data = q.data.slice(start * width, q.positions.length * width);
    if (rows > 0) {
      // Every row at the latest query's position (see the header): R(last)·R(p)⁻¹ = R(last − p), one turn each,
      // none for the latest row itself.
      const last = positions[rows - 1];
      rotate(config, data, config.numHeads, positions.map((p) => last - p), false, last + 1);
    }
    return { data, positions };
  }
}
