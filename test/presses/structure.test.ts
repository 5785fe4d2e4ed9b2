/**
 * The "structure" presses and the cache operations they need: HeadMemory.writeValues / renumber, KVCache.renumber
 * (key rerotation: positions 0…n−1, the sequence continues at n, original positions kept), the recorder following a
 * renumbering, and key-rerotation, FINCH and merging, each on hand-worked cases or a direct f64 re-computation of
 * its rule, and end to end on a small checkpoint.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { applyRope, inverseFrequencies, ropeTables } from '../../src/attention/rope.js';
import { HeadStore } from '../../src/cache/head-store.js';
import { KVCache, LayerCache, ORIGINAL_POSITION } from '../../src/cache/kv-cache.js';
import { prefill } from '../../src/generate/prefill.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import { FinchPress, FINCH_DEFAULTS } from '../../src/presses/finch.js';
import { KeyRerotationPress } from '../../src/presses/key-rerotation.js';
import { KnormPress } from '../../src/presses/knorm.js';
import { MergingPress, MERGING_DEFAULTS, mergeValues, quantile } from '../../src/presses/merging.js';
import { PressRecorder } from '../../src/presses/observe.js';
import { type Press, topK } from '../../src/presses/press.js';
import { PyramidKVPress } from '../../src/presses/pyramidkv.js';
import { createPress } from '../../src/presses/registry.js';
import { rotate, unrotated } from '../../src/presses/rotary.js';
import { type CompressionPlan, CompressionSession } from '../../src/presses/runner.js';
import { PARITY_DIR } from '../helpers/fixtures.js';
import { layerOf, queriesOf, randomRows, tinyConfig, viewOf } from '../helpers/press-view.js';

const lm = loadModel(join(PARITY_DIR, 'llama-gqa-tied'));
const config = lm.config;
const ids = Array.from({ length: 24 }, (_, i) => (i * 53 + 7) % config.vocabSize);
const question = [11, 200, 37, 5, 90];

function near(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  assert.ok(worst <= tol, `${what}: max |Δ| ${worst} > ${tol}`);
}

/** A cache holding `ids`, compressed once at the end of the prefill by `press` under `budget`. */
function compressed(press: Press, budget: CompressionPlan['budget'] = { ratio: 0.5 }, prompt = ids): { cache: KVCache; session: CompressionSession } {
  const cache = newCache(config);
  const session = new CompressionSession({ press, budget, during: 'prefill' }, lm.model, cache);
  prefill(lm.model, cache, prompt, { observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, prompt.length) });
  return { cache, session };
}

const lastLogits = (cache: KVCache, tokens: number[]) => {
  const out = lm.model.forward(tokens, cache).f32;
  return out.slice(out.length - config.vocabSize);
};

// ---------------------------------------------------------------------------------------------- cache operations

test('HeadStore.writeValues overwrites the values of the listed entries only, in f32 and bf16; bad indices are refused', () => {
  for (const dtype of ['f32', 'bf16'] as const) {
    const head = new HeadStore(2, dtype);
    const rows = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    head.append(rows, rows, Int32Array.from([0, 3, 4, 9]), 0, 2);
    head.writeValues([1, 3], Float32Array.from([0.5, -1.5, 2.25, 8]));
    assert.deepEqual(Array.from(head.values(0, 4)), [1, 2, 0.5, -1.5, 5, 6, 2.25, 8], dtype);
    assert.deepEqual(Array.from(head.keys(0, 4)), Array.from(rows), `${dtype}: keys untouched`);
    assert.throws(() => head.writeValues([3, 1], new Float32Array(4)), /ascending, unique and below 4/);
    assert.throws(() => head.writeValues([4], new Float32Array(2)), /ascending, unique and below 4/);
    assert.throws(() => head.writeValues([0], new Float32Array(3)), /3 values for 1 rows of 2/);
  }
});

test('HeadStore.renumber sets the positions and turns each key by its own table row, as applyRope does', () => {
  for (const dtype of ['f32', 'bf16'] as const) {
    const d = 8;
    const keys = Float32Array.from(randomRows(3, d, 5).flat());
    const head = new HeadStore(d, dtype);
    head.append(keys, keys, Int32Array.from([2, 5, 6]), 0, d);
    const before = head.keys(0, 3).slice();
    const inv = Float32Array.from([1, 0.1]); // half = 2: dims 0, 1 pair with 2, 3; dims 4…7 do not turn (partial)
    const tables = ropeTables(inv, Int32Array.from([-2, -4, -4]));
    head.renumber([0, 1, 2], tables);
    const want = before.slice();
    applyRope(want, 3, 1, d, tables);
    near(head.keys(0, 3), want, dtype === 'f32' ? 0 : 0.02, `${dtype} keys`);
    assert.deepEqual(Array.from(head.keys(0, 3)).filter((_, i) => i % d >= 4), Array.from(before).filter((_, i) => i % d >= 4));
    assert.deepEqual(Array.from(head.positions), [0, 1, 2]);
    assert.deepEqual(Array.from(head.values(0, 3)), Array.from(before), `${dtype}: values untouched`);
    assert.throws(() => head.renumber([0, 1]), /2 positions for 3 entries/);
    assert.throws(() => head.renumber([0, 2, 2]), /strictly ascending/);
    assert.throws(() => head.renumber([0, 1, 2], ropeTables(Float32Array.from([1, 1, 1, 1, 1]), Int32Array.from([0, 0, 0]))), /do not fit/);
  }
});

/** Prefills `ids` into a fresh cache and keeps, in every head, the entries `pick(layer, head)` (same count each). */
function prefilledAndKept(pick: (layer: number, head: number) => number[], prompt = ids): KVCache {
  const cache = newCache(config);
  prefill(lm.model, cache, prompt);
  cache.layers.forEach((l, layer) => l.heads.forEach((h, head) => h.keep(pick(layer, head))));
  return cache;
}

test('KVCache.renumber: entries at 0…n−1 with their pre-RoPE keys unchanged, the next token at n, original positions kept', () => {
  const pick = (layer: number, head: number) => Array.from({ length: 24 }, (_, i) => i).filter((i) => (i * (layer + 2) + head) % 5 > 1).slice(0, 10);
  const cache = prefilledAndKept(pick);
  const old = cache.layers.map((l) => l.heads.map((h) => ({ keys: h.keys(0, h.length).slice(), values: h.values(0, h.length).slice(), positions: h.positions.slice() })));
  const away = cache.renumber(inverseFrequencies(config.rope!, cache.nextPosition));
  assert.equal(away, 14);
  assert.equal(cache.nextPosition, 10);
  assert.equal(cache.seenTokens, 24);
  cache.layers.forEach((l, layer) =>
    l.heads.forEach((h, head) => {
      const was = old[layer][head];
      assert.deepEqual(Array.from(h.positions), Array.from({ length: 10 }, (_, i) => i));
      assert.deepEqual(Array.from(cache.originalPositions(layer, head)), Array.from(was.positions));
      assert.deepEqual(Array.from(cache.originalPositions(layer, head)), pick(layer, head));
      // The key RoPE would have written at the new position: the same pre-RoPE key.
      near(unrotated(config, h.keys(0, 10), 1, h.positions), unrotated(config, was.keys, 1, was.positions), 1e-5, `layer ${layer} head ${head} pre-RoPE keys`);
      assert.deepEqual(Array.from(h.values(0, 10)), Array.from(was.values));
    }),
  );

  // Tokens that follow take 10, 11, 12 and are the 24th, 25th, 26th seen; a second renumbering keeps both kinds' origins.
  lm.model.forward([3, 4, 5], cache);
  assert.equal(cache.nextPosition, 13);
  assert.equal(cache.seenTokens, 27);
  assert.deepEqual(Array.from(cache.originalPositions(1, 1)).slice(-3), [24, 25, 26]);
  const keepTail = [0, 2, 4, 6, 8, 10, 11, 12];
  cache.layers.forEach((l) => l.heads.forEach((h) => h.keep(keepTail)));
  const clone = cache.clone();
  assert.equal(cache.renumber(inverseFrequencies(config.rope!, cache.nextPosition)), 5);
  assert.equal(cache.nextPosition, 8);
  assert.equal(cache.seenTokens, 27);
  const origin = pick(1, 1);
  assert.deepEqual(Array.from(cache.originalPositions(1, 1)), [origin[0], origin[2], origin[4], origin[6], origin[8], 24, 25, 26]);
  // A clone made before keeps its own numbering, origins and count.
  assert.equal(clone.nextPosition, 13);
  assert.equal(clone.seenTokens, 27);
  assert.deepEqual(Array.from(clone.originalPositions(1, 1)), [origin[0], origin[2], origin[4], origin[6], origin[8], 24, 25, 26]);
  // A rollback into the renumbered entries (the tokens seen 25th and 26th): the token appended next is the 25th again.
  cache.trim(6);
  assert.equal(cache.seenTokens, 25);
  lm.model.forward([9], cache);
  assert.deepEqual(Array.from(cache.originalPositions(0, 0)).slice(-2), [24, 25]);
  assert.equal(cache.seenTokens, 26);
  assert.ok(cache.layers[0].heads[0].stat(ORIGINAL_POSITION).length === cache.layers[0].heads[0].length);
});

test('KVCache.renumber with heads of different lengths: each head ends next to the next token; no rotation without frequencies', () => {
  const a = layerOf([[[1, 0], [2, 0], [3, 0]], [[4, 0], [5, 0], [6, 0], [7, 0], [8, 0]]], undefined);
  const b = layerOf([[[1, 1]], []]);
  const cache = new KVCache({ numLayers: 2, numKvHeads: 2, headDim: 2 }, 'f32', [a, b]);
  a.heads[0].keep([0, 1, 2]);
  cache.nextPosition = 9;
  assert.equal(cache.renumber(), 4);
  assert.deepEqual([a, b].map((l) => l.heads.map((h) => Array.from(h.positions))), [[[2, 3, 4], [0, 1, 2, 3, 4]], [[4], []]]);
  assert.deepEqual(Array.from(a.heads[0].keys(0, 3)), [1, 0, 2, 0, 3, 0]);
  assert.equal(cache.nextPosition, 5);
  assert.equal(cache.seenTokens, 9);
});

test('the recorder follows a renumbering: positions lowered, RoPE turned back, rows before 0 dropped', () => {
  const width = config.numHeads * config.headDim;
  const recorder = new PressRecorder({ queryWindow: 3 }, width);
  const rows = Float32Array.from(randomRows(5, width, 7).flat());
  const positions = Int32Array.from([5, 6, 7, 8, 9]);
  recorder.queries(0, rows, positions);
  const before = recorder.window(0)!;
  recorder.renumbered(8, config, 10);
  const after = recorder.window(0)!;
  assert.deepEqual(Array.from(after.positions), [0, 1]);
  near(unrotated(config, after.data, config.numHeads, after.positions), unrotated(config, before.data.subarray(width), config.numHeads, before.positions.subarray(1)), 1e-5, 'pre-RoPE queries');
  recorder.renumbered(0, config, 10);
  assert.equal(recorder.window(0), after, 'no renumbering: nothing moves');
});

// ---------------------------------------------------------------------------------------------- key-rerotation

test('key-rerotation keeps what its scorer keeps, renumbers the cache, and the question then runs as on a cache built that way by hand', () => {
  const plain = compressed(new KnormPress()).cache;
  const { cache, session } = compressed(new KeyRerotationPress(new KnormPress()));
  assert.equal(cache.nextPosition, 12);
  assert.equal(cache.seenTokens, 24);
  assert.equal(session.stats.dropped, 12 * config.numLayers * config.numKvHeads);
  const byHand = new KVCache(plain.shape, 'f32', plain.layers.map((l, layer) =>
    new LayerCache(l.heads.map((h, head) => {
      assert.deepEqual(Array.from(cache.originalPositions(layer, head)), Array.from(h.positions), `layer ${layer} head ${head} keeps the scorer's entries`);
      const to = Int32Array.from({ length: h.length }, (_, i) => i);
      const keys = unrotated(config, h.keys(0, h.length), 1, h.positions);
      rotate(config, keys, 1, to);
      const store = new HeadStore(h.headDim);
      store.append(keys, h.values(0, h.length), to, 0, h.headDim);
      return store;
    })),
  ));
  byHand.nextPosition = 12;
  const got = lastLogits(cache, question);
  near(got, lastLogits(byHand, question), 1e-4, 'question logits');
  const unmoved = lastLogits(plain, question);
  assert.ok(got.some((x, i) => Math.abs(x - unmoved[i]) > 1e-3), 'the renumbering changes what the question sees');
});

test('key-rerotation per prefill chunk: budgets count the tokens seen, and the recorded queries follow each renumbering', () => {
  const cache = newCache(config);
  const press = new KeyRerotationPress(createPress('snapkv', { window: 4 }));
  const session = new CompressionSession({ press, budget: { ratio: 0.5 }, during: 'chunks' }, lm.model, cache);
  prefill(lm.model, cache, ids, { chunkSize: 8, observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, ids.length) });
  // ⌊24 · 0.5⌋, not a ratio of each chunk's renumbered length (8 → 4, 12 → 6, 14 → 7).
  for (const l of cache.layers) for (const h of l.heads) assert.equal(h.length, 12);
  assert.equal(cache.nextPosition, 12);
  assert.equal(cache.seenTokens, 24);
  // The observation window (the prompt's last 4 tokens, kept) is at the renumbered cache's last 4 positions.
  const window = (session.observer as PressRecorder).window(1)!;
  assert.deepEqual(Array.from(window.positions), [8, 9, 10, 11]);
  assert.deepEqual(Array.from(cache.originalPositions(1, 0)).slice(-4), [20, 21, 22, 23]);
});

test("key-rerotation uses its scorer's scores only: every layer keeps the same count (PyramidKV's budgets are not used)", () => {
  const { cache } = compressed(new KeyRerotationPress(new PyramidKVPress({ window: 4, kernel: 5, beta: 20 })));
  for (const l of cache.layers) for (const h of l.heads) assert.equal(h.length, 12);
  assert.equal(cache.nextPosition, 12);
});

test('key-rerotation and merging refuse scorers that select across heads or change the cache; names and options', () => {
  assert.throws(() => createPress('key-rerotation', { scorer: 'adakv' }), /key-rerotation: scorer adakv\(snapkv\) selects its own entries; key-rerotation wraps a press that scores entries/);
  assert.throws(() => createPress('merging', { scorer: 'key-rerotation' }), /merging: scorer key-rerotation\(snapkv\) changes the cache itself/);
  assert.throws(() => createPress('key-rerotation', { scorer: 'merging' }), /changes the cache itself/);
  assert.throws(() => createPress('merging', { scorer: 'finch' }), /changes the cache itself/);
  assert.equal(createPress('key-rerotation', {}).name, 'key-rerotation(snapkv)');
  assert.equal(createPress('merging', {}).name, 'merging(snapkv)');
  assert.throws(() => createPress('merging', { threshold: 1.5 }), /merging: option threshold must be in \[0, 1\]/);
  assert.throws(() => createPress('merging', { threshold: -0.1 }), /threshold must be in \[0, 1\]/);
  assert.throws(() => createPress('merging', { fraction: 0 }), /merging: option fraction must be in \(0, 1\]/);
  assert.throws(() => createPress('merging', { fraction: 1.01 }), /fraction must be in \(0, 1\]/);
  assert.deepEqual(MERGING_DEFAULTS, { threshold: 0, fraction: 1 });
});

// ---------------------------------------------------------------------------------------------- finch

/** FINCH's scores recomputed in f64: softmax over visible keys, × the query's index if normalised, mean over window and group. */
function finchReference(keys: number[][][], queries: number[][], qPos: number[], group: number, d: number, window: number, normalize: boolean): number[][] {
  return keys.map((rows, g) => {
    const prefix = rows.length - window;
    const out = new Array(prefix).fill(0);
    for (let j = 0; j < group; j++) {
      queries.forEach((qAll, t) => {
        const q = qAll.slice((g * group + j) * d, (g * group + j + 1) * d);
        const s = rows.map((k, i) => (i <= qPos[t] ? k.reduce((a, x, c) => a + x * q[c], 0) / Math.sqrt(d) : -Infinity));
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const z = e.reduce((a, b) => a + b);
        const weight = normalize ? prefix + t : 1;
        for (let i = 0; i < prefix; i++) out[i] += (e[i] / z) * weight / window / group;
      });
    }
    return out;
  });
}

test('finch scores equal a direct re-computation of its rule (normalised and not), and keep the question', () => {
  const d = 4;
  const tiny = tinyConfig(4, 2, d);
  const keys = [randomRows(12, d, 3), randomRows(12, d, 4)];
  const cache = layerOf(keys);
  const window = 3;
  const qRows = randomRows(window, 4 * d, 9).map((r) => r.map((x) => 3 * x));
  const qPos = [9, 10, 11];
  for (const normalize of [1, 0]) {
    const press = new FinchPress({ ...FINCH_DEFAULTS, window, normalize });
    const scores = press.score(viewOf(tiny, cache, 6, { queries: queriesOf(qRows, qPos) }));
    const want = finchReference(keys, qRows, qPos, 2, d, window, normalize === 1);
    const max = Math.max(...want.flat());
    scores.forEach((s, g) => {
      want[g].forEach((w, i) => assert.ok(Math.abs(s[i] - w) < 1e-6 * Math.max(1, w), `normalize ${normalize}, head ${g} entry ${i}: ${s[i]} vs ${w}`));
      for (let i = 9; i < 12; i++) assert.ok(Math.abs(s[i] - (max + 1)) < 1e-5, 'question entries score max + 1');
      assert.deepEqual(Array.from(topK(s, 6)).slice(-3), [9, 10, 11]);
    });
  }
});

test('finch chunked selection: max(1, ⌊c·(1 − ratio)⌋) per chunk, and the chunk must exceed window / (1 − ratio)', () => {
  const tiny = tinyConfig(2, 1, 2);
  const cache = layerOf([randomRows(10, 2, 1)]);
  const scores = [Float32Array.from([5, 1, 4, 2, 0, 9, 8, 7, 3, 6])];
  const press = new FinchPress({ ...FINCH_DEFAULTS, window: 1, chunk: 4 });
  // Chunks [0, 4), [4, 8), [8, 10): 2, 2 and 1 entries.
  assert.deepEqual(press.select!(viewOf(tiny, cache, 5, { ratio: 0.5 }), scores).map((k) => Array.from(k)), [[0, 2, 5, 6, 9]]);
  // 12 entries, ratio 0.75, chunks of 5: ⌊5 · 0.25⌋ = 1, 1, and max(1, ⌊2 · 0.25⌋) = 1 for the last two.
  const twelve = [Float32Array.from([5, 1, 4, 2, 0, 9, 8, 7, 3, 6, 0.5, 0.7])];
  const view12 = viewOf(tiny, layerOf([randomRows(12, 2, 1)]), 3, { ratio: 0.75 });
  assert.deepEqual(new FinchPress({ ...FINCH_DEFAULTS, window: 1, chunk: 5 }).select!(view12, twelve).map((k) => Array.from(k)), [[0, 5, 11]]);
  assert.throws(() => new FinchPress({ ...FINCH_DEFAULTS, window: 2, chunk: 4 }).select!(viewOf(tiny, cache, 5, { ratio: 0.5 }), scores), /finch: chunk 4 must be longer than window \/ \(1 − ratio\) = 4/);
  // Nothing over the budget: everything stays, nothing is scored.
  assert.deepEqual(press.select!(viewOf(tiny, cache, 10, { ratio: 0 }), press.score(viewOf(tiny, cache, 10))).map((k) => k.length), [10]);
  assert.equal(new FinchPress().select, undefined, 'no chunks: the runner keeps the top entries of each head');
});

test('finch options: defaults as kvpress (normalised, rerotated, no chunks), bad values in one line', () => {
  assert.deepEqual(FINCH_DEFAULTS, { window: 64, chunk: 0, normalize: 1, rerotate: 1 });
  assert.equal(typeof new FinchPress().afterCompress, 'function');
  assert.equal(new FinchPress({ ...FINCH_DEFAULTS, rerotate: 0 }).afterCompress, undefined);
  assert.throws(() => createPress('finch', { window: 0 }), /finch: option window must be a whole number ≥ 1/);
  assert.throws(() => createPress('finch', { normalize: 2 }), /finch: option normalize must be 0 or 1, got 2/);
  assert.throws(() => createPress('finch', { rerotate: 3 }), /finch: option rerotate must be 0 or 1/);
  assert.throws(() => createPress('finch', { chunk: 1.5 }), /option chunk must be a whole number/);
  const tiny = tinyConfig(2, 1, 2);
  const short = layerOf([randomRows(4, 2, 1)]);
  assert.throws(() => new FinchPress({ ...FINCH_DEFAULTS, window: 4 }).score(viewOf(tiny, short, 2, { queries: queriesOf(randomRows(4, 4, 2), [0, 1, 2, 3]) })), /finch: window 4 \(the question\) must be shorter than the context/);
});

test('finch on a checkpoint: the question keeps its entries; rerotate moves the next position, rerotate=0 does not', () => {
  const window = 5;
  const rerotated = compressed(createPress('finch', { window })).cache;
  const kept = compressed(createPress('finch', { window, rerotate: 0 })).cache;
  assert.equal(rerotated.nextPosition, 12);
  assert.equal(kept.nextPosition, 24);
  rerotated.layers.forEach((l, layer) =>
    l.heads.forEach((_, head) => {
      const origin = Array.from(rerotated.originalPositions(layer, head));
      assert.deepEqual(origin, Array.from(kept.layers[layer].heads[head].positions), 'the same entries either way');
      assert.deepEqual(origin.slice(-window), [19, 20, 21, 22, 23], 'the question stays');
    }),
  );
  // Chunked, with nothing over a token budget: the question may be as long as the prompt, nothing is scored.
  const { cache } = compressed(createPress('finch', { window: 30, chunk: 50 }), { tokens: 100 });
  assert.equal(cache.entries(), 24 * config.numLayers * config.numKvHeads);
});

// ---------------------------------------------------------------------------------------------- merging

test('merging by hand: the evicted value folds into the most similar kept key, weighted by similarity and value norms', () => {
  // Kept keys (1, 0) and (0, 1); the evicted key (2, 1) is closer to the first: cos = 2/√5.
  const keys = Float32Array.from([1, 0, 0, 1, 2, 1]);
  const values = Float32Array.from([3, 4, 1, 1, 0, 5]);
  const merged = mergeValues(keys, values, 2, Int32Array.from([0, 1]), MERGING_DEFAULTS)!;
  const w = ((2 / Math.sqrt(5)) * 5) / (5 + 5 + 1e-6);
  assert.deepEqual(Array.from(merged.indices), [0]);
  near(merged.values, [3 / (1 + w), (4 + 5 * w) / (1 + w)], 1e-5, 'merged value');
  // Equally similar kept keys: the earlier is the target. A similarity equal to the threshold merges.
  const tie = mergeValues(Float32Array.from([1, 0, 0, 1, 1, 1]), values, 2, Int32Array.from([0, 1]), MERGING_DEFAULTS)!;
  assert.deepEqual(Array.from(tie.indices), [0]);
  assert.deepEqual(Array.from(mergeValues(Float32Array.from([1, 0, 3, 0]), values.subarray(0, 4), 2, Int32Array.from([0]), { threshold: 1, fraction: 1 })!.indices), [0]);
  // Under the threshold nothing merges; nothing evicted or nothing kept: nothing to do.
  assert.equal(mergeValues(keys, values, 2, Int32Array.from([0, 1]), { threshold: 0.9, fraction: 1 }), null);
  assert.equal(mergeValues(keys, values, 2, Int32Array.from([0, 1, 2]), MERGING_DEFAULTS), null);
  assert.equal(mergeValues(keys, values, 2, new Int32Array(0), MERGING_DEFAULTS), null);
  // Opposite keys: similarity −1 < 0, the weight is 0, the kept value stays.
  assert.equal(mergeValues(Float32Array.from([1, 0, -1, 0]), Float32Array.from([1, 1, 2, 2]), 2, Int32Array.from([0]), MERGING_DEFAULTS), null);
});

test('torch.quantile as merging computes it: linear interpolation, −∞ entries as at::lerp leaves them', () => {
  assert.equal(quantile(Float32Array.from([4, 1, 3, 2]), 0.25), 1.75);
  assert.equal(quantile(Float32Array.from([4, 1, 3, 2]), 0.5), 2.5);
  assert.equal(quantile(Float32Array.from([3, -Infinity, 1, 2]), 0.5), 1.5);
  assert.equal(quantile(Float32Array.from([3, -Infinity, 1, 2]), 0.25), -Infinity); // w = 0.75: end − ∞·0.25
  assert.ok(Number.isNaN(quantile(Float32Array.from([3, -Infinity, 1, 2]), 0.1))); // w = 0.3: −∞ + 0.3·∞
});

/** kvpress's merge recomputed in f64 for one head, written out plainly: new values of every entry. */
function mergeReference(keys: number[][], values: number[][], kept: number[], threshold: number, fraction: number): number[][] {
  const norm = (x: number[]) => Math.sqrt(x.reduce((a, v) => a + v * v, 0));
  const cos = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i], 0) / Math.max(norm(a), 1e-6) / Math.max(norm(b), 1e-6);
  const evicted = keys.map((_, i) => i).filter((i) => !kept.includes(i));
  const best = evicted.map((e) => {
    let t = kept[0];
    for (const k of kept) if (cos(keys[e], keys[k]) > cos(keys[e], keys[t])) t = k;
    return { e, t, s: cos(keys[e], keys[t]) };
  });
  let ok = best.map((b) => b.s >= threshold);
  if (fraction < 1) {
    const sorted = best.map((b, i) => (ok[i] ? b.s : -Infinity)).sort((a, b) => a - b);
    const rank = (1 - fraction) * (sorted.length - 1);
    const lo = sorted[Math.floor(rank)];
    const hi = sorted[Math.ceil(rank)];
    const w = rank - Math.floor(rank);
    const cut = w < 0.5 ? lo + w * (hi - lo) : hi - (hi - lo) * (1 - w); // at::lerp, so −∞ entries act as in torch
    ok = ok.map((x, i) => x && best[i].s >= cut);
  }
  const out = values.map((v) => [...v]);
  const acc = new Map<number, { w: number; v: number[] }>();
  best.forEach(({ e, t, s }, i) => {
    const w = (Math.max(s, 0) * (ok[i] ? 1 : 0) * norm(values[e])) / (norm(values[e]) + norm(values[t]) + 1e-6);
    const a = acc.get(t) ?? { w: 0, v: values[0].map(() => 0) };
    a.w += w;
    a.v = a.v.map((x, c) => x + w * values[e][c]);
    acc.set(t, a);
  });
  for (const [t, a] of acc) if (a.w > 0) out[t] = values[t].map((x, c) => (x + a.v[c]) / (1 + a.w));
  return out;
}

test('merging equals a direct re-computation of its rule, with and without its gates', () => {
  const d = 6;
  const keys = randomRows(16, d, 11).map((r, i) => r.map((x, c) => x + (c === i % d ? 1 : 0)));
  const values = randomRows(16, d, 12);
  const kept = [0, 2, 3, 7, 8, 11, 14];
  for (const options of [MERGING_DEFAULTS, { threshold: 0.3, fraction: 1 }, { threshold: 0, fraction: 0.75 }, { threshold: 0.2, fraction: 0.5 }]) {
    const want = mergeReference(keys, values, kept, options.threshold, options.fraction);
    const got = mergeValues(Float32Array.from(keys.flat()), Float32Array.from(values.flat()), d, Int32Array.from(kept), options);
    const result = values.map((v) => [...v]);
    if (got) got.indices.forEach((j, i) => (result[j] = Array.from(got.values.subarray(i * d, (i + 1) * d))));
    near(result.flat(), want.flat(), 1e-5, JSON.stringify(options));
    const changed = want.filter((v, i) => v.some((x, c) => x !== values[i][c])).length;
    assert.equal(got?.indices.length ?? 0, changed, `${JSON.stringify(options)}: entries changed`);
  }
  // The gates really gate: stricter options merge into fewer entries.
  const count = (o: typeof MERGING_DEFAULTS) => mergeValues(Float32Array.from(keys.flat()), Float32Array.from(values.flat()), d, Int32Array.from(kept), o)?.indices.length ?? 0;
  assert.ok(count({ threshold: 0, fraction: 0.25 }) < count(MERGING_DEFAULTS));
  assert.ok(count({ threshold: 0.5, fraction: 1 }) < count(MERGING_DEFAULTS));
});

test("merging on a checkpoint: its scorer's entries and keys, the kept values merged before the others go, positions kept", () => {
  const plain = compressed(new KnormPress()).cache;
  const full = newCache(config);
  prefill(lm.model, full, ids);
  const { cache } = compressed(new MergingPress(new KnormPress()));
  assert.equal(cache.nextPosition, 24);
  let changed = 0;
  cache.layers.forEach((l, layer) =>
    l.heads.forEach((h, head) => {
      const p = plain.layers[layer].heads[head];
      assert.deepEqual(Array.from(h.positions), Array.from(p.positions));
      assert.deepEqual(Array.from(h.keys(0, h.length)), Array.from(p.keys(0, p.length)));
      const f = full.layers[layer].heads[head];
      const want = mergeValues(f.keys(0, f.length), f.values(0, f.length), f.headDim, p.positions, MERGING_DEFAULTS);
      const expected = p.values(0, p.length).slice();
      if (want) want.indices.forEach((j, i) => expected.set(want.values.subarray(i * f.headDim, (i + 1) * f.headDim), p.positions.indexOf(j) * f.headDim));
      assert.deepEqual(Array.from(h.values(0, h.length)), Array.from(expected));
      changed += want?.indices.length ?? 0;
    }),
  );
  assert.ok(changed > 0, 'some values were merged');
});
