/**
 * SpecPC (Galim, Ewer, Kang, Lee, Koo & Lee 2025, "Draft-based Approximate Inference for LLMs", arXiv 2506.08373,
 * ICLR 2026): prompt compression by a draft model's attention, as its official code implements it:
 * furiosa-ai/draft-based-approx-llm, draft_approx_llm/specpc/specpc_utils.py (AttentionStoreFunction,
 * AttentionCache, generate_aggregated_attention), specpc/specpc.py (specpc_select_input_token_indices,
 * specpc_compress_prompt), draft_approx_llm.py (SpecPCConfig) and the paper's runs in cfg/paper/specpc/.
 *
 * Rule. The draft (the target's tokenizer) continues the prompt greedily for `lookahead` tokens
 * (prompt/lookahead.ts). Its attention is recorded in every layer from `startLayer` on: in the prompt's forward, the
 * last `window` prompt queries' probabilities over the prompt (causal, softmax scaled 1/√headDim), the t-th of the
 * q rows weighted t/(q − 1) (weighted_query: torch.linspace(0, 1, q), so the window's first query counts 0 and its
 * last 1; no weight for a single row); in each later forward (one per drafted token fed back: lookahead − 1), that
 * token's probabilities. A prompt token's score is the largest of all these (reduction max: over heads and rows,
 * then layers, then forwards; mean: their sum) over the prompt's positions. The scores are smoothed by a centred
 * pool of width `kernel` (zero padding, (kernel − 1)//2 before and the rest after; max, or mean with the padding
 * counted), and the `keep` best (ties: the earlier) are taken in order of score, each followed by its `neighbours`
 * surrounding positions (offsets −((n − 1)//2) … n − 1 − (n − 1)//2, nearest first), clamped into the prompt;
 * the last `window` positions come first, then those, each position once, cut to `keep`, in prompt order.
 * Defaults, as cfg/paper/specpc/ (all 435 configs) and SpecPCConfig: window_size 64, pool_type max, reduction_type
 * max, lookahead_tokens 1 (the prompt's forward alone), weighted_query true, starting_layer_index 8; kernel_size and
 * neighbor_tokens 32 for the Llama pair (Llama-3.2-1B drafting for Llama-3.1-8B; 64 for Qwen2.5-0.5B / 14B), so
 * `kernel` 32 and `neighbours` = kernel (SpecPCConfig's None). max_capacity_prompt (1024, 2048, 3072 there) is the
 * kept token count: here `budget`, a ratio of the prompt removed or a token count.
 * Choices:
 * - startLayer: the official 8 skips half of Llama-3.2-1B's 16 layers (a third of Qwen2.5-0.5B's 24); Attend's
 *   default is min(8, ⌊layers/2⌋), the official 8 for drafts of 16 layers or more and the Llama pair's half below
 *   (attend-mini-draft has 4 layers: layers 2 and 3);
 * - ties between equal offsets −d and +d of the neighbours (torch's argsort of |d| is not stable) go to −d;
 * - equal pooled scores go to the earlier token (torch.topk's order among them is its own). With the max pool a
 *   strong token p lends its score to the `kernel` positions p − kernel//2 … p + (kernel − 1)//2, so the earliest of
 *   them leads, and with neighbours = kernel its span ends at p (as-is official runs pick another of those
 *   positions, torch's own choice: test/prompt/specpc-oracle.test.ts compares with ties broken this way);
 * - a prompt within the budget comes back unchanged without running the draft (the official code runs it and
 *   keeps every token); a budget below `window` keeps the window's first tokens, as the official cut does; a window
 *   longer than the prompt is refused, as the official code raises; a window of 0 is refused too (in the official
 *   code window_size 0 would score every prompt query, Python's [-0:], while keeping no window).
 */
import type { AttentionObserver } from '../backend/backend.js';
import type { KVCache } from '../cache/kv-cache.js';
import { AttendError } from '../errors.js';
import type { LoadedModel } from '../models/load.js';
import { type Budget, entriesToKeep, validateBudget } from '../presses/budget.js';
import { greedyLookahead } from './lookahead.js';

export type Pooling = 'max' | 'mean' | 'none';

export interface SpecPCOptions {
  /** Last prompt tokens whose draft queries score, always kept (window_size). */
  window: number;
  /** Width of the centred pool over the scores (kernel_size). */
  kernel: number;
  /** Positions kept around each top token, itself included (neighbor_tokens); 0 or 1: the token alone. */
  neighbours: number;
  /** Tokens the draft drafts (lookahead_tokens); 1: its prompt forward alone. */
  lookahead: number;
  /** First draft layer whose attention counts (starting_layer_index); default min(8, ⌊layers/2⌋). */
  startLayer?: number;
  /** Weigh the window's queries 0 … 1 (weighted_query). */
  weightedQuery: boolean;
  /** Smoothing of the scores (pool_type; none: the official None). */
  pool: Pooling;
  /** max, or mean (the official sums: the same ranking) over heads, rows, layers and forwards (reduction_type). */
  reduction: 'max' | 'mean';
}

export const SPECPC_DEFAULTS: SpecPCOptions = { window: 64, kernel: 32, neighbours: 32, lookahead: 1, weightedQuery: true, pool: 'max', reduction: 'max' };

/** The official starting_layer_index, for drafts of 16 layers or more (see the header). */
export const SPECPC_START_LAYER = 8;

/**
 * A centred 1-D pool, stride 1, of `x` (scores ≥ 0): (kernel − 1)//2 zeros before, kernel − 1 − that after, the max
 * or the mean of each span (the zeros counted), so the length is kept. For an odd kernel this is also PyTorch's
 * max_pool1d / avg_pool1d with padding kernel//2 (−∞ padding never wins a max over probabilities ≥ 0).
 */
export function centredPool(x: ArrayLike<number>, kernel: number, kind: Pooling): Float32Array {
  const n = x.length;
  const out = new Float32Array(n);
  if (kind === 'none') {
    out.set(x);
    return out;
  }
  const before = Math.floor((kernel - 1) / 2);
  for (let i = 0; i < n; i++) {
    let m = 0;
    let s = 0;
    for (let at = Math.max(0, i - before); at < Math.min(n, i - before + kernel); at++) {
      m = Math.max(m, x[at]);
      s += x[at];
    }
    out[i] = kind === 'max' ? m : s / kernel;
  }
  return out;
}

/** The draft's score of each prompt token (before pooling): its aggregated attention, as the header says. */
export function specpcScores(draft: LoadedModel, ids: ArrayLike<number>, options: SpecPCOptions): Float64Array {
  const c = draft.config;
  const b = draft.model.backend;
  const n = ids.length;
  const width = c.numHeads * c.headDim;
  const group = c.numHeads / c.numKvHeads;
  const start = options.startLayer ?? Math.min(SPECPC_START_LAYER, Math.floor(c.numLayers / 2));
  if (!(Number.isInteger(start) && start >= 0 && start < c.numLayers)) {
    throw new AttendError(`specpc: start layer ${start} is not a layer of the draft (${c.numLayers} layers, 0…${c.numLayers - 1})`);
  }
  const windowFrom = Math.max(0, n - options.window);
  const max = options.reduction === 'max';
  const scores = new Float64Array(n);
  // The queries of this forward's scoring rows, per layer from `start` on.
  const fresh = () => Array.from({ length: c.numLayers }, () => ({ q: new Float32Array(0), positions: new Int32Array(0) }));
  let rows = fresh();
  const observer: AttentionObserver = {
    queries(layer, q, positions) {
      if (layer < start) return;
      // In the prompt's forward only the window scores; every later forward is one drafted token.
      let from = 0;
      while (from < positions.length && positions[from] < windowFrom) from++;
      if (from === positions.length) return;
      const kept = rows[layer];
      const data = new Float32Array(kept.q.length + (positions.length - from) * width);
      data.set(kept.q);
      data.set(q.subarray(from * width, positions.length * width), kept.q.length);
      rows[layer] = { q: data, positions: Int32Array.from([...kept.positions, ...positions.subarray(from)]) };
    },
  };
  const afterForward = (cache: KVCache) => {
    for (let l = start; l < c.numLayers; l++) {
      const { q, positions } = rows[l];
      const count = positions.length;
      if (count === 0) continue;
      const probs = b.attentionWeights(b.upload([count, width], q), cache.layers[l], positions, { layer: l, scale: 1 / Math.sqrt(c.headDim), window: null });
      probs.forEach((p, g) => {
        const length = cache.layers[l].heads[g].length;
        for (let t = 0; t < count; t++) {
          const w = options.weightedQuery && count > 1 ? t / (count - 1) : 1;
          for (let j = 0; j < group; j++) {
            const row = (t * group + j) * length;
            // The draft's cache holds every position once, in order: entry i is position i; the prompt's are < n.
            for (let i = 0; i < n; i++) {
              const v = w * p[row + i];
              if (max) scores[i] = Math.max(scores[i], v);
              else scores[i] += v;
            }
          }
        }
      });
    }
    rows = fresh();
  };
  greedyLookahead(draft.model, ids, { tokens: options.lookahead, eos: draft.generation.eosTokenIds, observer, afterForward });
  return scores;
}

/** The prompt positions SpecPC keeps, ascending, given the draft's scores (before pooling) and the count to keep. */
export function specpcSelect(scores: ArrayLike<number>, keep: number, options: Pick<SpecPCOptions, 'window' | 'kernel' | 'neighbours' | 'pool'>): Int32Array {
  const n = scores.length;
  if (options.window > n) throw new AttendError(`specpc: the window (${options.window} tokens) is longer than the prompt (${n})`);
  const pooled = centredPool(scores, options.kernel, options.pool);
  // The `keep` best in order of score (ties: the earlier), or every position in order when all fit.
  const order = Array.from({ length: n }, (_, i) => i);
  if (keep < n) order.sort((a, b) => pooled[b] - pooled[a] || a - b).splice(keep);
  const nb = options.neighbours;
  const offsets = nb > 0 ? Array.from({ length: nb }, (_, k) => k - Math.floor((nb - 1) / 2)) : [0];
  // Nearest first; the stable sort puts −d before +d.
  offsets.sort((a, b) => Math.abs(a) - Math.abs(b));
  const picked = new Set<number>();
  for (let i = n - options.window; i < n; i++) picked.add(i);
  for (const i of order) {
    for (const d of offsets) picked.add(Math.min(n - 1, Math.max(0, i + d)));
    if (picked.size >= keep) break;
  }
  return Int32Array.from([...picked].slice(0, keep)).sort();
}

export interface CompressPromptOptions extends Partial<SpecPCOptions> {
  /** What the prompt keeps: a ratio of its tokens removed, or a token count (max_capacity_prompt). */
  budget: Budget;
}

/** SpecPC: the prompt's ids with the tokens its draft's attention scores lowest dropped, before the target's prefill. */
export function compressPrompt(ids: ArrayLike<number>, draft: LoadedModel, options: CompressPromptOptions): number[] {
  const { budget, ...rest } = options;
  validateBudget(budget);
  const o: SpecPCOptions = { ...SPECPC_DEFAULTS, ...rest };
  if (rest.neighbours === undefined) o.neighbours = o.kernel;
  for (const [key, v, min] of [['window', o.window, 1], ['kernel', o.kernel, 1], ['neighbours', o.neighbours, 0], ['lookahead', o.lookahead, 1]] as const) {
    if (!(Number.isInteger(v) && v >= min)) throw new AttendError(`specpc: option ${key} must be a whole number ≥ ${min}, got ${v}`);
  }
  if (!['max', 'mean', 'none'].includes(o.pool)) throw new AttendError(`specpc: option pool must be max, mean or none, got "${o.pool}"`);
  if (o.reduction !== 'max' && o.reduction !== 'mean') throw new AttendError(`specpc: option reduction must be max or mean, got "${o.reduction}"`);
  const n = ids.length;
  const keep = entriesToKeep(budget, n, n);
  if (keep >= n) return Array.from(ids);
  const kept = specpcSelect(specpcScores(draft, ids, o), keep, o);
  return Array.from(kept, (i) => ids[i]);
}
