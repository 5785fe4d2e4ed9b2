/**
 * The decoding group's presses (kvpress's DecodingPress, PrefillDecodingPress, CompressionRatioDecodingPress,
 * DMSPress, SimLayerKVPress) and the runner's budget-free plans: hand-worked layers, and sessions on the parity
 * checkpoint where each result is recomputed directly (key norms in f64, attention in f64, RoPE by composition).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AttentionObserver } from '../../src/backend/backend.js';
import type { HeadMemory } from '../../src/cache/head-memory.js';
import { hostHead } from '../../src/cache/head-store.js';
import type { KVCache } from '../../src/cache/kv-cache.js';
import { planFrom } from '../../src/cli/press-flags.js';
import { AttendError } from '../../src/errors.js';
import { prefill } from '../../src/generate/prefill.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import type { Budget } from '../../src/presses/budget.js';
import { CompressionRatioDecodingPress } from '../../src/presses/compression-ratio-decoding.js';
import { DecodingPress, targetCompressionRatio } from '../../src/presses/decoding.js';
import { DMSPress } from '../../src/presses/dms.js';
import { KnormPress } from '../../src/presses/knorm.js';
import { PrefillDecodingPress } from '../../src/presses/prefill-decoding.js';
import type { LayerView, Press } from '../../src/presses/press.js';
import { createPress, pressEntry, PRESSES, resolveOptions } from '../../src/presses/registry.js';
import { rotate, unrotated } from '../../src/presses/rotary.js';
import { type CompressionPlan, CompressionSession } from '../../src/presses/runner.js';
import { SimLayerKVPress } from '../../src/presses/simlayerkv.js';
import { SnapKVPress } from '../../src/presses/snapkv.js';
import { argmax } from '../helpers/argmax.js';
import { runCli } from '../helpers/cli.js';
import { PARITY_DIR } from '../helpers/fixtures.js';
import { layerOf, queriesOf, randomRows, tinyConfig, viewOf } from '../helpers/press-view.js';

const MODEL = join(PARITY_DIR, 'llama-gqa-tied');
const lm = loadModel(MODEL);
const { numHeads, headDim } = lm.config;
const ids = Array.from({ length: 40 }, (_, i) => (i * 53 + 7) % lm.config.vocabSize);
const PROMPT = ids.length;

const lengths = (cache: KVCache) => cache.layers.map((l) => l.heads.map((h) => h.length));
const positions = (cache: KVCache) => cache.layers.map((l) => l.heads.map((h) => Array.from(h.positions)));
const userError = (pattern: RegExp) => (e: unknown) => e instanceof AttendError && pattern.test(e.message) && !e.message.includes('\n');

/** Key norms in f64 of every entry, by layer and head, keyed by position. */
function norms(cache: KVCache): Map<number, number>[][] {
  return cache.layers.map((l) =>
    l.heads.map((h) => {
      const keys = h.keys(0, h.length);
      const out = new Map<number, number>();
      for (let i = 0; i < h.length; i++) {
        let s = 0;
        for (let c = 0; c < h.headDim; c++) s += keys[i * h.headDim + c] ** 2;
        out.set(h.positions[i], Math.sqrt(s));
      }
      return out;
    }),
  );
}

/** The positions of the `k` smallest norms, ascending (knorm's rule). */
function smallest(byPosition: Map<number, number>, k: number): number[] {
  return [...byPosition.entries()].sort((a, b) => a[1] - b[1] || a[0] - b[0]).slice(0, k).map(([p]) => p).sort((a, b) => a - b);
}

interface RunOptions {
  budget?: Budget;
  during?: 'prefill' | 'chunks';
  decode?: CompressionPlan['decode'];
  steps: number;
  chunk?: number;
  /** Wraps the session's observer (e.g. to record every query). */
  tee?: (observer: AttentionObserver) => AttentionObserver;
  /** Called after each decoding step's forward, before the session may compress (the cache at its fullest). */
  beforeCompress?: (cache: KVCache, step: number) => void;
  afterCompress?: (cache: KVCache, step: number) => void;
}

/** A prefill of the 40 ids, then `steps` greedy decoding steps, compressed as the plan says. */
function run(press: Press, o: RunOptions): { cache: KVCache; session: CompressionSession; afterPrefill: number[][][] } {
  const cache = newCache(lm.config);
  const session = new CompressionSession({ press, budget: o.budget, during: o.during ?? 'prefill', decode: o.decode }, lm.model, cache);
  const observer = o.tee ? o.tee(session.observer) : session.observer;
  let logits = prefill(lm.model, cache, ids, { chunkSize: o.chunk, observer, afterChunk: (_, end) => session.afterChunk(end, PROMPT) });
  const afterPrefill = positions(cache);
  for (let s = 1; s <= o.steps; s++) {
    logits = lm.model.forward([argmax(logits)], cache, { lastOnly: true, observer }).f32;
    o.beforeCompress?.(cache, s);
    session.afterDecodeStep();
    o.afterCompress?.(cache, s);
  }
  return { cache, session, afterPrefill };
}

/** An observer that also keeps a copy of every query row it sees, per layer and position. */
function recordQueries(store: Map<number, Float32Array>[]): (next: AttentionObserver) => AttentionObserver {
  const width = numHeads * headDim;
  return (next) => ({
    accumulate: next.accumulate,
    tokens: next.tokens?.bind(next),
    observe: next.observe?.bind(next),
    queries(layer, q, pos) {
      next.queries?.(layer, q, pos);
      store[layer] ??= new Map();
      pos.forEach((p, i) => store[layer].set(p, q.slice(i * width, (i + 1) * width)));
    },
  });
}

/** A scorer that records the views it is given and scores every entry 0 (so the first `keep` stay). */
class SpyScorer implements Press {
  readonly name = 'spy';
  readonly views: LayerView[] = [];
  constructor(readonly needs: Press['needs'] = { queryWindow: Infinity }) {}
  score(view: LayerView): Float32Array[] {
    this.views.push({ ...view, queries: view.queries && { data: view.queries.data.slice(), positions: view.queries.positions.slice() } });
    return view.cache.heads.map((h) => new Float32Array(h.length));
  }
}

// ---------------------------------------------------------------- DecodingPress

test("targetCompressionRatio replays kvpress's search: int(length·(1 − ratio)) is the target", () => {
  assert.equal(targetCompressionRatio(10, 10), 0);
  assert.equal(targetCompressionRatio(7, 20), 0);
  let searched = 0;
  for (let length = 2; length <= 1500; length++) {
    for (const target of [1, 2, 3, Math.floor(length / 3), Math.floor(length / 2), length - 1]) {
      if (target < 1 || target >= length) continue;
      const ratio = targetCompressionRatio(length, target);
      assert.equal(Math.trunc(length * (1 - ratio)), target, `${length} → ${target}`);
      if (ratio !== 1 - target / length) searched++;
    }
  }
  // The first guess 1 − target/length rounds below the target often enough for the search to matter.
  assert.ok(searched > 100, `the search moved the ratio ${searched} times`);
});

test('decoding: the prompt stays whole; every interval steps each head is brought to exactly the target, the smallest key norms', () => {
  const before: Map<number, number>[][][] = [];
  const { cache, session, afterPrefill } = run(new DecodingPress(new KnormPress(), { interval: 3, targetSize: 12, bufferSize: 256 }), {
    decode: { every: 3 },
    steps: 7,
    beforeCompress: (c, s) => (before[s] = norms(c)),
    afterCompress: (c, s) => {
      const want = s % 3 === 0 ? 12 : s < 3 ? PROMPT + s : 12 + (s % 3);
      assert.deepEqual(lengths(c).flat(), new Array(4).fill(want), `step ${s}`);
      if (s % 3 === 0) assert.deepEqual(positions(c), before[s].map((l) => l.map((h) => smallest(h, 12))), `step ${s}: knorm's top 12`);
    },
  });
  assert.deepEqual(afterPrefill, positions(newCacheLike(PROMPT)), 'the prefill compressed nothing');
  assert.equal(session.stats.compressions, 2);
  assert.equal(cache.nextPosition, PROMPT + 7);
});

/** Positions 0…n−1 in every head of every layer. */
function newCacheLike(n: number): KVCache {
  const c = newCache(lm.config);
  prefill(lm.model, c, ids.slice(0, n));
  return c;
}

test('decoding: the scorer reads the queries since the last compression (at most buffer + 1), turned to the current RoPE', () => {
  for (const bufferSize of [256, 1]) {
    const spy = new SpyScorer();
    const store: Map<number, Float32Array>[] = [];
    run(new DecodingPress(spy, { interval: 3, targetSize: 30, bufferSize }), { decode: { every: 3 }, steps: 6, tee: recordQueries(store) });
    const layers = lm.config.numLayers;
    assert.equal(spy.views.length, 2 * layers, 'one view per layer per compression');
    spy.views.forEach((view, n) => {
      const last = PROMPT + (n < layers ? 2 : 5);
      const want = Array.from({ length: Math.min(3, bufferSize + 1) }, (_, i) => last - Math.min(3, bufferSize + 1) + 1 + i);
      assert.deepEqual(Array.from(view.queries!.positions), want, `buffer ${bufferSize}, compression ${n}`);
      // Each recorded post-RoPE row taken back to pre-RoPE at its own position, then rotated to the latest.
      const width = numHeads * headDim;
      want.forEach((p, i) => {
        const row = unrotated(lm.config, store[view.layer].get(p)!, numHeads, Int32Array.of(p));
        rotate(lm.config, row, numHeads, Int32Array.of(last));
        const got = view.queries!.data.subarray(i * width, (i + 1) * width);
        const diff = Math.max(...row.map((x, c) => Math.abs(x - got[c])));
        assert.ok(diff < 1e-5, `row at ${p} turned to ${last}: |Δ| ${diff}`);
      });
      const length = n < layers ? PROMPT + 3 : 30 + 3;
      assert.equal(view.keep, 30);
      assert.equal(view.ratio, targetCompressionRatio(length, 30));
      assert.equal(view.decoding, true);
    });
  }
});

test('decoding: a layer within the target is not scored, and no budget is taken', () => {
  const spy = new SpyScorer();
  const { cache, session } = run(new DecodingPress(spy, { interval: 2, targetSize: 100, bufferSize: 256 }), { decode: { every: 2 }, steps: 4 });
  assert.equal(spy.views.length, 0);
  assert.equal(session.stats.compressions, 0);
  assert.deepEqual(lengths(cache).flat(), new Array(4).fill(PROMPT + 4));
  assert.throws(() => new CompressionSession({ press: new DecodingPress(new KnormPress()), budget: { ratio: 0.5 } }, lm.model, newCache(lm.config)), userError(/sets its own size: it takes no budget/));
  assert.throws(() => new CompressionSession({ press: new KnormPress() }, lm.model, newCache(lm.config)), userError(/knorm needs a budget/));
  // A budget of null (JSON's None, as the oracle fixture writes it) is no budget.
  new CompressionSession({ press: new DecodingPress(new KnormPress()), budget: null as unknown as undefined }, lm.model, newCache(lm.config));
});

test('decoding: a scorer whose window is longer than the buffered steps is an error, as kvpress asserts', () => {
  const press = new DecodingPress(new SnapKVPress({ window: 4, kernel: 3 }), { interval: 2, targetSize: 10, bufferSize: 256 });
  assert.throws(() => run(press, { decode: { every: 2 }, steps: 2 }), userError(/reads the last 4 queries, but only 2 decoding steps are buffered/));
  // With 4 buffered steps SnapKV runs: its window (the last 4 entries) is kept.
  const { cache } = run(new DecodingPress(new SnapKVPress({ window: 4, kernel: 3 }), { interval: 4, targetSize: 10, bufferSize: 256 }), { decode: { every: 4 }, steps: 4 });
  for (const head of cache.layers.flatMap((l) => l.heads)) {
    assert.equal(head.length, 10);
    assert.deepEqual(Array.from(head.positions.subarray(6)), [40, 41, 42, 43]);
  }
});

test('compression-ratio-decoding: back to max(1, int(seen·(1 − ratio))) entries per head', () => {
  const { cache } = run(new CompressionRatioDecodingPress(new KnormPress(), { targetRatio: 0.75, interval: 2, bufferSize: 256 }), {
    decode: { every: 2 },
    steps: 4,
    afterCompress: (c, s) => {
      const want = s === 1 ? PROMPT + 1 : s === 2 ? Math.trunc((PROMPT + 2) * 0.25) : s === 3 ? 11 : Math.trunc((PROMPT + 4) * 0.25);
      assert.deepEqual(lengths(c).flat(), new Array(4).fill(want), `step ${s}`);
    },
  });
  assert.equal(cache.layers[0].heads[0].length, 11);
  const none = run(new CompressionRatioDecodingPress(new KnormPress(), { targetRatio: 0, interval: 1, bufferSize: 256 }), { decode: { every: 1 }, steps: 2 });
  assert.equal(none.session.stats.compressions, 0, 'ratio 0 keeps everything');
  assert.throws(() => createPress('compression-ratio-decoding', { 'target-compression-ratio': 1 }), userError(/target-compression-ratio must be in \[0, 1\)/));
  const tiny = new CompressionRatioDecodingPress(new KnormPress(), { targetRatio: 0.99, interval: 1, bufferSize: 0 });
  assert.equal(tiny.target({ seen: 50 } as LayerView), 1, 'never below 1');
});

// ---------------------------------------------------------------- PrefillDecodingPress

test('prefill-decoding: the prefill press under the budget, then the decoding press to its target', () => {
  const snap = () => new SnapKVPress({ window: 4, kernel: 5 });
  const alone = run(snap(), { budget: { ratio: 0.5 }, steps: 0 });
  const before: Map<number, number>[][][] = [];
  const both = run(new PrefillDecodingPress(snap(), new DecodingPress(new KnormPress(), { interval: 2, targetSize: 8, bufferSize: 256 })), {
    budget: { ratio: 0.5 },
    decode: { every: 2 },
    steps: 4,
    beforeCompress: (c, s) => (before[s] = norms(c)),
    afterCompress: (c, s) => {
      assert.deepEqual(lengths(c).flat(), new Array(4).fill(s % 2 === 0 ? 8 : s === 1 ? 21 : 9), `step ${s}`);
      if (s % 2 === 0) assert.deepEqual(positions(c), before[s].map((l) => l.map((h) => smallest(h, 8))));
    },
  });
  assert.deepEqual(both.afterPrefill, positions(alone.cache), "the prefill is SnapKV's");
});

test("prefill-decoding: the decoding press's buffer starts after the prompt, which the prefill press compressed", () => {
  const spy = new SpyScorer();
  run(new PrefillDecodingPress(new KnormPress(), new DecodingPress(spy, { interval: 3, targetSize: 10, bufferSize: 256 })), {
    budget: { ratio: 0.5 },
    decode: { every: 3 },
    steps: 3,
  });
  assert.equal(spy.views.length, lm.config.numLayers);
  for (const view of spy.views) {
    assert.deepEqual(Array.from(view.queries!.positions), [40, 41, 42]);
    assert.equal(view.ratio, targetCompressionRatio(20 + 3, 10), 'the prefill left 20 per head');
  }
});

test('prefill-decoding: a layer within the budget is not scored by the prefill press (chunks)', () => {
  let scored = 0;
  const counting: Press = { name: 'count', needs: {}, score: (v) => (scored++, new KnormPress().score(v)) };
  run(new PrefillDecodingPress(counting, new DecodingPress(new KnormPress())), { budget: { tokens: 20 }, during: 'chunks', chunk: 8, steps: 0 });
  // Chunks end at 8, 16, 24, 32, 40: the layer holds more than 20 from the third on, in both layers.
  assert.equal(scored, 3 * lm.config.numLayers);
});

// ---------------------------------------------------------------- DMS

/** Scores each entry by its key's first component, and records how many entries each call saw. */
class FirstComponent implements Press {
  readonly name = 'first';
  readonly needs = {};
  readonly seen: number[][] = [];
  score(view: LayerView): Float32Array[] {
    this.seen.push(view.cache.heads.map((h) => h.length));
    return view.cache.heads.map((h) => {
      const k = h.keys(0, h.length);
      return Float32Array.from({ length: h.length }, (_, i) => k[i * h.headDim]);
    });
  }
}

/** Appends one entry with key = value = [x, 0] at `position`. */
function push(head: HeadMemory, x: number, position: number): void {
  hostHead(head).append(Float32Array.of(x, 0), Float32Array.of(x, 0), Int32Array.of(position), 0, 2);
}

function compressLayer(press: Press, view: LayerView): number[][] {
  const kept = press.select!(view, press.score(view));
  view.cache.heads.forEach((h, i) => h.keep(kept[i]));
  return view.cache.heads.map((h) => Array.from(h.positions));
}

test('dms: tokens that left the sliding window are evicted below the threshold, for good; new tokens are scored alone', () => {
  const config = tinyConfig(2, 2, 2);
  const a = [0.9, 0.1, 0.7, 0.2, 0.6, 0.0, 0.3, 0.8];
  const b = [0.1, 0.9, 0.1, 0.9, 0.1, 0.9, 0.1, 0.9];
  const cache = layerOf([a.map((x) => [x, 0]), b.map((x) => [x, 0])]);
  const scorer = new FirstComponent();
  const press = new DMSPress(scorer, { threshold: 0.5, window: 3, decoding: true });
  // Prefill of 8: positions below 8 − 3 = 5 are judged.
  assert.deepEqual(compressLayer(press, viewOf(config, cache, 8)), [[0, 2, 4, 5, 6, 7], [1, 3, 5, 6, 7]]);
  // A decoding step adds position 8: position 5 leaves the window (0.0 in head 0 goes, 0.9 in head 1 stays).
  push(cache.heads[0], 0.2, 8);
  push(cache.heads[1], 0.95, 8);
  assert.deepEqual(compressLayer(press, viewOf(config, cache, 6, { seen: 9, decoding: true })), [[0, 2, 4, 6, 7, 8], [1, 3, 5, 6, 7, 8]]);
  // Position 6 leaves next: 0.3 goes from head 0, 0.1 from head 1; kept entries are never judged again.
  cache.heads.forEach((h) => push(h, 0.9, 9));
  assert.deepEqual(compressLayer(press, viewOf(config, cache, 6, { seen: 10, decoding: true })), [[0, 2, 4, 7, 8, 9], [1, 3, 5, 7, 8, 9]]);
  assert.deepEqual(scorer.seen, [[8, 8], [1, 1], [1, 1]], 'the prefill whole, then each new token alone');
});

test('dms: decoding off leaves decoding alone; the threshold compares in f32; heads keep what the content gives', () => {
  const config = tinyConfig(1, 1, 2);
  const scorer = new FirstComponent();
  const cache = layerOf([[0.7, 0.69, 0.71, 0.1, 0.1].map((x) => [x, 0])]);
  // 0.7 as f32 (0.699999988) is not below float32(0.7): kept, as torch compares.
  const press = new DMSPress(scorer, { threshold: 0.7, window: 2, decoding: false });
  assert.deepEqual(compressLayer(press, viewOf(config, cache, 5)), [[0, 2, 3, 4]]);
  push(cache.heads[0], 0, 5);
  assert.deepEqual(compressLayer(press, viewOf(config, cache, 5, { seen: 6, decoding: true })), [[0, 2, 3, 4, 5]]);
  assert.equal(scorer.seen.length, 1, 'not scored while decoding');
});

test('dms with knorm on the model: kept = the window + every older token with −‖k‖ ≥ threshold, prefill and decoding', () => {
  const window = 6;
  const full = newCacheLike(PROMPT);
  // Midway across the widest gap between neighbouring norms in the middle half: no norm near the threshold.
  const all = norms(full).flat().flatMap((h) => [...h.values()]).sort((x, y) => x - y);
  let at = Math.floor(all.length / 4);
  for (let i = at; i < (3 * all.length) / 4; i++) if (all[i + 1] - all[i] > all[at + 1] - all[at]) at = i;
  const threshold = -(all[at] + all[at + 1]) / 2;
  const seen: Map<number, number>[][] = norms(full);
  const { cache, afterPrefill } = run(new DMSPress(new KnormPress(), { threshold, window, decoding: true }), {
    decode: { every: 1 },
    steps: 5,
    beforeCompress: (c) => norms(c).forEach((l, i) => l.forEach((h, j) => h.forEach((n, p) => seen[i][j].set(p, n)))),
  });
  const expect = (last: number) =>
    seen.map((l) => l.map((h) => [...h.keys()].filter((p) => p >= last + 1 - window || (p < last + 1 - window && -h.get(p)! >= threshold)).sort((x, y) => x - y)));
  const restrict = (ps: number[][][], below: number) => ps.map((l) => l.map((h) => h.filter((p) => p < below)));
  assert.deepEqual(afterPrefill, restrict(expect(PROMPT - 1), PROMPT));
  const kept = afterPrefill.flat().reduce((s, h) => s + h.length, 0);
  assert.ok(kept > 4 * window && kept < 4 * PROMPT, `the threshold evicts some (${kept} kept)`);
  assert.deepEqual(positions(cache), expect(PROMPT + 4));
  assert.ok(new Set(lengths(cache).flat()).size > 1, `heads keep different numbers: ${lengths(cache)}`);
});

test('dms in a session: its scorer is offered every entry at ratio 0, as kvpress scores with compression_ratio 0', () => {
  const spy = new SpyScorer({});
  run(new DMSPress(spy, { threshold: 0, window: 4, decoding: true }), { decode: { every: 1 }, steps: 1 });
  assert.deepEqual(spy.views.map((v) => [v.keep, v.ratio, v.decoding ?? false]), [
    ...new Array(lm.config.numLayers).fill([PROMPT, 0, false]),
    ...new Array(lm.config.numLayers).fill([1, 0, true]),
  ]);
});

// ---------------------------------------------------------------- SimLayerKV

/** SimLayerKV's lazy score recomputed in f64: softmax of q·k/√d over visible keys, the chosen columns summed. */
function lazyReference(keys: number[][], queries: number[][], qPos: number[], heads: number, d: number, o: { nLast: number; nRecent: number; nInitial: number }): number {
  const n = keys.length;
  const cols = [...Array(o.nInitial).keys(), ...Array.from({ length: o.nRecent }, (_, i) => n - o.nLast - o.nRecent + i)];
  let total = 0;
  queries.forEach((qAll, t) => {
    for (let h = 0; h < heads; h++) {
      const q = qAll.slice(h * d, (h + 1) * d);
      const s = keys.map((k, i) => (i <= qPos[t] ? k.reduce((acc, x, c) => acc + x * q[c], 0) / Math.sqrt(d) : -Infinity));
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const z = e.reduce((x, y) => x + y);
      for (const c of cols) total += e[c] / z;
    }
  });
  return total / (queries.length * heads);
}

test('simlayerkv: the lazy score equals a direct recomputation; a lazy layer keeps the initial and n-recent − n-last recent entries', () => {
  const d = 4;
  const config = tinyConfig(2, 1, d);
  const keys = randomRows(12, d, 3).map((r) => r.map((x) => 3 * x));
  const queries = randomRows(2, 2 * d, 4).map((r) => r.map((x) => 3 * x));
  const o = { nLast: 2, nRecent: 4, nInitial: 2 };
  const view = () => viewOf(config, layerOf([keys]), 12, { queries: queriesOf(queries, [10, 11]) });
  const want = lazyReference(keys, queries, [10, 11], 2, d, o);
  const score = new SimLayerKVPress({ lazyThreshold: 0.5, ...o }).lazyScore(view());
  assert.ok(Math.abs(score - want) < 1e-6, `${score} vs ${want}`);
  const kept = (threshold: number, v = view()) => compressLayer(new SimLayerKVPress({ lazyThreshold: threshold, ...o }), v)[0];
  assert.deepEqual(kept(want - 1e-4), [0, 1, 10, 11]);
  assert.deepEqual(kept(want + 1e-4), [...Array(12).keys()]);
  assert.deepEqual(kept(1), [...Array(12).keys()], 'threshold 1 never compresses');
  // n-initial + n-recent + n-last = 8 entries or fewer: nothing is compressed.
  const short = viewOf(config, layerOf([keys.slice(0, 8)]), 8, { queries: queriesOf(queries, [6, 7]) });
  assert.deepEqual(kept(0, short), [...Array(8).keys()]);
  assert.deepEqual(kept(0, viewOf(config, layerOf([keys.slice(0, 9)]), 9, { queries: queriesOf(queries, [7, 8]) })), [0, 1, 7, 8]);
});

test('simlayerkv: threshold 1 never compresses, even where the f32 probabilities sum past 1', () => {
  const config = tinyConfig(2, 1, 4);
  // Entries 0, 2 and 3 share all the attention (f32(1/3) each, 1.00000003 in all); 1 and the last get none.
  const keys = [[0, 0, 0, 0], [-1000, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [-1000, 0, 0, 0]];
  const view = () => viewOf(config, layerOf([keys]), 5, { queries: queriesOf([[1, 0, 0, 0, 1, 0, 0, 0]], [4]) });
  const o = { nLast: 1, nRecent: 2, nInitial: 1 };
  assert.ok(new SimLayerKVPress({ lazyThreshold: 0.5, ...o }).lazyScore(view()) > 1);
  assert.deepEqual(compressLayer(new SimLayerKVPress({ lazyThreshold: 1, ...o }), view())[0], [0, 1, 2, 3, 4]);
  assert.deepEqual(compressLayer(new SimLayerKVPress({ lazyThreshold: 0.99, ...o }), view())[0], [0, 4]);
});

test('simlayerkv on the model: lazy layers at threshold 0 keep 4 + 7 entries per head, none at the default threshold', () => {
  const { cache } = run(createPress('simlayerkv', { 'lazy-threshold': 0, 'n-recent': 8 }), { steps: 0 });
  for (const head of cache.layers.flatMap((l) => l.heads)) assert.deepEqual(Array.from(head.positions), [0, 1, 2, 3, 33, 34, 35, 36, 37, 38, 39]);
  const lazyNever = run(createPress('simlayerkv', { 'n-recent': 8 }), { steps: 0 });
  assert.equal(lazyNever.session.stats.compressions, 0);
  assert.throws(() => createPress('simlayerkv', { 'lazy-threshold': 1.5 }), userError(/lazy-threshold must be in \[0, 1\]/));
  assert.throws(() => createPress('simlayerkv', { 'n-recent': 1 }), userError(/n-recent must be a whole number > n-last \(1\)/));
  assert.throws(() => createPress('simlayerkv', { 'n-last': 0 }), userError(/n-last must be a whole number ≥ 1/));
});

// ---------------------------------------------------------------- registry, plans, CLI

const MINE = ['decoding', 'prefill-decoding', 'compression-ratio-decoding', 'dms', 'simlayerkv'];

test('registry: the group is registered; sizesItself as the presses say; kvpress defaults; bad options are one-line errors', () => {
  for (const name of MINE) {
    const entry = pressEntry(name);
    const press = entry.create(resolveOptions(entry, name === 'dms' ? { threshold: -3 } : {}));
    assert.equal(entry.sizesItself ?? false, press.sizesItself ?? false, name);
  }
  assert.ok(MINE.every((n) => PRESSES.some((p) => p.name === n)));
  const defaults = (name: string) => Object.fromEntries(Object.entries(pressEntry(name).options).map(([k, s]) => [k, s.default]));
  assert.deepEqual(defaults('decoding'), { scorer: 'knorm', 'compression-interval': 512, 'hidden-states-buffer-size': 256, 'target-size': 2048 });
  assert.deepEqual(defaults('simlayerkv'), { 'lazy-threshold': 1, 'n-last': 1, 'n-recent': 1024, 'n-initial': 4 });
  assert.equal(defaults('dms')['sliding-window-size'], 128);
  assert.equal(defaults('compression-ratio-decoding')['target-compression-ratio'], 0.5);
  assert.throws(() => createPress('dms', {}), userError(/press dms needs --press-opt threshold=…/));
  assert.throws(() => createPress('dms', { threshold: -1, scorer: 'simlayerkv' }), userError(/dms: the scorer must be a press that scores entries; simlayerkv sets its own size/));
  assert.throws(() => createPress('decoding', { 'compression-interval': 0 }), userError(/decoding: compression-interval .* must be a whole number ≥ 1, got 0/));
  assert.throws(() => createPress('decoding', { 'target-size': 0 }), userError(/target-size .* must be a whole number ≥ 1/));
  assert.throws(() => createPress('dms', { threshold: 'x' }), userError(/option threshold must be a number/));
  assert.deepEqual(pressEntry('dms').decode?.(resolveOptions(pressEntry('dms'), { threshold: 0, decoding: 'true' })), { every: 1 });
  assert.equal(pressEntry('dms').decode?.(resolveOptions(pressEntry('dms'), { threshold: 0 })), undefined);
  assert.deepEqual(pressEntry('prefill-decoding').decode?.(resolveOptions(pressEntry('prefill-decoding'), { 'compression-interval': 7 })), { every: 7 });
});

test('plans from CLI flags: a press that sets its own size takes no --ratio or --budget, the others need one', () => {
  const dms = planFrom({ press: 'dms', pressOpt: ['threshold=-3', 'decoding=1'] })!;
  assert.equal(dms.budget, undefined);
  assert.deepEqual(dms.decode, { every: 1 });
  assert.equal(planFrom({ press: 'simlayerkv' })!.budget, undefined);
  assert.deepEqual(planFrom({ press: 'decoding' })!.decode, { every: 512 });
  assert.deepEqual(planFrom({ press: 'prefill-decoding', ratio: 0.5 })!.budget, { ratio: 0.5 });
  assert.throws(() => planFrom({ press: 'dms', ratio: 0.5, pressOpt: ['threshold=-3'] }), userError(/--press dms sets its own size: it takes no --ratio or --budget/));
  assert.throws(() => planFrom({ press: 'decoding', budget: 10 }), userError(/sets its own size/));
  assert.throws(() => planFrom({ press: 'prefill-decoding' }), userError(/needs exactly one of --ratio or --budget/));
});

test('attend generate --press dms --press-opt threshold=… runs without --ratio', () => {
  const args = ['generate', '--model', MODEL, '--prompt', 'In the beginning God created the heaven and the earth', '--max-tokens', '4', '--stats'];
  const r = runCli([...args, '--press', 'dms', '--press-opt', 'threshold=0', '--press-opt', 'sliding-window-size=2', '--press-opt', 'decoding=true']);
  assert.equal(r.status, 0, r.stderr);
  const bad = runCli([...args, '--press', 'dms', '--press-opt', 'threshold=0', '--ratio', '0.5']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /sets its own size/);
});
