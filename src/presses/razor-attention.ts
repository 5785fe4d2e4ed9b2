/**
 * RazorAttention (Tang et al. 2024, "RazorAttention: Efficient KV Cache Compression Through Retrieval Heads", arXiv
 * 2407.15891, ICLR 2025). The paper publishes no code; the head profile follows the authors' company's
 * implementations (Huawei msModelSlim RARopeCompressor; MindSpore Golden Stick razor_attention, whose deploy cell
 * DeployRACompressCell also compresses the cache), see heads/echo-induction.ts.
 *
 * Rule (the paper's Algorithm 1 for RoPE models, Sec. 3.3–3.4):
 *  - retrieval heads (the top 14% of KV heads by induction score and the top 1% by echo score, their union: the
 *    paper's shares, RETRIEVAL_SHARES) keep their whole cache;
 *  - every other KV head keeps its first `sinks` entries (N0 = 4: Algorithm 1's sink tokens; Golden Stick sink_size 4)
 *    and its most recent ones, and the entries between are dropped and folded into ONE compensation token: the mean
 *    key k̂ = (1/n_d) Σ_{m∈D} k_m and mean value v̂ = (1/n_d) Σ_{m∈D} v_m of the n_d dropped entries (Eq. 4), the keys
 *    as cached, after RoPE (Algorithm 1's input is the cache "after rotary transformation");
 *  - the compensation token attends as the n_d tokens it replaces (Eq. 5):
 *      Attn(q, {K, k̂}, {V, v̂}) = (n_d·e^{q·k̂} v̂ + Σ_{m∉D} e^{q·k_m} v_m) / (n_d·e^{q·k̂} + Σ_{m∉D} e^{q·k_m}).
 *    Algorithm 1 has non-retrieval heads "compute attention according to equation 5", distinct from the original
 *    attention of retrieval heads, which is what the n_d factor makes it.
 *
 * How the compensation token is stored (Attend's choice, the paper says nothing of a cache layout): it is an entry of
 * the head like any other, with its own key and value, in the slot of the last dropped entry, so it keeps that
 * entry's original position (between the sinks and the window, positions stay strictly ascending; every later query
 * sees it causally); the head's statistic ENTRY_LOG_WEIGHT (cache/head-memory.ts) holds log n_d, which attention adds
 * to its score, n_d·e^{q·k̂} in the softmax (the CPU kernel and attention/reference.ts). The dropped entries' memory
 * is freed (head.keep): a non-retrieval head holds sinks + 1 + window entries and 4 bytes more per entry for the log
 * weights. Compressed again (after every chunk with --press-during chunks, or while decoding), the old compensation
 * token is among the dropped entries with its weight, so the new one is the mean of every token dropped so far
 * (weights add up) and the count stays exact. Golden Stick's deploy puts the mean token between the sinks and the
 * window too, but attends it with weight 1 (plain paged attention); `compensate=0` drops the entries without a token
 * (the paper's ablation).
 *
 * The budget (Attend's choice; the paper's buffer is L_h = max(S0, N/C) for a compression ratio C of the
 * non-retrieval heads): the runner's entries per head (`--ratio R`: ⌊N·(1 − R)⌋; `--budget T`) count every entry a
 * non-retrieval head holds, sinks and compensation token included, as Golden Stick's local_capacity does (sinks,
 * token and window within 256). With `budget=cache` (the default) the whole cache holds the budget, so that methods
 * compare at equal real KV bytes: the retrieval heads' full caches are paid for by the others, each non-retrieval
 * head keeping L = ⌊(H·keep − R·n)/(H − R)⌋ entries (H KV heads, R of them retrieval heads holding n entries each);
 * with `budget=heads` each non-retrieval head keeps the budget itself (the paper's N/C) and the retrieval heads come on
 * top. `min-window` is the paper's S0, a least L (0 by default: the paper's S0 is sized for 64K–1M-token models and
 * could not be checked here); a non-retrieval head keeps at least its compensation token (L ≥ 1), so when the
 * retrieval heads alone hold more than the budget the cache holds H − R entries more than it.
 *
 * The head profile: `heads=FILE`, the JSON that `attend heads --probe echo` (or induction) writes (details.
 * retrievalHeads, the union by KV head), or Golden Stick's retrieval-head JSON ({"layer": [KV heads], …}); without a
 * file, the echo/induction probe runs once on the model at the first compression, on `probe-length` random ids from
 * `probe-low`, repeated 4 times (heads/echo-induction.ts; the official 2500 ids from 10000 where they fit the model's
 * context and vocabulary, else 64 ids from 1000, the input docs/heads.md found to show attend-mini's induction heads,
 * each cut to fit), seed 0, with the shares `echo-share` and `induction-share` (the paper's 1% and 14%).
 */
import { existsSync, readFileSync } from 'node:fs';
import { kernelOf } from '../attention/kernels/index.js';
import { ENTRY_LOG_WEIGHT, type HeadMemory } from '../cache/head-memory.js';
import { AttendError, check } from '../errors.js';
import { prefill } from '../generate/prefill.js';
import { EchoInductionRecorder, RETRIEVAL_SHARES, repeatedRandomTokens, retrievalHeads } from '../heads/echo-induction.js';
import type { ModelConfig } from '../models/config.js';
import { type CausalLM, contextLength } from '../models/model.js';
import type { CompressionContext, LayerView, Press } from './press.js';

export interface RazorOptions {
  /** Initial entries every non-retrieval head keeps (N0). */
  sinks: number;
  /** Least entries a non-retrieval head keeps (the paper's S0). */
  minWindow: number;
  /** 'cache': the whole cache holds the budget; 'heads': each non-retrieval head does. */
  budget: 'cache' | 'heads';
  /** Fold the dropped entries into a compensation token (Eq. 4–5); false: drop them. */
  compensate: boolean;
  /** Retrieval-head file ('' : profile the model at the first compression). */
  heads: string;
  echoShare: number;
  inductionShare: number;
  /** Random ids per copy of the probe (0: the official 2500 where they fit, else 64). */
  probeLength: number;
  /** Lowest id of the probe (0: the official 10000 where it fits, else 1000). */
  probeLow: number;
}

export const RAZOR_DEFAULTS: RazorOptions = {
  sinks: 4,
  minWindow: 0,
  budget: 'cache',
  compensate: true,
  heads: '',
  echoShare: RETRIEVAL_SHARES.echo,
  inductionShare: RETRIEVAL_SHARES.induction,
  probeLength: 0,
  probeLow: 0,
};

/** Per layer, per KV head: whether it is a retrieval head. */
export type RetrievalMap = boolean[][];

/** The official probe input, or the short one for a small model, cut to the model's context and vocabulary. */
export function probeInput(config: Pick<ModelConfig, 'vocabSize'> & Parameters<typeof contextLength>[0], length = 0, low = 0): { length: number; low: number } {
  const repeats = 4;
  const room = Math.floor((contextLength(config) - 1) / repeats);
  const official = 2500 * repeats + 1 <= contextLength(config) && 10000 + 2500 < config.vocabSize;
  const l = length > 0 ? length : official ? 2500 : Math.min(64, room);
  const lo = low > 0 ? low : official ? 10000 : Math.max(0, Math.min(1000, config.vocabSize - l - 1));
  return { length: l, low: lo };
}

/** Retrieval heads of `model` by the echo/induction probe (one repeated-random-token prefill on a fresh cache). */
export function profileRetrievalHeads(model: CausalLM, o: Pick<RazorOptions, 'echoShare' | 'inductionShare' | 'probeLength' | 'probeLow'>): RetrievalMap {
  const c = model.config;
  // No share, no retrieval head: nothing to probe.
  if (o.echoShare === 0 && o.inductionShare === 0) return emptyMap(c);
  const { length, low } = probeInput(c, o.probeLength, o.probeLow);
  const input = repeatedRandomTokens(c.vocabSize, c.bosTokenId, { length, low, repeats: 4, seed: 0 });
  check(input.ids.length <= contextLength(c),
    `razor-attention: the probe's ${input.ids.length} tokens exceed the model's context of ${contextLength(c)} (lower probe-length, or give heads=FILE)`);
  const recorder = new EchoInductionRecorder(c, input);
  prefill(model, model.makeCache(), input.ids, { chunkSize: 512, observer: recorder });
  const s = recorder.scores();
  const found = retrievalHeads(s.echo, s.induction, c.numHeads / c.numKvHeads, { echo: o.echoShare, induction: o.inductionShare });
  const map = emptyMap(c);
  for (const h of found) map[h.layer][h.kvHead] = true;
  return map;
}

/** A retrieval-head file: `attend heads` JSON (details.retrievalHeads) or Golden Stick's {"layer": [KV heads]}. */
export function readRetrievalHeads(path: string): { layer: number; kvHead: number }[] {
  if (!existsSync(path)) throw new AttendError(`razor-attention: ${path} does not exist (the retrieval-head file)`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new AttendError(`razor-attention: ${path} is not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  const bad = (why: string) => new AttendError(`razor-attention: ${path}: ${why}`);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad('expected a JSON object');
  const obj = json as Record<string, unknown>;
  const details = obj.details as Record<string, unknown> | undefined;
  const whole = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x >= 0;
  if (details && 'retrievalHeads' in details) {
    const list = details.retrievalHeads;
    if (!Array.isArray(list)) throw bad('details.retrievalHeads must be a list');
    return list.map((h, i) => {
      const r = h as Record<string, unknown>;
      if (!whole(r?.layer) || !whole(r?.kvHead)) throw bad(`details.retrievalHeads[${i}] needs whole numbers layer and kvHead`);
      return { layer: r.layer as number, kvHead: r.kvHead as number };
    });
  }
  if ('scores' in obj) throw bad('head scores without details.retrievalHeads (write them with attend heads --probe echo or induction)');
  return Object.entries(obj).flatMap(([key, heads]) => {
    if (!/^\d+$/.test(key)) throw bad(`"${key}" is not a layer index (Golden Stick's format: {"layer": [KV heads]})`);
    if (!Array.isArray(heads) || !heads.every(whole)) throw bad(`layer ${key}: expected a list of KV head indices`);
    return (heads as number[]).map((kvHead) => ({ layer: Number(key), kvHead }));
  });
}

function emptyMap(c: Pick<ModelConfig, 'numLayers' | 'numKvHeads'>): RetrievalMap {
  return Array.from({ length: c.numLayers }, () => new Array<boolean>(c.numKvHeads).fill(false));
}

/**
 * What one non-retrieval head keeps of its `n` entries under `slots` (≥ 1): its first sinks, the compensation token's
 * slot (the last dropped entry) and the most recent entries; `from`/`to` bound the entries folded into the token
 * (the slot's own among them), `slot` is the token's index among the kept. Null when the head holds no more than `slots`.
 */
export function headLayout(n: number, slots: number, sinks: number, compensate: boolean): { kept: Int32Array; slot: number; from: number; to: number } | null {
  if (n <= slots) return null;
  const token = compensate ? 1 : 0;
  const s = Math.max(0, Math.min(sinks, slots - token));
  const recent = Math.max(0, slots - token - s);
  const kept: number[] = [];
  for (let i = 0; i < s; i++) kept.push(i);
  if (compensate) kept.push(n - recent - 1);
  for (let i = n - recent; i < n; i++) kept.push(i);
  return { kept: Int32Array.from(kept), slot: compensate ? s : -1, from: s, to: n - recent };
}

/**
 * The compensation token of the entries [from, to) of a head: their mean key and value, each entry counted by the
 * number of tokens it stands for (exp of its ENTRY_LOG_WEIGHT; 1 without), and that total count.
 */
export function compensationToken(head: HeadMemory, from: number, to: number): { key: Float32Array; value: Float32Array; count: number } {
  const d = head.headDim;
  const keys = head.keys(from, to - from);
  const values = head.values(from, to - from);
  const logWeights = head.hasStat?.(ENTRY_LOG_WEIGHT) ? head.stat(ENTRY_LOG_WEIGHT) : null;
  const k = new Float64Array(d);
  const v = new Float64Array(d);
  let count = 0;
  for (let i = 0; i < to - from; i++) {
    const m = logWeights ? Math.exp(logWeights[from + i]) : 1;
    count += m;
    for (let x = 0; x < d; x++) {
      k[x] += m * keys[i * d + x];
      v[x] += m * values[i * d + x];
    }
  }
  return { key: Float32Array.from(k, (x) => x / count), value: Float32Array.from(v, (x) => x / count), count };
}

export class RazorAttentionPress implements Press {
  readonly name = 'razor-attention';
  readonly needs = {};
  private map?: RetrievalMap;
  /** Where the retrieval heads came from, and for a probe the model it ran on. */
  private source: 'file' | 'given' | CausalLM | undefined;
  private readonly fromFile?: { layer: number; kvHead: number }[];
  /** Per KV head of the layer being compressed, what select chose (null: the head keeps everything). */
  private layouts: (ReturnType<typeof headLayout>)[] = [];
  /** Per KV head of the layer being compressed: its compensation token, made by beforeKeep for afterKeep. */
  private pending: ({ slot: number; key: Float32Array; value: Float32Array; count: number } | null)[] = [];

  constructor(readonly options: RazorOptions = RAZOR_DEFAULTS) {
    const o = options;
    check(o.budget === 'cache' || o.budget === 'heads', `razor-attention: option budget must be cache or heads, got "${o.budget}"`);
    for (const [name, v] of [['echo-share', o.echoShare], ['induction-share', o.inductionShare]] as const) {
      check(v >= 0 && v <= 1, `razor-attention: option ${name} must be in [0, 1], got ${v}`);
    }
    if (o.heads) {
      this.fromFile = readRetrievalHeads(o.heads);
      this.source = 'file';
    }
  }

  /** The retrieval heads, per layer and KV head (after the first compression, or `use`). */
  get retrieval(): RetrievalMap | undefined {
    return this.map;
  }

  /** Sets the retrieval heads directly (tests, or a profile made elsewhere). */
  use(map: RetrievalMap): this {
    this.map = map;
    this.source = 'given';
    return this;
  }

  prepare(context: CompressionContext): void {
    const c = context.model.config;
    if (this.options.compensate) {
      const kernel = kernelOf(c.attentionKernel).spec.name;
      check(kernel === 'softmax', `razor-attention: the compensation token weighs n·exp(q·k) in a softmax; the ${kernel} kernel has none (use compensate=0)`);
    }
    if (this.source === 'file' && !this.map) {
      const map = emptyMap(c);
      for (const { layer, kvHead } of this.fromFile!) {
        check(layer < c.numLayers && kvHead < c.numKvHeads,
          `razor-attention: ${this.options.heads} names KV head ${layer}.${kvHead}; the model has ${c.numLayers} layers × ${c.numKvHeads} KV heads`);
        map[layer][kvHead] = true;
      }
      this.map = map;
    } else if (this.source !== 'file' && this.source !== 'given' && this.source !== context.model) {
      this.map = profileRetrievalHeads(context.model, this.options);
      this.source = context.model;
    }
    check(this.map!.length === c.numLayers && this.map!.every((row) => row.length === c.numKvHeads),
      `razor-attention: the retrieval heads are for another shape than the model's ${c.numLayers} layers × ${c.numKvHeads} KV heads`);
  }

  /** Entries each non-retrieval head keeps in this compression (≥ 1). */
  private slots(view: LayerView): number {
    const map = this.requireMap();
    const heads = map.length * map[0].length;
    const retrieval = map.flat().filter(Boolean).length;
    let slots = view.keep;
    if (this.options.budget === 'cache' && retrieval < heads) {
      // Retrieval heads hold every token seen.
      slots = Math.floor((heads * view.keep - retrieval * view.seen) / (heads - retrieval));
    }
    return Math.max(1, this.options.minWindow, slots);
  }

  private requireMap(): RetrievalMap {
    if (!this.map) throw new AttendError('razor-attention: no retrieval heads yet (the runner calls prepare before scoring)');
    return this.map;
  }

  score(view: LayerView): Float32Array[] {
    const map = this.requireMap();
    const slots = this.slots(view);
    return view.cache.heads.map((head, h) => {
      const scores = new Float32Array(head.length).fill(1);
      if (map[view.layer][h]) return scores;
      const layout = headLayout(head.length, slots, this.options.sinks, this.options.compensate);
      if (!layout) return scores;
      scores.fill(0);
      for (const i of layout.kept) scores[i] = 1;
      return scores;
    });
  }

  select(view: LayerView): Int32Array[] {
    const map = this.requireMap();
    const slots = this.slots(view);
    this.layouts = view.cache.heads.map((head, h) => (map[view.layer][h] ? null : headLayout(head.length, slots, this.options.sinks, this.options.compensate)));
    return view.cache.heads.map((head, h) => this.layouts[h]?.kept ?? Int32Array.from({ length: head.length }, (_, i) => i));
  }

  beforeKeep(view: LayerView): void {
    this.pending = view.cache.heads.map((head, h) => {
      const layout = this.layouts[h];
      if (!this.options.compensate || !layout) return null;
      if (!head.writeKeys) throw new AttendError("razor-attention: this backend's cache cannot write keys (HeadMemory.writeKeys), which the compensation token needs");
      return { slot: layout.slot, ...compensationToken(head, layout.from, layout.to) };
    });
    this.layouts = [];
  }

  afterKeep(view: LayerView): boolean {
    let changed = false;
    view.cache.heads.forEach((head, h) => {
      const token = this.pending[h];
      if (!token) return;
      head.writeKeys!([token.slot], token.key);
      head.writeValues([token.slot], token.value);
      // One token needs no weight (log 1 = 0, what a head without the statistic reads).
      const logCount = Math.log(token.count);
      if (logCount !== 0 || head.hasStat?.(ENTRY_LOG_WEIGHT)) head.stat(ENTRY_LOG_WEIGHT)[token.slot] = logCount;
      changed = true;
    });
    this.pending = [];
    return changed;
  }
}
