/**
 * KVzip and KVCompose (the reconstruction group): their pieces by hand (repeat prompt, chunks, selection across
 * heads, KVCompose's composite tokens), then both presses on a fixture model against a direct f64 re-computation
 * of kvpress's rule (the repeat or second run on a copy of the full cache, softmax over the entries the rule names,
 * kvpress's aggregation and selection), and the framework around them (the cache rolled back, errors).
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { AttentionObserver } from '../../src/backend/backend.js';
import type { KVCache } from '../../src/cache/kv-cache.js';
import { AttendError } from '../../src/errors.js';
import { prefill } from '../../src/generate/prefill.js';
import { TextTokenizer } from '../../src/io/tokenizer.js';
import { type LoadedModel, loadModel } from '../../src/models/load.js';
import { type CausalLM, newCache, withHooks } from '../../src/models/model.js';
import { KVCOMPOSE_DEFAULTS, KVComposePress, type KVComposeOptions, kvcomposeSelect } from '../../src/presses/kvcompose.js';
import { KVZIP_DEFAULTS, KVZIP_FIRST_PROMPT, KVZIP_LATER_PROMPT, KVzipPress, type KVzipOptions, kvzipChunks, kvzipPrompt } from '../../src/presses/kvzip.js';
import type { Press } from '../../src/presses/press.js';
import { createPress } from '../../src/presses/registry.js';
import { keepHighest, reread } from '../../src/presses/reread.js';
import { CompressionSession } from '../../src/presses/runner.js';
import { PARITY_DIR } from '../helpers/fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const lm = loadModel(join(PARITY_DIR, 'llama-gqa-tied'));
const C = lm.config;
const GROUP = C.numHeads / C.numKvHeads;
const ids = Array.from({ length: 40 }, (_, i) => (i * 53 + 7) % C.vocabSize);
const tmp = mkdtempSync(join(tmpdir(), 'attend-reconstruction-'));

/** A model with a context, and its chat template's prefix and suffix as text (read off the template by hand). */
interface Fixture {
  name: string;
  lm: LoadedModel;
  ids: number[];
  prefix: string;
  suffix: string;
}
const GQA: Fixture = { name: 'llama-gqa-tied', lm, ids, prefix: '<|bos|><|user|>', suffix: '<|eos|><|assistant|>' };
/** Qwen3's per-head q/k norms, a chat_template.jinja. */
function qwen3(): Fixture {
  const q = loadModel(join(PARITY_DIR, 'qwen3-norm'));
  return { name: 'qwen3-norm', lm: q, ids: Array.from({ length: 36 }, (_, i) => (i * 31 + 5) % q.config.vocabSize), prefix: '<|user|>\n', suffix: '<|eos|>\n<|assistant|>\n' };
}
/** The bundled model: 8 layers, so that layers compete for KVCompose's budget. */
function mini(): Fixture {
  const m = loadModel(join(ROOT, 'models', 'attend-mini'));
  const text = 'In the beginning God created the heaven and the earth. And the earth was without form, and void; and darkness was upon the face of the deep.';
  return { name: 'attend-mini', lm: m, ids: m.tokenizer.encode(text).slice(0, 32), prefix: '<|endoftext|><|user|>\n', suffix: '\n<|assistant|>\n' };
}

after(() => rmSync(tmp, { recursive: true, force: true }));

const arr = (x: ArrayLike<number>) => Array.from(x);
const keptPositions = (cache: KVCache) => cache.layers.map((l) => l.heads.map((h) => arr(h.positions)));

/** Prefills `ids` under `press` (compressed once at the end, or after every chunk) and returns the cache and session. */
function run(press: Press, ratio: number, opts: { chunkSize?: number; during?: 'prefill' | 'chunks'; model?: CausalLM; fx?: Fixture } = {}) {
  const { lm, ids } = opts.fx ?? GQA;
  const model = opts.model ?? lm.model;
  const cache = newCache(lm.config);
  const session = new CompressionSession({ press, budget: { ratio }, during: opts.during ?? 'prefill' }, model, cache);
  const logits = prefill(model, cache, ids, { chunkSize: opts.chunkSize ?? 16, observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, ids.length) });
  return { cache, session, logits };
}

// ---------------------------------------------------------------- the pieces

test('kvzip prompt: the chat template split around a dummy message, as kvpress does', () => {
  // attend-mini: "<|endoftext|><|user|>\n" + message + "\n" + "<|assistant|>\n".
  const mini = TextTokenizer.load(join(ROOT, 'models', 'attend-mini'));
  const p = kvzipPrompt(mini);
  const enc = (s: string) => mini.encode(s, { addSpecialTokens: false });
  assert.equal(p.prefixLength, enc('<|endoftext|><|user|>\n').length);
  assert.equal(p.prefixLength, 3);
  assert.deepEqual(p.suffix, enc('\n<|assistant|>\n'));
  assert.deepEqual(p.first, enc('\n\nRepeat the previous context exactly.'));
  assert.deepEqual(p.later, enc('\n\nRepeat the part of the previous context exactly, starting with'));
  // The fixture's template writes no newlines: "<|bos|><|user|>" + message + "<|eos|><|assistant|>".
  const fixture = kvzipPrompt(lm.tokenizer);
  assert.equal(fixture.prefixLength, lm.tokenizer.encode('<|bos|><|user|>', { addSpecialTokens: false }).length);
  assert.deepEqual(fixture.suffix, lm.tokenizer.encode('<|eos|><|assistant|>', { addSpecialTokens: false }));
  // Without a chat template: no prefix, a newline as the suffix.
  const dir = mkdtempSync(join(tmp, 'bare-'));
  copyFileSync(join(PARITY_DIR, 'llama-gqa-tied', 'tokenizer.json'), join(dir, 'tokenizer.json'));
  const none = TextTokenizer.load(dir);
  assert.equal(none.chatTemplate, undefined);
  assert.deepEqual(kvzipPrompt(none), { prefixLength: 0, suffix: none.encode('\n', { addSpecialTokens: false }), first: none.encode(KVZIP_FIRST_PROMPT, { addSpecialTokens: false }), later: none.encode(KVZIP_LATER_PROMPT, { addSpecialTokens: false }) });
});

test('kvzip chunks: the context after the prefix, each chunk behind its prompt, the suffix, then itself', () => {
  const tokens = Array.from({ length: 20 }, (_, i) => 100 + i);
  const prompt = { prefixLength: 2, suffix: [9], first: [1], later: [2, 3] };
  const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => 100 + a + i);
  assert.deepEqual(kvzipChunks(tokens, prompt, 8, 3), [
    { start: 2, end: 10, ids: [1, 9, ...range(2, 10)] },
    { start: 10, end: 18, ids: [2, 3, ...range(7, 10), 9, ...range(10, 18)] },
    { start: 18, end: 20, ids: [2, 3, ...range(15, 18), 9, ...range(18, 20)] },
  ]);
  // One chunk when the context fits (kvpress's chunk_size 2048); no postfix quoted with 0.
  assert.deepEqual(kvzipChunks(tokens, prompt, 2048, 8), [{ start: 2, end: 20, ids: [1, 9, ...range(2, 20)] }]);
  assert.deepEqual(kvzipChunks(tokens, prompt, 10, 0)[1], { start: 12, end: 20, ids: [2, 3, 9, ...range(12, 20)] });
  // Nothing past the prefix: nothing to repeat.
  assert.deepEqual(kvzipChunks(tokens.slice(0, 2), prompt, 8, 3), []);
});

test('keepHighest: the best scores over all heads at once, ties to the earlier head and entry', () => {
  const heads = [Float32Array.from([0.5, 0.1, 0.9]), Float32Array.from([0.2]), Float32Array.from([0.5, 0.7])];
  assert.deepEqual(keepHighest(heads, 3).map(arr), [[0, 2], [], [1]]);
  // 0.5 twice for the fourth place: head 0's.
  assert.deepEqual(keepHighest(heads, 4).map(arr), [[0, 2], [], [0, 1]]);
  assert.deepEqual(keepHighest([Float32Array.from([1, 1]), Float32Array.from([1])], 2).map(arr), [[0, 1], []]);
  assert.deepEqual(keepHighest(heads, 0).map(arr), [[], [], []]);
  assert.deepEqual(keepHighest(heads, 99).map(arr), [[0, 1, 2], [0], [0, 1]]);
});

/** kvcomposeSelect on task[l][qh] (query heads `group` to a KV head), positions 0…n−1 in every head. */
function selectOf(group: number, task: number[][][], options: Partial<KVComposeOptions>, total: number, norms?: number[][][]) {
  const heads = task[0].length / group;
  const positions = task.map(() => Array.from({ length: heads }, () => Int32Array.from(task[0][0], (_, i) => i)));
  const out = kvcomposeSelect(task.map((l) => l.map((h) => Float32Array.from(h))), positions, { ...KVCOMPOSE_DEFAULTS, ...options }, total, norms?.map((l) => l.map((h) => Float32Array.from(h))));
  return { scores: out.scores.map((l) => l.map(arr)), kept: out.kept.map((l) => l.map(arr)) };
}

test('kvcompose composite tokens by hand: group mean, mean across heads, ranks, layer 0 raised, structured counts', () => {
  // 2 layers × 1 KV head × 2 query heads, 4 entries. Group means: layer 0 [0.3, 0.2, 0.1, 0], layer 1 [0.05, 0.4, 0.35, 0.1].
  const task = [
    [
      [0.4, 0.2, 0.2, 0],
      [0.2, 0.2, 0, 0],
    ],
    [
      [0.1, 0.4, 0.3, 0.2],
      [0, 0.4, 0.4, 0],
    ],
  ];
  // With one head, the mean across heads doubles every score.
  const a = selectOf(2, task, {}, 4);
  a.scores.flat().forEach((s, k) => [[0.6, 0.4, 0.2, 0], [0.1, 0.8, 0.7, 0.2]][k].forEach((e, i) => assert.ok(Math.abs(s[i] - e) < 1e-6, `${s[i]} vs ${e}`)));
  // Composites: layer 1 sorted [0.8, 0.7, 0.2, 0.1]; layer 0 sorted [0.6, 0.4, 0.2, 0] raised to [0.8, 0.7, 0.2, 0.1].
  // The best 4 of 8: 0.8, 0.8, 0.7, 0.7 → 2 entries per layer; ties at 0.2 go to layer 0 with a 5th.
  assert.deepEqual(a.kept, [[[0, 1]], [[1, 2]]]);
  assert.deepEqual(selectOf(2, task, {}, 5).kept, [[[0, 1, 2]], [[1, 2]]]);
  // Without the raise layer 0 would lose its second entry: its own composites are lower. Lower bound 3: +1e9 for
  // the first 3 ranks of each layer, so both keep 3 of a budget of 6.
  assert.deepEqual(selectOf(2, task, { lowerBound: 3 }, 6).kept, [[[0, 1, 2]], [[1, 2, 3]]]);
  // agg-group max: layer 0 [0.4, 0.2, 0.2, 0], layer 1 [0.1, 0.4, 0.4, 0.2].
  const m = selectOf(2, task, { aggGroup: 'max', meanAcrossHeads: false }, 5);
  assert.deepEqual(m.scores, [[arr(Float32Array.from([0.4, 0.2, 0.2, 0]))], [arr(Float32Array.from([0.1, 0.4, 0.4, 0.2]))]]);
  // Composites: layer 1 [0.4, 0.4, 0.2, 0.1], layer 0 raised to the same: the best 5 are 0.4 × 4 and 0.2 (layer 0).
  assert.deepEqual(m.kept, [[[0, 1, 2]], [[1, 2]]]);
  // v-norm: × each entry's value norm before the rest.
  const v = selectOf(2, task, { vNorm: true, meanAcrossHeads: false }, 4, [[[1, 1, 10, 1]], [[1, 1, 1, 1]]]);
  assert.ok(Math.abs(v.scores[0][0][2] - 1) < 1e-6);
  assert.deepEqual(v.kept[0][0], [0, 2]);
});

test('kvcompose by hand: rank-wise mean over heads, the mean across heads, unstructured per-head counts', () => {
  // 1 layer, 2 KV heads of one query head each, 3 entries; then a second layer.
  const task = [
    [
      [0.9, 0.1, 0.2],
      [0.3, 0.3, 0.0],
    ],
    [
      [0.5, 0.4, 0.1],
      [0.2, 0.2, 0.2],
    ],
  ];
  // Mean across heads (per token): layer 0 [0.6, 0.2, 0.1], layer 1 [0.35, 0.3, 0.15].
  const s = selectOf(1, task, {}, 3);
  const want = [
    [
      [1.5, 0.3, 0.3],
      [0.9, 0.5, 0.1],
    ],
    [
      [0.85, 0.7, 0.25],
      [0.55, 0.5, 0.35],
    ],
  ];
  s.scores.forEach((l, li) => l.forEach((h, g) => h.forEach((x, i) => assert.ok(Math.abs(x - want[li][g][i]) < 1e-6, `${li}.${g}.${i}: ${x}`))));
  // Composites (rank-wise means): layer 0 [1.2, 0.4, 0.2], layer 1 [0.7, 0.6, 0.3] → layer 0 raised to [1.2, 0.6, 0.3].
  // Best 3: 1.2 (l0), 0.7 (l1), 0.6 (l0, the tie with l1's 0.6 to the earlier layer) → 2 and 1 per head.
  // Layer 0 head 0: [1.5, 0.3, 0.3] keeps 0 and the earlier 0.3.
  assert.deepEqual(s.kept, [
    [
      [0, 1],
      [0, 1],
    ],
    [[0], [0]],
  ]);
  // Unstructured: each head's sorted scores compete on their own, 6 of 12; layer 0 is not raised here.
  // Sorted: l0h0 [1.5, .3, .3], l0h1 [.9, .5, .1], l1h0 [.85, .7, .25], l1h1 [.55, .5, .35]; best 6: 1.5 .9 .85 .7 .55 .5(l0h1).
  assert.deepEqual(selectOf(1, task, { structured: false }, 6).kept, [
    [[0], [0, 1]],
    [[0, 1], [0]],
  ]);
});

test('reread: the second run sees its entries in the cache, then the cache is as before, no memory grown', () => {
  const cache = newCache(C);
  prefill(lm.model, cache, ids, { chunkSize: 40 });
  const copy = cache.clone();
  const before = cache.layers.flatMap((l) => l.heads.map((h) => h.capacity));
  let inside = 0;
  reread(lm.model, cache, ids.slice(0, 30), {}, () => (inside = cache.layers[1].heads[1].length));
  assert.equal(inside, 70);
  assert.equal(cache.nextPosition, 40);
  cache.layers.forEach((l, li) =>
    l.heads.forEach((h, g) => {
      const c = copy.layers[li].heads[g];
      assert.deepEqual(arr(h.positions), arr(c.positions));
      assert.deepEqual(arr(h.keys(0, h.length)), arr(c.keys(0, c.length)));
      assert.ok(h.capacity <= before[li * C.numKvHeads + g], `layer ${li} head ${g}: room for ${h.capacity}`);
    }),
  );
});

test('the seams: observers see each forward\'s token ids; attentionInput is what the q/k/v projections read', () => {
  const seen: [number[], number[]][] = [];
  const cache = newCache(C);
  const observer: AttentionObserver = { tokens: (t, p) => void seen.push([arr(t), arr(p)]) };
  lm.model.forward([5, 6, 7], cache, { observer });
  lm.model.forward([8], cache, { observer });
  assert.deepEqual(seen, [[[5, 6, 7], [0, 1, 2]], [[8], [3]]]);
  // A batch: each sequence's observer sees its own ids at its own positions.
  const a: number[][] = [];
  const b: number[][] = [];
  lm.model.forwardBatch([
    { ids: [1, 2], cache: newCache(C), observer: { tokens: (_, p) => void a.push(arr(p)) } },
    { ids: [3], cache, observer: { tokens: (t, p) => void b.push([...arr(t), ...arr(p)]) } },
  ]);
  assert.deepEqual([a, b], [[[0, 1]], [[3, 4]]]);
  // Read-only, the hook changes nothing; zeroed, layer 1's queries are 0 (no q bias): it sits before the projections.
  const plain = arr(lm.model.forward(ids.slice(0, 6), newCache(C)).f32);
  const rows: number[] = [];
  assert.deepEqual(arr(lm.model.forward(ids.slice(0, 6), newCache(C), { hooks: { attentionInput: (l, h) => void rows.push(l, h.shape[0], h.shape[1]) } }).f32), plain);
  assert.deepEqual(rows, [0, 6, C.hiddenSize, 1, 6, C.hiddenSize]);
  const q: Float32Array[] = [];
  const zeroed = lm.model.forward(ids.slice(0, 6), newCache(C), {
    observer: { queries: (l, x) => void (q[l] = x.slice()) },
    hooks: { attentionInput: (l, h) => (l === 1 ? lm.model.backend.upload(h.shape, new Float32Array(h.size)) : undefined) },
  });
  assert.ok(q[1].every((x) => x === 0) && q[0].some((x) => x !== 0));
  assert.notDeepEqual(arr(zeroed.f32), plain);
  // The model loaded from a directory carries its tokenizer; withHooks keeps it.
  assert.equal(lm.model.tokenizer, lm.tokenizer);
  assert.equal(withHooks(lm.model, {}).tokenizer, lm.tokenizer);
});

// ---------------------------------------------------------------- KVzip on the fixture model

/** The fixture's chat-template pieces and prompts, from the tokenizer directly. */
function fixturePrompt(fx: Fixture) {
  const enc = (s: string) => fx.lm.tokenizer.encode(s, { addSpecialTokens: false });
  return { prefix: enc(fx.prefix).length, suffix: enc(fx.suffix), first: enc(KVZIP_FIRST_PROMPT), later: enc(KVZIP_LATER_PROMPT) };
}

function softmax(x: number[]): number[] {
  const m = Math.max(...x);
  const e = x.map((v) => Math.exp(v - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

const dot = (a: Float32Array, ao: number, b: Float32Array, bo: number, d: number) => {
  let s = 0;
  for (let i = 0; i < d; i++) s += a[ao + i] * b[bo + i];
  return s;
};

/** Runs `run` over a copy of the full cache with an observer keeping each layer's queries (and attention-input norms). */
function rerun(lm: LoadedModel, full: KVCache, rep: number[]) {
  const C = lm.config;
  const copy = full.clone();
  const queries: Float32Array[] = [];
  const norms: number[][] = [];
  const observer: AttentionObserver = { queries: (l, q) => void (queries[l] = q.slice()) };
  lm.model.forward(rep, copy, {
    observer,
    hooks: {
      attentionInput(l, h) {
        const x = lm.model.backend.read(h);
        const w = C.hiddenSize;
        norms[l] = Array.from({ length: rep.length }, (_, r) => Math.sqrt(x.subarray(r * w, (r + 1) * w).reduce((a, v) => a + v * v, 0)));
      },
    },
  });
  return { copy, queries, norms };
}

/** kvpress's KVzip on the full 40-token cache, in f64: scores per layer and head, then the kept positions. */
function kvzipReference(fx: Fixture, o: KVzipOptions, ratio: number) {
  const { lm, ids } = fx;
  const C = lm.config;
  const GROUP = C.numHeads / C.numKvHeads;
  const { prefix, suffix, first, later } = fixturePrompt(fx);
  const n = ids.length;
  const d = C.headDim;
  const full = newCache(C);
  prefill(lm.model, full, ids);
  const scores = full.layers.map((l) => l.heads.map(() => Array.from({ length: n }, (_, p) => (p < o.sinks ? 1 : 0))));
  let prev: number[] = [];
  for (let start = prefix; start < n; start += o.chunk) {
    const end = Math.min(n, start + o.chunk);
    const chunk = ids.slice(start, end);
    const rep = [...(start === prefix ? first : [...later, ...prev.slice(-o.postfix)]), ...suffix, ...chunk];
    prev = chunk;
    const { copy, queries, norms } = rerun(lm, full, rep);
    const R = rep.length;
    const sink = Math.min(o.sinks, start);
    const cols = [...Array.from({ length: sink }, (_, i) => i), ...Array.from({ length: end - start }, (_, i) => start + i), ...Array.from({ length: R }, (_, i) => n + i)];
    copy.layers.forEach((layer, l) => {
      const wo = lm.model.backend.read(lm.model.outputProjection(l));
      layer.heads.forEach((head, g) => {
        const keys = head.keys(0, head.length);
        const values = head.values(0, head.length);
        const best = new Array(n).fill(-Infinity);
        for (let j = 0; j < GROUP; j++) {
          const qh = g * GROUP + j;
          // ‖W_o v‖ per entry for this query head.
          const wov = (c: number) => {
            let s = 0;
            for (let r = 0; r < C.hiddenSize; r++) {
              let y = 0;
              for (let i = 0; i < d; i++) y += wo[r * C.numHeads * d + qh * d + i] * values[c * d + i];
              s += y * y;
            }
            return Math.sqrt(s);
          };
          for (let t = 0; t < R; t++) {
            const visible = cols.filter((c) => c < n || c - n <= t);
            const p = softmax(visible.map((c) => dot(queries[l], (t * C.numHeads + qh) * d, keys, c * d, d) / Math.sqrt(d)));
            visible.forEach((c, k) => {
              if (c < start || c >= end) return;
              const v = o.plus ? (p[k] / norms[l][t]) * wov(c) : p[k];
              best[c] = Math.max(best[c], v);
            });
          }
        }
        for (let c = start; c < end; c++) scores[l][g][c] = best[c];
      });
    });
  }
  // Drop the lowest ⌊N·ratio⌋ over all layers and heads (or per layer): keep the rest, ties to the earlier.
  const select = (groups: number[][][], keep: number) => {
    const all = groups.flatMap((hs, l) => hs.flatMap((s, g) => s.map((v, p) => ({ l, g, p, v }))));
    all.sort((a, b) => b.v - a.v || a.l - b.l || a.g - b.g || a.p - b.p);
    return all.slice(0, keep);
  };
  const N = C.numLayers * C.numKvHeads * n;
  const chosen = o.layerwise
    ? scores.flatMap((hs, l) => select([hs], C.numKvHeads * n - Math.floor(C.numKvHeads * n * ratio)).map((e) => ({ ...e, l })))
    : select(scores, N - Math.floor(N * ratio));
  const kept = scores.map((hs) => hs.map(() => [] as number[]));
  for (const e of chosen) kept[e.l][e.g].push(e.p);
  return { scores, kept: kept.map((hs) => hs.map((k) => k.sort((a, b) => a - b))) };
}

/** The press's scores as the runner saw them (by position). */
function recordScores(press: Press, n: number): number[][][] {
  const out: number[][][] = [];
  const score = press.score.bind(press);
  press.score = (view) => {
    const s = score(view);
    out[view.layer] = view.cache.heads.map((h, g) => {
      const byPos = new Array(n).fill(NaN);
      h.positions.forEach((p, i) => (byPos[p] = s[g][i]));
      return byPos;
    });
    return s;
  };
  return out;
}

function assertClose(got: number[][][], want: number[][][], tol: number, what: string) {
  want.forEach((hs, l) =>
    hs.forEach((s, g) =>
      s.forEach((w, p) => assert.ok(Math.abs(got[l][g][p] - w) <= tol * Math.max(1, Math.abs(w)), `${what}: layer ${l} head ${g} position ${p}: ${got[l][g][p]} vs ${w}`)),
    ),
  );
}

for (const [label, o, ratio, load] of [
  ['defaults (one repeat)', {}, 0.5],
  ['chunks of 12 with their later prompts, ratio 0.75', { chunk: 12 }, 0.75],
  ['chunks of 16, 2 sinks, postfix 3', { chunk: 16, sinks: 2, postfix: 3 }, 0.5],
  ['layerwise, ratio 0.25', { chunk: 16, layerwise: true }, 0.25],
  ['KVzip+ normalization', { chunk: 16, plus: true }, 0.5],
  // kvpress drops ⌊N·ratio⌋ = ⌊52.8⌋ of N = 160 and keeps 108, not ⌊N·(1 − ratio)⌋ = 107.
  ['ratio 0.33 (kvpress rounding)', { chunk: 16 }, 0.33],
  ['Qwen3 (q/k norms, its own template), chunks of 12, KVzip+', { chunk: 12, plus: true }, 0.5, qwen3],
  ['attend-mini (8 layers), chunks of 16', { chunk: 16 }, 0.5, mini],
] as [string, Partial<KVzipOptions>, number, (() => Fixture)?][]) {
  test(`kvzip equals a direct f64 re-computation of kvpress's rule: ${label}`, () => {
    const fx = load?.() ?? GQA;
    const { ids } = fx;
    const C = fx.lm.config;
    const options = { ...KVZIP_DEFAULTS, ...o };
    const ref = kvzipReference(fx, options, ratio);
    const press = new KVzipPress(options);
    const scores = recordScores(press, ids.length);
    const { cache } = run(press, ratio, { fx });
    assertClose(scores, ref.scores, 1e-5, 'scores');
    assert.deepEqual(keptPositions(cache), ref.kept);
    const total = cache.entries();
    const N = C.numLayers * C.numKvHeads * ids.length;
    if (options.layerwise) cache.layers.forEach((l) => assert.equal(l.heads.reduce((s, h) => s + h.length, 0), C.numKvHeads * ids.length - Math.floor(C.numKvHeads * ids.length * ratio)));
    else assert.equal(total, N - Math.floor(N * ratio));
    // Across layers: the layers (and heads) keep different numbers.
    if (!options.layerwise) assert.ok(new Set(cache.layers.flatMap((l) => l.heads.map((h) => h.length))).size > 1, 'every head kept the same number');
  });
}

test('kvzip: the repeat is taken back: the cache continues at the context, the prefill logits are untouched, no memory left', () => {
  const plain = newCache(C);
  const want = prefill(lm.model, plain, ids, { chunkSize: 16 });
  const press = new KVzipPress({ ...KVZIP_DEFAULTS, chunk: 16 });
  const capacities: number[] = [];
  const cache = newCache(C);
  const session = new CompressionSession({ press, budget: { ratio: 0.5 } }, lm.model, cache);
  const logits = prefill(lm.model, cache, ids, {
    chunkSize: 16,
    observer: session.observer,
    afterChunk: (c, end) => {
      if (end === ids.length) capacities.push(...c.layers.flatMap((l) => l.heads.map((h) => h.capacity)));
      session.afterChunk(end, ids.length);
    },
  });
  assert.deepEqual(arr(logits), arr(want));
  assert.equal(cache.nextPosition, ids.length);
  cache.layers.flatMap((l) => l.heads).forEach((h, i) => {
    assert.ok(h.positions.every((p) => p < ids.length), 'a repeat entry stayed');
    assert.ok(h.capacity <= capacities[i], `head ${i}: room for ${h.capacity} entries, ${capacities[i]} before`);
  });
  // The question then runs on the compressed cache from position 40.
  lm.model.forward([3, 4], cache);
  assert.equal(cache.layers[0].heads[0].positions.at(-1), ids.length + 1);
});

// ---------------------------------------------------------------- KVCompose on the fixture model

/** kvpress's KVCompose on the full 40-token cache, in f64: the context again over it, aggregates, composites, counts. */
function kvcomposeReference(fx: Fixture, o: KVComposeOptions, ratio: number) {
  const { lm, ids } = fx;
  const C = lm.config;
  const GROUP = C.numHeads / C.numKvHeads;
  const n = ids.length;
  const d = C.headDim;
  const L = C.numLayers;
  const H = C.numKvHeads;
  const full = newCache(C);
  prefill(lm.model, full, ids);
  const { copy, queries } = rerun(lm, full, ids);
  const agg = (kind: string, xs: number[]) => (kind === 'max' ? Math.max(...xs) : xs.reduce((a, b) => a + b, 0) / xs.length);
  // task[l][qh][i]: over the second run's rows, of the probability of context entry i.
  const task = copy.layers.map((layer, l) =>
    Array.from({ length: C.numHeads }, (_, qh) => {
      const head = layer.heads[Math.floor(qh / GROUP)];
      const keys = head.keys(0, head.length);
      const rows = Array.from({ length: n }, (_, t) => softmax(Array.from({ length: n + t + 1 }, (_, c) => dot(queries[l], (t * C.numHeads + qh) * d, keys, c * d, d) / Math.sqrt(d))).slice(0, n));
      return Array.from({ length: n }, (_, i) => agg(o.aggTask, rows.map((r) => r[i])));
    }),
  );
  const scores = task.map((qs) => Array.from({ length: H }, (_, g) => Array.from({ length: n }, (_, i) => agg(o.aggGroup, qs.slice(g * GROUP, (g + 1) * GROUP).map((q) => q[i])))));
  if (o.vNorm) {
    full.layers.forEach((layer, l) =>
      layer.heads.forEach((head, g) => {
        const v = head.values(0, n);
        scores[l][g] = scores[l][g].map((s, i) => s * Math.hypot(...v.subarray(i * d, (i + 1) * d)));
      }),
    );
  }
  if (o.meanAcrossHeads) {
    for (const hs of scores) {
      const mean = Array.from({ length: n }, (_, i) => hs.reduce((a, s) => a + s[i], 0) / H);
      hs.forEach((s) => s.forEach((_, i) => (s[i] += mean[i])));
    }
  }
  const sortedDesc = (s: number[]) => [...s].sort((a, b) => b - a);
  const boost = (s: number[]) => s.map((x, r) => (r < o.lowerBound ? x + 1e9 : x));
  const perHead = scores.map((hs) => hs.map((s) => boost(sortedDesc(s))));
  const perLayer = scores.map((hs) => boost(Array.from({ length: n }, (_, r) => agg(o.aggHead, hs.map((s) => sortedDesc(s)[r])))));
  perLayer[0] = perLayer[0].map((_, r) => Math.max(...perLayer.map((c) => c[r])));
  const counts = (comp: number[][], keep: number) => {
    const all = comp.flatMap((c, k) => c.map((v, r) => ({ k, v, at: k * n + r })));
    all.sort((a, b) => b.v - a.v || a.at - b.at);
    const out = new Array(comp.length).fill(0);
    for (const e of all.slice(0, keep)) out[e.k]++;
    return out;
  };
  const layerCounts = counts(perLayer, Math.floor(L * n * (1 - ratio)));
  const headCounts = counts(perHead.flat(), Math.floor(L * H * n * (1 - ratio)));
  const kept = scores.map((hs, l) =>
    hs.map((s, g) => {
      const k = o.structured ? layerCounts[l] : headCounts[l * H + g];
      return s.map((v, i) => ({ v, i })).sort((a, b) => b.v - a.v || a.i - b.i).slice(0, k).map((e) => e.i).sort((a, b) => a - b);
    }),
  );
  return { scores, kept };
}

for (const [label, o, ratio, load] of [
  ['defaults (structured, max / mean / mean, mean across heads)', {}, 0.5],
  ['ratio 0.75', {}, 0.75],
  ['unstructured', { structured: false }, 0.5],
  ['mean over the queries, max over groups and heads, lower bound 8', { aggTask: 'mean', aggGroup: 'max', aggHead: 'max', lowerBound: 8 }, 0.75],
  ['value norms, no mean across heads', { vNorm: true, meanAcrossHeads: false }, 0.5],
  ['max over the heads (composites)', { aggHead: 'max' }, 0.5],
  ['Qwen3 (q/k norms)', {}, 0.5, qwen3],
  ['attend-mini (8 layers compete)', {}, 0.5, mini],
  ['attend-mini, max over the heads, ratio 0.75', { aggHead: 'max' }, 0.75, mini],
  ['attend-mini, unstructured', { structured: false }, 0.5, mini],
  // kvpress keeps ⌊layers·n·(1 − ratio)⌋: ⌊80·0.19999…⌋ = 15 in floating point, not 80 − ⌊80·0.8⌋ = 16.
  ['ratio 0.8 (kvpress rounding)', {}, 0.8],
  // ⌊160·0.67⌋ = 107 kept, not 160 − ⌊160·0.33⌋ = 108.
  ['unstructured, ratio 0.33', { structured: false }, 0.33],
] as [string, Partial<KVComposeOptions>, number, (() => Fixture)?][]) {
  test(`kvcompose equals a direct f64 re-computation of kvpress's rule: ${label}`, () => {
    const fx = load?.() ?? GQA;
    const { ids } = fx;
    const C = fx.lm.config;
    const options = { ...KVCOMPOSE_DEFAULTS, ...o };
    const ref = kvcomposeReference(fx, options, ratio);
    const press = new KVComposePress(options);
    const scores = recordScores(press, ids.length);
    const { cache } = run(press, ratio, { fx });
    assertClose(scores, ref.scores, 1e-5, 'scores');
    assert.deepEqual(keptPositions(cache), ref.kept);
    const lengths = cache.layers.map((l) => l.heads.map((h) => h.length));
    if (options.structured) {
      // Structured: the heads of a layer keep the same number; the layers differ, layer 0 the most.
      lengths.forEach((hs) => assert.equal(new Set(hs).size, 1));
      assert.equal(lengths.reduce((s, hs) => s + hs[0], 0), Math.floor(C.numLayers * ids.length * (1 - ratio)));
      assert.ok(lengths.every((hs) => hs[0] <= lengths[0][0]));
    } else assert.equal(cache.entries(), Math.floor(C.numLayers * C.numKvHeads * ids.length * (1 - ratio)));
    assert.equal(cache.nextPosition, ids.length);
  });
}

// ---------------------------------------------------------------- per-chunk compression, decoding, errors

test('per-chunk compression: each compression re-reads every token seen, over the entries left', () => {
  for (const press of [new KVzipPress({ ...KVZIP_DEFAULTS, chunk: 16 }), new KVComposePress()]) {
    const { cache, session } = run(press, 0.5, { chunkSize: 8, during: 'chunks' });
    assert.equal(session.stats.compressions, 5, press.name);
    assert.equal(cache.nextPosition, ids.length);
    const total = cache.layers.reduce((s, l) => s + (press.name === 'kvcompose' ? l.maxLength() : l.heads.reduce((a, h) => a + h.length, 0)), 0);
    assert.equal(total, (press.name === 'kvcompose' ? 1 : C.numKvHeads) * C.numLayers * 20, press.name);
    // Later chunks' entries were scored too: some are kept.
    assert.ok(cache.layers.some((l) => l.heads.some((h) => h.positions.some((p) => p >= 32))), press.name);
  }
});

test('kvzip and kvcompose take their options from the registry with kvpress defaults, and refuse bad ones', () => {
  const zip = createPress('kvzip', {}) as KVzipPress;
  assert.deepEqual(zip.options, { sinks: 4, layerwise: false, plus: false, chunk: 2048, postfix: 8 });
  assert.deepEqual((createPress('kvzip', { layerwise: 'true', 'kvzip-plus': '1', sinks: '0' }) as KVzipPress).options, { sinks: 0, layerwise: true, plus: true, chunk: 2048, postfix: 8 });
  const compose = createPress('kvcompose', {}) as KVComposePress;
  assert.deepEqual(compose.options, { structured: true, aggTask: 'max', aggGroup: 'mean', aggHead: 'mean', vNorm: false, meanAcrossHeads: true, lowerBound: 0 });
  const fails = (f: () => unknown, re: RegExp) => assert.throws(f, (e: Error) => e instanceof AttendError && re.test(e.message) && !e.message.includes('\n'));
  fails(() => createPress('kvcompose', { 'agg-task': 'median' }), /agg-task must be max or mean, got "median"/);
  fails(() => createPress('kvcompose', { 'agg-head': '' }), /agg-head must be max or mean/);
  fails(() => createPress('kvzip', { chunk: 0 }), /chunk must be a whole number ≥ 1/);
  fails(() => createPress('kvzip', { layerwise: 'maybe' }), /layerwise must be true or false/);
  fails(() => new KVzipPress({ ...KVZIP_DEFAULTS, postfix: -1 }), /postfix/);
  fails(() => new KVComposePress({ ...KVCOMPOSE_DEFAULTS, lowerBound: 1.5 }), /lower-bound/);
});

test('kvzip and kvcompose need their prepare step, the token ids, and (kvzip) a tokenizer', () => {
  const fails = (f: () => unknown, re: RegExp) => assert.throws(f, (e: Error) => e instanceof AttendError && re.test(e.message));
  // Without a tokenizer: a model assembled by hand.
  const m = lm.model;
  const bare: CausalLM = { config: m.config, backend: m.backend, forward: m.forward.bind(m), forwardBatch: m.forwardBatch.bind(m), makeCache: m.makeCache.bind(m), outputProjection: m.outputProjection.bind(m) };
  fails(() => run(new KVzipPress(), 0.5, { model: bare }), /kvzip builds its repeat prompt with the model's tokenizer/);
  // KVCompose needs none.
  assert.equal(run(new KVComposePress(), 0.5, { model: bare }).cache.entries(), C.numLayers * C.numKvHeads * 20);
  // Tokens that ran without the session's observer cannot be re-read.
  for (const press of [new KVzipPress(), new KVComposePress()]) {
    const cache = newCache(C);
    const session = new CompressionSession({ press, budget: { ratio: 0.5 } }, lm.model, cache);
    prefill(lm.model, cache, ids.slice(0, 8));
    fails(() => prefill(lm.model, cache, ids.slice(8), { observer: session.observer, afterChunk: (_, end) => session.afterChunk(8 + end, ids.length) }), /position 0 ran without its observer/);
    // Scored outside a session (as another press's scorer): refused.
    fails(() => press.score({ layer: 0, config: C, backend: lm.model.backend, cache: newCache(C).layers[0], seen: 0, keep: 0, ratio: 0.5, uniform: 0 }), /prepare step/);
  }
});

test('nothing to drop, nothing re-read: a budget the cache already fits runs no second forward', () => {
  for (const press of [new KVzipPress(), new KVComposePress()]) {
    let forwards = 0;
    const m = lm.model;
    const counting: CausalLM = { ...bind(m), tokenizer: m.tokenizer, forward: (a, b, c) => (forwards++, m.forward(a, b, c)) };
    const cache = newCache(C);
    const session = new CompressionSession({ press, budget: { tokens: 64 } }, counting, cache);
    prefill(counting, cache, ids, { chunkSize: 40, observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, ids.length) });
    assert.equal(forwards, 1, press.name);
    assert.equal(cache.entries(), C.numLayers * C.numKvHeads * ids.length);
  }
});

function bind(m: CausalLM): CausalLM {
  return { config: m.config, backend: m.backend, forward: m.forward.bind(m), forwardBatch: m.forwardBatch.bind(m), makeCache: m.makeCache.bind(m), outputProjection: m.outputProjection.bind(m) };
}
