/**
 * SpecKV (Galim, Ewer, Kang, Lee, Koo & Lee 2025, "Draft-based Approximate Inference for LLMs", arXiv 2506.08373,
 * ICLR 2026), as its official code implements it: furiosa-ai/draft-based-approx-llm, draft_approx_llm/speckv/
 * speckv.py (speckv_generate, speckv_generate_from_lookahead_ids), speckv/util.py (compress_kv), speckv/llama_util.py
 * (where compress_kv runs), draft_approx_llm.py (SpecKVConfig) and the paper's runs in cfg/paper/speckv/.
 *
 * Rule. A small draft model with the target's tokenizer continues the sequence greedily for `lookahead` tokens
 * (prompt/lookahead.ts: Hugging Face generate, do_sample False, ending early after an end-of-sequence id). The
 * target runs those draft tokens after the sequence (officially one prefill of prompt + draft tokens; the rows
 * attend causally, so running them over the prompt's cache is the same computation). In each layer the queries of
 * the last `window` + 1 prompt tokens and of every draft token attend, softmax scaled 1/√headDim over every entry
 * each row sees causally (the draft tokens' own entries included); the official code widens its window to
 * window_size + lookahead + 1, which is where the + 1 comes from. Each KV head scores the entries before those
 * window + 1 prompt tokens by their largest probability over the query heads of its group and all those rows
 * (reduction max; mean: their mean), pooled along the entries with a max pool of width `kernel` (stride 1, kernel//2
 * each side; mean: PyTorch's avg_pool1d with zero padding counted), and keeps its highest; the window's window + 1
 * entries are always kept; the draft tokens' entries are then taken back (KVCache.trim; officially the crop).
 * Budget: the runner's (--ratio or --budget; the official max_capacity_prompt C is a token budget). The official
 * code keeps C − window pooled entries plus the window + 1 last prompt tokens (its crop to C drops the last prompt
 * token and generate runs it again), C + 1 entries in all; under Attend's budget K a head keeps K − window − 1
 * pooled entries plus the same window + 1, K in all: the official cap C is Attend's budget C + 1.
 * Defaults, as all 435 configs in cfg/paper/speckv/ and the README's example: window_size 32 (`window`), kernel_size 7
 * (`kernel`, odd: speckv.py asserts it), pool_type max (`pool`), reduction_type max (`reduction`); the caps there,
 * max_capacity_prompt 256, 512, 1024, are budgets (--budget). lookahead_tokens is null in every config, which means
 * max_new_tokens: the draft drafts as many tokens as the target may generate (32 to 512 on LongBench, the README's
 * example 32). A press does not see the generation's length, so `lookahead` defaults to 32 (the README's example and
 * the shortest LongBench answers): pass lookahead=N to match --max-tokens N as the paper does.
 * Choices:
 * - the draft is loaded from `draft` (a model directory), on the target's backend, when first needed; it must have
 *   the target's vocabulary and encode text as the target's tokenizer does (the checks of speculative decoding). It
 *   has no default: a draft must match its target, and Attend's only bundled pair is attend-mini with
 *   models/attend-mini-draft (pass draft=models/attend-mini-draft).
 * - the official code compresses once, in the target's prefill; Attend's runner may also compress per prefill chunk
 *   or while decoding: each compression then drafts from every token seen so far (the draft runs the whole
 *   sequence again), the window being the last window + 1 tokens seen.
 * - ties (equal pooled scores) go to the earlier entry (topK); torch.topk's order is its own.
 * - the last prompt token keeps the entry and the logits of the dense prefill. Officially generate's first step runs
 *   it again over the cropped cache (speckv.py lines 76–88), so its keys and values from layer 1 on and the logits
 *   of the first generated token come from the compressed context (on attend-mini they differ from the dense ones
 *   by up to 5.5, the argmax the same: test/presses/speckv-oracle.test.ts runs that step itself to compare).
 * - sequences no longer than window + 1 tokens have nothing to score: an error, as SnapKV's too-short context.
 * Left out: the sparse prefill of the official code (prefill_window_size 2048, prefill_vertical_size 2048: for an
 * input longer than 4096 tokens the target's prefill itself runs MInference's vertical-slash attention on the
 * pooled scores' top 2048 columns and the last 2048 diagonals). It approximates the prefill's computation, not the
 * selection; Attend's prefill is dense, which is what the official code runs below that length.
 * Needs the session's observer on every forward of the sequence (the token ids, AttentionObserver.tokens, for the
 * draft; the recent queries); as KVzip, it cannot join a shared prefill nor serve as another press's scorer.
 */
import type { AttentionObserver } from '../backend/backend.js';
import type { KVCache } from '../cache/kv-cache.js';
import { AttendError } from '../errors.js';
import { readModelConfig } from '../models/families.js';
import { type LoadedModel, loadModel } from '../models/load.js';
import type { CausalLM } from '../models/model.js';
import { checkDraftTokenizer, greedyLookahead } from '../prompt/lookahead.js';
import { centredPool, type Pooling } from '../prompt/specpc.js';
import type { CompressionContext, LayerView, Press } from './press.js';
import { reread, TokenLogs } from './reread.js';
import { protectTail, windowAttention } from './window-attention.js';

export type Reduction = 'max' | 'mean';

export interface SpecKVOptions {
  /** Tokens the draft drafts (lookahead_tokens; the official null is the generation's max_new_tokens). */
  lookahead: number;
  /** Last prompt tokens whose queries score too and whose entries are kept: window + 1 of them (window_size). */
  window: number;
  /** Width of the pooling along the entries, odd (kernel_size). */
  kernel: number;
  /** max or mean pooling (pool_type). */
  pool: Exclude<Pooling, 'none'>;
  /** Over the query heads of a group and the scoring rows: max or mean (reduction_type). */
  reduction: Reduction;
}

export const SPECKV_DEFAULTS: SpecKVOptions = { lookahead: 32, window: 32, kernel: 7, pool: 'max', reduction: 'max' };

/** Draft-token rows per attention call, so that a long lookahead's probabilities never sit in memory at once. */
const BLOCK = 128;

interface Prepared {
  layers: KVCache['layers'];
  /** Per layer and KV head, per entry held: the draft rows' reduction (max, or sum for mean) of its probabilities. */
  reduced: Float32Array[][];
  /** Draft tokens that scored (rows per query head). */
  rows: number;
}

export class SpecKVPress implements Press {
  readonly name = 'speckv';
  readonly needs;
  private readonly logs = new TokenLogs();
  private loaded?: LoadedModel;
  private checkedFor?: CausalLM;
  private prepared?: Prepared;

  /** `draft`: the draft model, or its directory (loaded on the target's backend when first needed). */
  constructor(
    private readonly draft: string | LoadedModel,
    readonly options: SpecKVOptions = SPECKV_DEFAULTS,
  ) {
    const { lookahead, window, kernel, pool, reduction } = options;
    for (const [key, v, min] of [['lookahead', lookahead, 1], ['window', window, 0], ['kernel', kernel, 1]] as const) {
      if (!(Number.isInteger(v) && v >= min)) throw new AttendError(`speckv: option ${key} must be a whole number ≥ ${min}, got ${v}`);
    }
    // PyTorch's pools with padding kernel//2 keep the length only for an odd kernel (speckv.py asserts it).
    if (kernel % 2 !== 1) throw new AttendError(`speckv: option kernel must be odd (the pooling keeps the entries' count), got ${kernel}`);
    if (pool !== 'max' && pool !== 'mean') throw new AttendError(`speckv: option pool must be max or mean, got "${pool}"`);
    if (reduction !== 'max' && reduction !== 'mean') throw new AttendError(`speckv: option reduction must be max or mean, got "${reduction}"`);
    if (typeof draft === 'string') {
      if (draft === '') throw new AttendError('speckv needs its draft model: --press-opt draft=DIR (same tokenizer; models/attend-mini-draft for attend-mini)');
      try {
        readModelConfig(draft);
      } catch (e) {
        if (e instanceof AttendError) throw new AttendError(`speckv: draft: ${e.message}`);
        throw e;
      }
    }
    this.needs = { queryWindow: window + 1 };
  }

  observer(cache: KVCache, next: AttentionObserver): AttentionObserver {
    return this.logs.observer(cache, next);
  }

  prepare(ctx: CompressionContext): void {
    this.prepared = undefined;
    const { model, cache } = ctx;
    // The runner scores only layers with a head above its target: without one, no draft runs.
    if (!cache.layers.some((l, i) => l.heads.some((h) => h.length > ctx.targets[i]))) return;
    const draft = this.draftFor(model);
    const ids = this.logs.ids(cache, this.name);
    const tokens = greedyLookahead(draft.model, ids, { tokens: this.options.lookahead, eos: draft.generation.eosTokenIds });
    this.prepared = { layers: cache.layers, reduced: this.scoreDraftRows(model, cache, tokens), rows: tokens.length };
  }

  /** The target runs the draft tokens over its cache; per layer and head, each held entry's reduced probability. */
  private scoreDraftRows(model: CausalLM, cache: KVCache, tokens: number[]): Float32Array[][] {
    const c = model.config;
    const b = model.backend;
    const group = c.numHeads / c.numKvHeads;
    const width = c.numHeads * c.headDim;
    const rows = tokens.length;
    const seen = cache.nextPosition;
    const max = this.options.reduction === 'max';
    const queries = cache.layers.map(() => new Float32Array(rows * width));
    const filled = cache.layers.map(() => 0);
    const observer: AttentionObserver = {
      queries(layer, q, positions) {
        queries[layer].set(q.subarray(0, positions.length * width), filled[layer] * width);
        filled[layer] += positions.length;
      },
    };
    const reduced = cache.layers.map((l) => l.heads.map((h) => new Float32Array(h.length)));
    reread(model, cache, tokens, { observer }, () => {
      const positions = Int32Array.from({ length: rows }, (_, t) => seen + t);
      cache.layers.forEach((layer, l) => {
        for (let t0 = 0; t0 < rows; t0 += BLOCK) {
          const t1 = Math.min(rows, t0 + BLOCK);
          const q = b.upload([t1 - t0, width], queries[l].subarray(t0 * width, t1 * width));
          const probs = b.attentionWeights(q, layer, positions.subarray(t0, t1), { layer: l, scale: 1 / Math.sqrt(c.headDim), window: null });
          layer.heads.forEach((head, g) => {
            const out = reduced[l][g];
            const p = probs[g];
            // Rows of (draft token, query head of the group); only the entries held before the draft tokens count.
            for (let r = 0; r < (t1 - t0) * group; r++) {
              const row = p.subarray(r * head.length, r * head.length + out.length);
              if (max) for (let i = 0; i < out.length; i++) out[i] = Math.max(out[i], row[i]);
              else for (let i = 0; i < out.length; i++) out[i] += row[i];
            }
          });
        }
      });
    });
    return reduced;
  }

  score(view: LayerView): Float32Array[] {
    const p = this.prepared;
    const fresh = p && p.layers[view.layer] === view.cache && p.reduced[view.layer].every((s, h) => s.length === view.cache.heads[h].length);
    if (!fresh) throw new AttendError("speckv scores with its draft's lookahead in its prepare step: it runs in a CompressionSession, not as another press's scorer");
    const rows = this.options.window + 1;
    const queries = view.queries;
    if (!queries || queries.positions.length < rows || view.seen <= rows) {
      throw new AttendError(`speckv: the window's ${rows} tokens (window ${this.options.window} + 1) must be fewer than the tokens seen (${view.seen})`);
    }
    return speckvScores(view, windowAttention(view, queries), p.reduced[view.layer], p.rows, this.options);
  }

  private draftFor(target: CausalLM): LoadedModel {
    if (!this.loaded) {
      const d = this.draft;
      this.loaded = typeof d === 'string' ? loadModel(d, { backend: target.backend }) : d;
    }
    if (this.checkedFor !== target) {
      checkDraftTokenizer(target, this.loaded, 'speckv');
      this.checkedFor = target;
    }
    return this.loaded;
  }
}

/**
 * The scoring rule for one layer: `windowProbs` (per KV head, [window rows × group × entries]: the last window + 1
 * tokens' attention) and `draftReduced` (per head, per entry, the draft rows' max, or sum for mean, over `draftRows`
 * tokens × the group) combined by the reduction over the entries before the window, pooled; the window's entries
 * above every other score (protectTail).
 */
export function speckvScores(
  view: LayerView,
  windowProbs: Float32Array[],
  draftReduced: Float32Array[],
  draftRows: number,
  options: Pick<SpecKVOptions, 'kernel' | 'pool' | 'reduction'>,
): Float32Array[] {
  const queries = view.queries!;
  const group = view.config.numHeads / view.config.numKvHeads;
  const windowRows = queries.positions.length;
  const max = options.reduction === 'max';
  const windowStart = queries.positions[0];
  const prefixes = view.cache.heads.map((head) => head.visibleUpTo(windowStart - 1));
  const all = view.cache.heads.map((head, g) => {
    const n = prefixes[g];
    const x = Float32Array.from(draftReduced[g].subarray(0, n));
    const p = windowProbs[g];
    for (let r = 0; r < windowRows * group; r++) {
      const row = p.subarray(r * head.length, r * head.length + n);
      if (max) for (let i = 0; i < n; i++) x[i] = Math.max(x[i], row[i]);
      else for (let i = 0; i < n; i++) x[i] += row[i];
    }
    if (!max) for (let i = 0; i < n; i++) x[i] /= (windowRows + draftRows) * group;
    const scores = new Float32Array(head.length);
    scores.set(centredPool(x, options.kernel, options.pool));
    return scores;
  });
  protectTail(all, prefixes);
  return all;
}
