/**
 * CaM, cache merging (Zhang et al., "CaM: Cache Merging for Memory-efficient LLMs Inference", ICML 2024,
 * openreview.net/forum?id=LCTmppB165), as kvpress's CAMPress does it (kvpress/presses/cam_press.py, a
 * DecodingPress): the prompt is not compressed; while decoding, an evicted entry's value is folded into the kept
 * entries that follow it, with a probability set by its accumulated attention, before the entry is removed.
 *
 * Rule (kvpress's, step for step):
 * - Every forward after the prompt's (a decoding step) each layer adds, to each entry of each KV head, the attention
 *   the forward's last token pays it (averaged over the query heads of the group): A, the running attention sum,
 *   kept from the first decoding step on (the prompt's own attention is not in it) and pruned with the entries.
 * - A layer is compressed when at least `compression-interval` steps came since its last compression and it holds
 *   more than `target-size` entries (the count is not restarted while the layer is within the target, so a layer
 *   that passes the target later is compressed at once), or when a step since then ran at least `target-size`
 *   tokens (so at every step when `target-size` is 1).
 * - The scorer (kvpress's base_press) scores every entry as DecodingPress's does (kvpress's ratio search for the
 *   target, the queries buffered since the last compression turned with the current RoPE: decoding.ts); its scores
 *   are averaged over the KV heads, and every head keeps the same `target-size` entries, the highest means.
 * - Among the evicted entries, the k with the highest mean scores merge (ties: the later entry first), k the steps
 *   since the last compression. Each merges into the `merge-budget` kept entries that follow it (fewer near the end:
 *   b of them, b may be 0), with probability p = clamp(A_e / mean(A over those b), 0, 1) per head (0/0 → 0, x/0 → 1),
 *   drawn per head and evicted entry (kvpress's torch.bernoulli): if it merges, v_e / b is added to each of the b
 *   values (in f32, evicted entries in position order, as kvpress's scatter_add). Keys are unchanged.
 *
 * Defaults, kvpress's: compression_interval 512, target_size 2048, hidden_states_buffer_size 256, merge_budget 32.
 * kvpress's base_press has no default; Attend's `scorer` defaults to knorm, as for DecodingPress (it reads keys only).
 * kvpress versus the paper, followed as kvpress: the paper evicts and merges one token per step by accumulated
 * attention; kvpress evicts in bulk every compression_interval steps (1 gives the per-step algorithm) by a scorer.
 *
 * The merge draws are random. `seed` (default 0): Attend's generator (xoshiro128**), one uniform u in [0, 1) per
 * draw, merging when u < p. `draws=PATH`: the uniforms from a file instead, to reproduce a kvpress run exactly
 * (tools/fixtures/make_press_oracle.py records, for each torch.bernoulli call, the torch.rand draws that reproduce
 * its outcomes from the same generator state). Layout: little-endian f32, no header, one block per layer
 * compression in call order (each step's compressed layers 0, 1, …), each block H_kv × (merging entries) values,
 * KV head major, entries in position order; running past the end of the file is an error.
 *
 * Differences (Attend's structure):
 * - The compression schedule is the press's own (the registry runs it with decode { every: 1 }; the runner offers
 *   each decoding step and the press decides). Steps are counted as kvpress's are, one per forward after the
 *   prompt's, so a question added in one forward after a query-agnostic prefill (kvpress's pipeline does the same)
 *   is one step, with its last token's attention. kvpress can compress within that forward (its hook runs on every
 *   forward); the runner compresses after decoding steps only, so such a compression comes with the next token.
 * - The scorer's buffered queries are DecodingPress's, with its differences (decoding.ts: at most
 *   hidden-states-buffer-size + 1 queries rather than forwards). A prefill compressed per chunk offers every chunk to
 *   the press: nothing is compressed, and the sums and the count start again after each, so decoding starts clean.
 * - kvpress takes the evicted set and the kept set from two separate top-k calls; here the evicted entries are the
 *   ones not kept (Attend's top-k, ties to the earlier entry), so they differ only where mean scores tie at the cut.
 * - A scorer that selects its own entries, sets its own size or changes the cache is refused (kvpress asserts a
 *   ScorerPress or AdaKVPress; AdaKVPress has no score, which CAMPress calls, so it fails there).
 */
import type { AttentionBlock, AttentionObserver } from '../backend/backend.js';
import type { KVCache } from '../cache/kv-cache.js';
import { AttendError, check } from '../errors.js';
import { readRecordedDraws } from './recorded-draws.js';
import { Random } from '../generate/random.js';
import { DECODING_OLD, DecodingPress } from './decoding.js';
import { checkScorer } from './key-rerotation.js';
import { type LayerView, type Press, type PressNeeds, topK } from './press.js';

export interface CamOptions {
  /** Tokens between compressions (kvpress compression_interval). */
  interval: number;
  /** Entries per head a compression leaves (kvpress target_size). */
  targetSize: number;
  /** Forwards kvpress keeps buffered besides the current one (kvpress hidden_states_buffer_size). */
  bufferSize: number;
  /** Kept entries after an evicted one that its value is spread over (kvpress merge_budget). */
  mergeBudget: number;
  /** Seed of Attend's uniform draws for the merge decisions (when no draws file is given). */
  seed: number;
  /** A file of recorded uniform draws (see the header); '' for none. */
  draws: string;
}

export const CAM_DEFAULTS: CamOptions = { interval: 512, targetSize: 2048, bufferSize: 256, mergeBudget: 32, seed: 0, draws: '' };

/** Head statistic: the running sum of the attention each entry received from the decoding steps (kvpress's A). */
export const CAM_ATTENTION = 'cam-attention';

const f = Math.fround;

/** The uniform draws behind the merge decisions: from a seeded generator or from a file (see the header). */
export class UniformDraws {
  private readonly random: Random;
  private readonly file?: Float32Array;
  private offset = 0;
  private calls = 0;

  constructor(
    seed: number,
    private readonly path: string,
    private readonly who: string,
  ) {
    this.random = new Random(seed);
    if (path === '') return;
    this.file = readRecordedDraws(path, who, 'draws');
  }

  /** The next call's `count` uniforms in [0, 1). */
  next(count: number): Float64Array {
    this.calls++;
    if (this.file) {
      if (this.offset + count > this.file.length) {
        throw new AttendError(
          `${this.who}: the draws file ${this.path} holds ${this.file.length} values; compression ${this.calls} needs ${count}, ${this.file.length - this.offset} are left`,
        );
      }
      const out = Float64Array.from(this.file.subarray(this.offset, this.offset + count));
      this.offset += count;
      return out;
    }
    return Float64Array.from({ length: count }, () => this.random.next());
  }
}

/**
 * kvpress's merge candidates: of the entries not in `kept` (ascending), the `k` with the highest `mean` scores,
 * ties to the later entry; returned ascending.
 */
export function mergeCandidates(mean: Float32Array, kept: Int32Array, k: number): Int32Array {
  const isKept = new Uint8Array(mean.length);
  for (const i of kept) isKept[i] = 1;
  const evicted: number[] = [];
  for (let i = 0; i < mean.length; i++) if (!isKept[i]) evicted.push(i);
  evicted.sort((a, b) => mean[b] - mean[a] || b - a);
  return Int32Array.from(evicted.slice(0, Math.max(0, k))).sort();
}

/** For each merging entry, the first kept entry after it (an index into `kept`: torch.searchsorted, right). */
export function windowStarts(kept: Int32Array, merges: Int32Array): Int32Array {
  return merges.map((m) => {
    let lo = 0;
    let hi = kept.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (kept[mid] <= m) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  });
}

/**
 * kvpress's merge for one KV head: `values` [length × d] (f32), `attention` its running sums (length), `kept`
 * ascending, `merges` the merging entries ascending, `uniforms` one draw per merging entry. Returns the kept entries
 * whose values changed and their new values, or null when none did.
 */
export function camMergeHead(
  values: Float32Array,
  d: number,
  attention: Float32Array,
  kept: Int32Array,
  merges: Int32Array,
  mergeBudget: number,
  uniforms: ArrayLike<number>,
): { indices: Int32Array; values: Float32Array } | null {
  const starts = windowStarts(kept, merges);
  const out = new Map<number, Float32Array>();
  merges.forEach((m, i) => {
    const start = starts[i];
    const b = Math.max(0, Math.min(mergeBudget, kept.length - start));
    let sum = 0;
    for (let j = 0; j < b; j++) sum += attention[kept[start + j]];
    const meanAttention = f(f(sum) / Math.max(b, 1));
    let p = f(attention[m] / meanAttention);
    if (Number.isNaN(p)) p = 0;
    else if (!Number.isFinite(p)) p = 1;
    p = Math.min(1, Math.max(0, p));
    const merged = uniforms[i] < p;
    if (!merged || b === 0) return;
    const scale = f(1 / b);
    for (let j = 0; j < b; j++) {
      const t = kept[start + j];
      let row = out.get(t);
      if (!row) {
        row = values.slice(t * d, (t + 1) * d);
        out.set(t, row);
      }
      for (let c = 0; c < d; c++) row[c] = f(row[c] + f(values[m * d + c] * scale));
    }
  });
  if (out.size === 0) return null;
  const indices = Int32Array.from(out.keys()).sort();
  const rows = new Float32Array(indices.length * d);
  indices.forEach((t, i) => rows.set(out.get(t)!, i * d));
  return { indices, values: rows };
}

/** One layer's compression, decided in score and applied in select and beforeKeep. */
interface Plan {
  view: LayerView;
  /** Undefined when the layer is not compressed now. */
  mean?: Float32Array;
  kept?: Int32Array;
  merges?: Int32Array;
  /** Whether the compression is due (its count restarts even when nothing is evicted). */
  due: boolean;
}

export class CamPress implements Press {
  readonly name: string;
  readonly needs: PressNeeds;
  readonly sizesItself = true;
  private readonly decoding: DecodingPress;
  private readonly draws: UniformDraws;
  /** Query rows at or after this position are decoding steps (set at the prefill's compression). */
  private recordFrom = Infinity;
  /** Query heads per KV head (from the views; known before any decoding row is recorded). */
  private group = 1;
  /** Per layer: decoding steps (forwards) since its last compression, the most tokens one of them ran. */
  private readonly steps: number[] = [];
  private readonly widest: number[] = [];
  /** Per layer, the position of the current forward's last token when it is a decoding step (else −1). */
  private readonly lastRow: number[] = [];
  private plan?: Plan;

  constructor(
    readonly scorer: Press,
    readonly options: CamOptions = CAM_DEFAULTS,
  ) {
    checkScorer('cam', scorer);
    check(Number.isInteger(options.mergeBudget) && options.mergeBudget >= 1,
      `cam: merge-budget must be a whole number ≥ 1 (kept entries an evicted value is spread over), got ${options.mergeBudget}`);
    this.decoding = new DecodingPress(scorer, { interval: options.interval, targetSize: options.targetSize, bufferSize: options.bufferSize }, 'cam');
    this.name = `cam(${scorer.name})`;
    this.needs = this.decoding.needs;
    this.draws = new UniformDraws(options.seed, options.draws, 'cam');
  }

  /** Records the running attention sums for `cache`, forwarding everything to `next` (after the scorer's own observer). */
  observer(cache: KVCache, next: AttentionObserver): AttentionObserver {
    return new CamObserver(this, cache, this.scorer.observer ? this.scorer.observer(cache, next) : next);
  }

  /** A forward of `positions` reached `layer`: a decoding step when it comes after the prompt. */
  forward(layer: number, positions: Int32Array): void {
    const last = positions.length > 0 ? positions[positions.length - 1] : -1;
    if (last < this.recordFrom) {
      this.lastRow[layer] = -1;
      return;
    }
    this.lastRow[layer] = last;
    this.steps[layer] = (this.steps[layer] ?? 0) + 1;
    this.widest[layer] = Math.max(this.widest[layer] ?? 0, positions.length);
  }

  /**
   * Adds the attention a decoding step's last token pays each entry to the running sums (mean over the query heads
   * of the group).
   */
  record(block: AttentionBlock, cache: KVCache): void {
    const { probs, cols, groupSize, queryPositions } = block;
    const c = cache.layers[block.layer];
    const head = c.heads[block.kvHead];
    const sums = head.stat(CAM_ATTENTION);
    // The mean over the group's query heads (a block may hold one of them only, with per-query-head entry lists).
    const group = this.group;
    const n = Math.min(cols, head.length);
    for (let t = 0; t < queryPositions.length; t++) {
      if (queryPositions[t] !== this.lastRow[block.layer]) continue;
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let j = 0; j < groupSize; j++) s = f(s + probs[(t * groupSize + j) * cols + i]);
        sums[i] += f(s / group);
      }
    }
  }

  score(view: LayerView): Float32Array[] {
    const plan = this.planFor(view);
    const heads = view.cache.heads;
    return plan.mean ? heads.map(() => plan.mean!.slice()) : heads.map((h) => new Float32Array(h.length));
  }

  select(view: LayerView, _scores: Float32Array[]): Int32Array[] {
    const plan = this.planFor(view);
    const heads = view.cache.heads;
    if (!view.decoding) {
      // The prefill: nothing is compressed; the running sums and the count start with the first decoding step.
      this.recordFrom = view.seen;
      this.restart(view.layer);
      for (const head of heads) {
        head.stat(DECODING_OLD).fill(1);
        head.stat(CAM_ATTENTION).fill(0);
      }
    } else if (plan.due) {
      this.restart(view.layer);
      for (const head of heads) head.stat(DECODING_OLD).fill(1);
    }
    const all = () => heads.map((h) => Int32Array.from({ length: h.length }, (_, i) => i));
    return plan.kept ? heads.map(() => plan.kept!.slice()) : all();
  }

  beforeKeep(view: LayerView, kept: Int32Array[]): void {
    const plan = this.planFor(view);
    this.plan = undefined;
    if (!plan.merges || plan.merges.length === 0) return;
    const heads = view.cache.heads;
    const n = plan.merges.length;
    const uniforms = this.draws.next(heads.length * n);
    heads.forEach((head, h) => {
      const merged = camMergeHead(
        head.values(0, head.length),
        head.headDim,
        head.stat(CAM_ATTENTION),
        kept[h],
        plan.merges!,
        this.options.mergeBudget,
        uniforms.subarray(h * n, (h + 1) * n),
      );
      if (merged) head.writeValues(merged.indices, merged.values);
    });
  }

  /** The layer's count starts again (kvpress clears it, and the buffer, at each compression and at the prefill). */
  private restart(layer: number): void {
    this.steps[layer] = 0;
    this.widest[layer] = 0;
  }

  /** Whether the layer is compressed now, and if so what it keeps and which evicted entries merge. */
  private planFor(view: LayerView): Plan {
    if (this.plan?.view === view) return this.plan;
    this.group = view.config.numHeads / view.config.numKvHeads;
    const plan: Plan = { view, due: false };
    this.plan = plan;
    if (!view.decoding) return plan;
    const { interval, targetSize } = this.options;
    const steps = this.steps[view.layer] ?? 0;
    const length = view.cache.maxLength();
    plan.due = (steps >= interval && length > targetSize) || (this.widest[view.layer] ?? 0) >= targetSize;
    if (!plan.due || length <= targetSize) return plan;
    const scores = this.decoding.score(view);
    // kvpress: scores.mean(dim=1), in f32, heads summed in order.
    const mean = new Float32Array(length);
    for (let i = 0; i < length; i++) {
      let s = 0;
      for (const row of scores) s = f(s + row[i]);
      mean[i] = f(s / scores.length);
    }
    plan.mean = mean;
    plan.kept = topK(mean, targetSize);
    plan.merges = mergeCandidates(mean, plan.kept, steps);
    return plan;
  }
}

/** Forwards to `next`, counts the decoding steps and adds their last token's attention to the running sums. */
class CamObserver implements AttentionObserver {
  readonly accumulate?: { sum: string; count: string };
  readonly tokens?: AttentionObserver['tokens'];

  constructor(
    private readonly press: CamPress,
    private readonly cache: KVCache,
    private readonly next: AttentionObserver,
  ) {
    this.accumulate = next.accumulate;
    if (next.tokens) this.tokens = next.tokens.bind(next);
  }

  queries(layer: number, q: Float32Array, positions: Int32Array): void {
    this.next.queries?.(layer, q, positions);
    this.press.forward(layer, positions);
  }

  observe(block: AttentionBlock): void {
    this.next.observe?.(block);
    this.press.record(block, this.cache);
  }
}
