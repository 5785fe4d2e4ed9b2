/**
 * KVzip (Kim et al. 2025, "KVzip: Query-Agnostic KV Cache Compression with Context Reconstruction", arXiv
 * 2505.23416), as NVIDIA kvpress's KVzipPress implements it (the oracle; kvzip_press.py).
 *
 * Rule: once the context is in the cache, the model is asked to repeat it. The context after the chat template's
 * prefix is cut into chunks of `chunk` tokens; each chunk runs as the next tokens over the cache behind a repeat
 * prompt — "\n\nRepeat the previous context exactly." for the first, "\n\nRepeat the part of the previous context
 * exactly, starting with" + the previous chunk's last `postfix` tokens for the others — then the chat template's
 * suffix (what follows a user message and opens the assistant's turn), then the chunk itself. In each layer the
 * repeat's queries (post-RoPE) attend, softmax scaled 1/√headDim, over only the sinks (entries at positions <
 * min(sinks, chunk start)), the chunk's own entries and the repeat's entries (causally); an entry of the chunk scores
 * the largest probability any query head of its KV group gives it from any repeat row. The repeat's entries are then
 * taken back (KVCache.trim), the cache is as before. Entries at positions < `sinks` start at 1, every other at 0
 * (the prefix's tokens past the sinks are never scored). With `kvzip-plus` (KVzip+), each probability is divided by
 * the norm of its row's attention input (the layer's normed hidden state) and multiplied by ‖W_o v‖₂ of its entry
 * (W_o: the query head's block of the output projection).
 * Selection (layerwise false): the lowest ⌊N·ratio⌋ scores of all N entries of all layers and heads are dropped,
 * so layers and heads keep different numbers; layerwise true drops ⌊n·heads·ratio⌋ per layer, across its heads.
 *
 * kvpress's class KVzipPress; defaults as its fields and its prepare(): n_sink 4 (`sinks`), layerwise False,
 * kvzip_plus_normalization False (`kvzip-plus`), chunk_size 2048 (`chunk`), prev_postfix_size 8 (`postfix`). The
 * prefix and suffix come from the model's chat template as kvpress extracts them (rendered around a dummy user
 * message with add_generation_prompt and enable_thinking false, split at a separator line of '#'); without a
 * template the prefix is empty and the suffix "\n". The prefix's length is skipped at the start of the context
 * whatever those tokens are, as in kvpress (its pipeline puts the chat template's prefix there).
 *
 * Differences from kvpress, none in what is kept after a prefill:
 * - pruned entries are removed from each head, not masked (kvpress's attention_patch);
 * - the repeat runs in chunks of 512 tokens (the queries attend causally, so it is the same computation) and
 *   with Attend's own forward: the post-RoPE queries it records are those kvpress recomputes from the hidden states;
 * - on a cache compressed before (per-chunk prefill, decoding) each head scores the entries it still holds, by
 *   position (sinks: positions < min(sinks, start), chunk: positions in [start, end)); ids of every position seen
 *   are re-read, from the press's own observer (AttentionObserver.tokens); the budget is then the runner's:
 *   ⌊N·ratio⌋ dropped of the N = layers·heads·tokens seen at a prefill with a ratio, else Σ layers heads·target;
 * - ties (exactly equal scores, e.g. the sinks' 1) go to the earlier layer, head and entry (torch.topk's are its own).
 * The paper's own repository (snu-mllab/KVzip) runs its own cache and kernels; where it differs, kvpress is followed.
 * Needs the model's tokenizer (CausalLM.tokenizer, which loadModel sets) and the session's observer on every forward
 * of the sequence; a shared prefill cannot serve it (it has an observer of its own).
 */
import type { AttentionObserver } from '../backend/backend.js';
import type { KVCache } from '../cache/kv-cache.js';
import { AttendError, check } from '../errors.js';
import type { TextTokenizer } from '../io/tokenizer.js';
import type { Tensor } from '../tensor/tensor.js';
import type { CompressionContext, LayerView, Press } from './press.js';
import { preparedFor, type PreparedSelection } from './prepared-selection.js';
import { keepHighest, reread, TokenLogs } from './reread.js';

export interface KVzipOptions {
  /** n_sink: entries at positions below this score 1 (and serve as sinks in every chunk's attention). */
  sinks: number;
  /** One ratio per layer (across its heads) instead of one selection across all layers. */
  layerwise: boolean;
  /** KVzip+ normalization: probabilities / ‖attention input‖ × ‖W_o v‖. */
  plus: boolean;
  /** Context tokens per repeat (kvpress prepare's chunk_size). */
  chunk: number;
  /** Tokens of the previous chunk quoted in a later chunk's prompt (prev_postfix_size). */
  postfix: number;
}

export const KVZIP_DEFAULTS: KVzipOptions = { sinks: 4, layerwise: false, plus: false, chunk: 2048, postfix: 8 };

export const KVZIP_FIRST_PROMPT = '\n\nRepeat the previous context exactly.';
export const KVZIP_LATER_PROMPT = '\n\nRepeat the part of the previous context exactly, starting with';

/** The tokenizer's part of the repeat: the chat template's prefix length and suffix, and the two prompts. */
export interface KVzipPrompt {
  prefixLength: number;
  suffix: number[];
  first: number[];
  later: number[];
}

const prompts = new WeakMap<TextTokenizer, KVzipPrompt>();

/** The repeat prompt's pieces as kvpress's KVzipPress.__call__ and prepare() take them from the tokenizer. */
export function kvzipPrompt(tokenizer: TextTokenizer): KVzipPrompt {
  const cached = prompts.get(tokenizer);
  if (cached) return cached;
  const encode = (text: string) => tokenizer.encode(text, { addSpecialTokens: false });
  let prefix = '';
  let suffix = '\n';
  if (tokenizer.chatTemplate !== undefined) {
    const dummy = 'dummy context';
    const separator = '\n' + '#'.repeat(dummy.length);
    const rendered = tokenizer.applyChatTemplate([{ role: 'user', content: dummy + separator }], { addGenerationPrompt: true, extra: { enable_thinking: false } });
    const parts = rendered.split(separator);
    check(parts.length === 2, `kvzip: the chat template does not render the user message once, so its prefix and suffix cannot be told apart`);
    suffix = parts[1];
    prefix = parts[0].split(dummy)[0];
  }
  const prompt = { prefixLength: encode(prefix).length, suffix: encode(suffix), first: encode(KVZIP_FIRST_PROMPT), later: encode(KVZIP_LATER_PROMPT) };
  prompts.set(tokenizer, prompt);
  return prompt;
}

/** One repeat: the context positions [start, end) it reconstructs and the ids it runs. */
export interface KVzipChunk {
  start: number;
  end: number;
  ids: number[];
}

/** kvpress's prepare(): the context after the prefix in chunks, each behind its prompt and the template's suffix. */
export function kvzipChunks(tokens: ArrayLike<number>, prompt: KVzipPrompt, chunk: number, postfix: number): KVzipChunk[] {
  const out: KVzipChunk[] = [];
  let previous: number[] = [];
  for (let start = prompt.prefixLength; start < tokens.length; start += chunk) {
    const end = Math.min(tokens.length, start + chunk);
    const ids = Array.from(Array.prototype.slice.call(tokens, start, end) as number[]);
    const q = out.length === 0 ? prompt.first : [...prompt.later, ...(postfix > 0 ? previous.slice(-postfix) : [])];
    out.push({ start, end, ids: [...q, ...prompt.suffix, ...ids] });
    previous = ids;
  }
  return out;
}

export class KVzipPress implements Press {
  readonly name = 'kvzip';
  readonly needs = {};
  private readonly logs = new TokenLogs();
  private prepared?: PreparedSelection;

  constructor(readonly options: KVzipOptions = KVZIP_DEFAULTS) {
    const { sinks, chunk, postfix } = options;
    for (const [key, v, min] of [['sinks', sinks, 0], ['chunk', chunk, 1], ['postfix', postfix, 0]] as const) {
      if (!(Number.isInteger(v) && v >= min)) throw new AttendError(`kvzip: option ${key} must be a whole number ≥ ${min}, got ${v}`);
    }
  }

  observer(cache: KVCache, next: AttentionObserver): AttentionObserver {
    return this.logs.observer(cache, next);
  }

  prepare(ctx: CompressionContext): void {
    const { model, cache } = ctx;
    const c = model.config;
    const seen = cache.nextPosition;
    const heads = c.numKvHeads;
    // Entries each layer (layerwise) or the whole cache keeps.
    const budget = ctx.budget;
    const byRatio = ctx.prefill && budget != null && 'ratio' in budget ? budget.ratio : undefined;
    const keepOf = (units: number, targets: number) => (byRatio !== undefined ? units - Math.floor(units * byRatio) : targets);
    const held = cache.layers.map((l) => l.heads.reduce((s, h) => s + h.length, 0));
    const layerTotals = ctx.targets.map((t) => keepOf(heads * seen, heads * t));
    const total = keepOf(c.numLayers * heads * seen, ctx.targets.reduce((s, t) => s + heads * t, 0));
    const scores = cache.layers.map((l) => l.heads.map((h) => Float32Array.from(h.positions, (p) => (p < this.options.sinks ? 1 : 0))));
    const all = (): Int32Array[][] => cache.layers.map((l) => l.heads.map((h) => Int32Array.from({ length: h.length }, (_, i) => i)));
    const needed = this.options.layerwise ? held.some((n, l) => n > layerTotals[l]) : held.reduce((a, b) => a + b, 0) > total;
    if (!needed) {
      this.prepared = { layers: cache.layers, scores, kept: all() };
      return;
    }
    const tokenizer = model.tokenizer;
    if (!tokenizer) throw new AttendError('kvzip builds its repeat prompt with the model\'s tokenizer, and this model has none (load it from a directory with tokenizer.json)');
    const prompt = kvzipPrompt(tokenizer);
    const tokens = this.logs.ids(cache, this.name);
    for (const chunk of kvzipChunks(tokens, prompt, this.options.chunk, this.options.postfix)) this.scoreChunk(ctx, chunk, seen, scores);
    const kept = this.options.layerwise
      ? scores.map((layer, l) => keepHighest(layer, layerTotals[l]))
      : (() => {
          const flat = keepHighest(scores.flat(), total);
          return scores.map((layer, l) => layer.map((_, h) => flat[l * heads + h]));
        })();
    this.prepared = { layers: cache.layers, scores, kept };
  }

  /** One repeat: run it over the cache, score the chunk's entries in every layer, take it back. */
  private scoreChunk(ctx: CompressionContext, chunk: KVzipChunk, seen: number, scores: Float32Array[][]): void {
    const { model, cache } = ctx;
    const c = model.config;
    const b = model.backend;
    const d = c.headDim;
    const group = c.numHeads / c.numKvHeads;
    const width = c.numHeads * d;
    const rows = chunk.ids.length;
    const queries = cache.layers.map(() => new Float32Array(rows * width));
    const norms = cache.layers.map(() => new Float64Array(rows));
    const filled = cache.layers.map(() => 0);
    const observer: AttentionObserver = {
      queries(layer, q, positions) {
        queries[layer].set(q.subarray(0, positions.length * width), filled[layer] * width);
        filled[layer] += positions.length;
      },
    };
    const normRows = cache.layers.map(() => 0);
    const hooks = this.options.plus
      ? {
          attentionInput(layer: number, h: Tensor) {
            const x = b.read(h);
            const n = h.shape[0];
            const hidden = x.length / n;
            for (let r = 0; r < n; r++) {
              let s = 0;
              for (let j = 0; j < hidden; j++) s += x[r * hidden + j] ** 2;
              norms[layer][normRows[layer] + r] = Math.sqrt(s);
            }
            normRows[layer] += n;
          },
        }
      : undefined;
    const sink = Math.min(this.options.sinks, chunk.start);
    reread(model, cache, chunk.ids, { observer, hooks }, () => {
      const positions = Int32Array.from({ length: rows }, (_, t) => seen + t);
      cache.layers.forEach((layer, l) => {
        // Per KV head: the sinks, the chunk's entries and the repeat's.
        const spans = layer.heads.map((head) => {
          const sinks = head.visibleUpTo(sink - 1);
          const from = head.visibleUpTo(chunk.start - 1);
          const to = head.visibleUpTo(chunk.end - 1);
          return { sinks, from, to, repeat: head.length - rows };
        });
        const entries = spans.map(({ sinks, from, to, repeat }, g) => {
          const list = [];
          for (let i = 0; i < sinks; i++) list.push(i);
          for (let i = from; i < to; i++) list.push(i);
          for (let i = repeat; i < layer.heads[g].length; i++) list.push(i);
          return Int32Array.from(list);
        });
        const wov = this.options.plus ? outputNorms(ctx, l, spans) : undefined;
        // Rows in blocks, so that the probabilities of a long repeat never sit in memory all at once.
        const BLOCK = 128;
        for (let t0 = 0; t0 < rows; t0 += BLOCK) {
          const t1 = Math.min(rows, t0 + BLOCK);
          const q = b.upload([t1 - t0, width], queries[l].subarray(t0 * width, t1 * width));
          const probs = b.attentionWeights(q, layer, positions.subarray(t0, t1), { layer: l, scale: 1 / Math.sqrt(d), window: null, entries });
          spans.forEach(({ from, to }, g) => {
            const length = layer.heads[g].length;
            const s = scores[l][g];
            const p = probs[g];
            for (let t = t0; t < t1; t++) {
              const inv = this.options.plus ? 1 / norms[l][t] : 1;
              for (let j = 0; j < group; j++) {
                const row = ((t - t0) * group + j) * length;
                const w = wov?.[g][j];
                for (let i = from; i < to; i++) {
                  const v = w ? p[row + i] * inv * w[i - from] : p[row + i];
                  if (t === 0 && j === 0) s[i] = v;
                  else if (v > s[i]) s[i] = v;
                }
              }
            }
          });
        }
      });
    });
  }

  score(view: LayerView): Float32Array[] {
    return this.preparedFor(view).scores[view.layer];
  }

  select(view: LayerView): Int32Array[] {
    return this.preparedFor(view).kept[view.layer];
  }

  private preparedFor(view: LayerView): PreparedSelection {
    return preparedFor(this.prepared, view, 'kvzip scores by re-reading the context: it runs in a CompressionSession (its prepare step), not as another press\'s scorer');
  }
}

/**
 * KVzip+: per KV head, per query head of its group, ‖W_o·v‖₂ of each chunk entry's value, W_o that query head's
 * block of the layer's output projection ([hidden × headDim] columns of [hidden × numHeads·headDim]).
 */
function outputNorms(ctx: CompressionContext, layer: number, spans: { from: number; to: number }[]): Float64Array[][] {
  const { model, cache } = ctx;
  const c = model.config;
  const b = model.backend;
  const d = c.headDim;
  const group = c.numHeads / c.numKvHeads;
  const w = b.read(model.outputProjection(layer));
  const hidden = w.length / (c.numHeads * d);
  return spans.map(({ from, to }, g) => {
    const n = to - from;
    const values = cache.layers[layer].heads[g].values(from, n);
    return Array.from({ length: group }, (_, j) => {
      const qh = g * group + j;
      const block = new Float32Array(hidden * d);
      for (let r = 0; r < hidden; r++) block.set(w.subarray(r * c.numHeads * d + qh * d, r * c.numHeads * d + (qh + 1) * d), r * d);
      const out = new Float64Array(n);
      if (n === 0) return out;
      const y = b.read(b.linear(b.upload([n, d], values), b.upload([hidden, d], block)));
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let r = 0; r < hidden; r++) s += y[i * hidden + r] ** 2;
        out[i] = Math.sqrt(s);
      }
      return out;
    });
  });
}
