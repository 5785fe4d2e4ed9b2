/**
 * ThinK (presses/think.ts): the channel choice worked by hand and against a direct f64 re-computation of kvpress's
 * rule written here, the head memory that really frees pruned key channels (HeadStore.pruneKeyChannels: bytes,
 * appends after a pruning, keep, rollback, clone, pruning again, rerotation), logits on a pruned cache equal to
 * logits on the same cache with those channels zeroed (kvpress's cache), compositions, and the one-line errors.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ropeTables } from '../../src/attention/rope.js';
import { HeadStore } from '../../src/cache/head-store.js';
import type { KVCache, LayerCache } from '../../src/cache/kv-cache.js';
import { AttendError } from '../../src/errors.js';
import { prefill } from '../../src/generate/prefill.js';
import type { ModelConfig } from '../../src/models/config.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import { AdaKVPress } from '../../src/presses/adakv.js';
import { ComposedPress } from '../../src/presses/composed.js';
import { KnormPress } from '../../src/presses/knorm.js';
import { type LayerView, type Press, topK } from '../../src/presses/press.js';
import { createPress, pressEntry } from '../../src/presses/registry.js';
import { CompressionSession } from '../../src/presses/runner.js';
import { SnapKVPress } from '../../src/presses/snapkv.js';
import { pruneKeyChannels, ThinKPress, thinkChannels } from '../../src/presses/think.js';
import { lastRows, subsetLayer } from '../../src/presses/wrapped.js';
import { maxAbsDiff, PARITY_DIR } from '../helpers/fixtures.js';
import { layerOf, queriesOf, randomRows, tinyConfig, viewOf } from '../helpers/press-view.js';

const list = (x: Int32Array | null | undefined) => (x ? Array.from(x) : null);

/**
 * kvpress's rule, recomputed directly in f64 from think_press.py: per KV head g, the mean over the last `window`
 * query rows of q² for each query head of the group, averaged over the group, times the mean over the entries of
 * k²; the ⌊d·ratio⌋ lowest channels pruned (of equal scores the later channel first). Returns the kept channels.
 */
function referenceKept(keys: number[][], queries: number[][], g: number, group: number, d: number, window: number, ratio: number): number[] {
  const rows = queries.slice(Math.max(0, queries.length - window));
  const score: number[] = [];
  for (let c = 0; c < d; c++) {
    let qn = 0;
    for (let j = 0; j < group; j++) qn += rows.reduce((s, q) => s + q[(g * group + j) * d + c] ** 2, 0) / rows.length;
    qn /= group;
    const kn = keys.reduce((s, k) => s + k[c] ** 2, 0) / keys.length;
    score.push(qn * kn);
  }
  const pruned = new Set(
    score
      .map((s, c) => [s, c])
      .sort((a, b) => a[0] - b[0] || b[1] - a[1])
      .slice(0, Math.floor(d * ratio))
      .map(([, c]) => c),
  );
  return score.map((_, c) => c).filter((c) => !pruned.has(c));
}

/** One layer's compression as the runner does it (runner.ts compress): score, select, keep, afterKeep. */
function compressLayer(press: Press, view: LayerView): Int32Array[] {
  const scores = press.keyChannels ? view.cache.heads.map((h) => new Float32Array(h.length)) : press.score(view);
  const kept = press.select ? press.select(view, scores) : scores.map((s) => topK(s, view.keep));
  view.cache.heads.forEach((head, h) => kept[h].length !== head.length && head.keep(kept[h]));
  press.afterKeep?.(view);
  return kept;
}

/** The keys of every head of the layer, as rows. */
function rowsOf(layer: LayerCache): number[][][] {
  return layer.heads.map((h) => Array.from({ length: h.length }, (_, i) => Array.from(h.keys(i, 1))));
}

// ----------------------------------------------------------------------------------------------- channel choice

test('think: channels by hand — mean q² over the window × mean k² over the entries, the lowest pruned, ties keep the earlier', () => {
  const config = tinyConfig(1, 1, 4);
  const layer = layerOf([[[1, 0, 2, 0.5], [1, 0, -2, 0.5]]]);
  // k² means 1, 0, 4, 0.25; the window's q² means 1, 25, 1, 4: scores 1, 0, 4, 1. Half the channels go: 1, then of
  // channels 0 and 3 (both 1) the later.
  const q = queriesOf([[0, 0, 0, 10], [1, 5, 1, 2], [1, -5, 1, -2]], [0, 1, 2]);
  const view = viewOf(config, layer, 2, { ratio: 0.5, queries: q });
  assert.deepEqual(new ThinKPress({ window: 2 }).keyChannels(view).map(list), [[0, 2]]);
  // A window of 3 takes in the first row: q² means 2/3, 50/3, 2/3, 108/3, scores 2/3, 0, 8/3, 9.
  assert.deepEqual(new ThinKPress({ window: 3 }).keyChannels(view).map(list), [[2, 3]]);
  // A window longer than the queries recorded takes them all (kvpress's hidden_states[:, -window:]).
  assert.deepEqual(new ThinKPress({ window: 32 }).keyChannels(view).map(list), [[2, 3]]);
});

test('think: q² is averaged over the query heads of a KV group, each KV head choosing its own channels', () => {
  const config = tinyConfig(4, 2, 2);
  const layer = layerOf([[[1, 2]], [[1, 2]]]);
  // KV head 0: query heads (3, 0) and (0, 2) → q² means 4.5, 2 × k² 1, 4 → 4.5, 8: channel 0 goes (head 0 alone
  // would drop channel 1). KV head 1: (1, 0) and (1, 0) → 1, 0 → channel 1 goes.
  const q = queriesOf([[3, 0, 0, 2, 1, 0, 1, 0]], [0]);
  assert.deepEqual(new ThinKPress().keyChannels(viewOf(config, layer, 1, { ratio: 0.5, queries: q })).map(list), [[1], [0]]);
});

test('think: the channel choice equals a direct f64 re-computation of kvpress’s rule (GQA, several ratios and windows)', () => {
  const d = 8;
  const config = tinyConfig(4, 2, d);
  const keys = [randomRows(11, d, 1), randomRows(11, d, 2).map((r) => r.map((x, c) => x * (1 + c / 3)))];
  const queries = randomRows(9, 4 * d, 3).map((r) => r.map((x, i) => x * (1 + (i % d) / 5)));
  for (const window of [1, 4, 9]) {
    for (const ratio of [0.3, 0.5, 0.8]) {
      const view = viewOf(config, layerOf(keys), 5, { ratio, queries: queriesOf(queries, queries.map((_, i) => 20 + i)) });
      const got = new ThinKPress({ window }).keyChannels(view).map(list);
      assert.deepEqual(got, [0, 1].map((g) => referenceKept(keys[g], queries, g, 2, d, window, ratio)), `window ${window}, ratio ${ratio}`);
    }
  }
});

test('think: int(headDim · ratio) channels go (kvpress’s rounding); a ratio that removes none changes nothing', () => {
  const d = 12;
  const config = tinyConfig(1, 1, d);
  const layer = layerOf([randomRows(6, d, 4)]);
  const q = queriesOf(randomRows(3, d, 5), [3, 4, 5]);
  const kept = (ratio: number) => new ThinKPress().keyChannels(viewOf(config, layer, 3, { ratio, queries: q }))[0];
  assert.equal(kept(0.3)?.length, 9, 'int(12 · 0.3) = int(3.5999…) = 3');
  assert.equal(kept(0.5)?.length, 6);
  assert.equal(kept(0.99)?.length, 1, 'int(11.88) = 11');
  assert.equal(kept(0.05), null, 'int(0.6) = 0');
  assert.equal(kept(0), null);
  // Nothing to prune, nothing changes (not counted as a compression).
  const view = viewOf(config, layer, 3, { ratio: 0.05, queries: q });
  assert.equal(new ThinKPress().afterKeep(view), false);
  assert.equal(layer.heads[0].pruned, 0);
});

// ---------------------------------------------------------------------------------------- head memory, freed

for (const dtype of ['f32', 'bf16'] as const) {
  test(`head memory (${dtype}): pruned key channels are freed, read as 0, and later entries keep every channel`, () => {
    const d = 4;
    const b = dtype === 'f32' ? 4 : 2;
    const h = new HeadStore(d, dtype);
    const rows = Float32Array.from({ length: 7 * d }, (_, i) => 1 + i);
    h.append(rows.subarray(0, 5 * d), rows.subarray(0, 5 * d).map((x) => -x), Int32Array.from([0, 1, 2, 3, 4]), 0, d);
    const full = h.liveBytes();
    assert.equal(h.capacity, 16);
    assert.equal(h.pruneKeyChannels(Int32Array.from([1, 3])), true);
    assert.equal(h.pruned, 5);
    assert.deepEqual(list(h.keyChannels), [1, 3]);
    const zeroed = (i: number) => [0, rows[i * d + 1], 0, rows[i * d + 3]];
    assert.deepEqual(Array.from(h.keys(0, 5)), [0, 1, 2, 3, 4].flatMap(zeroed));
    assert.deepEqual(Array.from(h.keys(2, 2)), [2, 3].flatMap(zeroed));
    assert.deepEqual(Array.from(h.values(0, 5)), Array.from(rows.subarray(0, 5 * d).map((x) => -x)), 'values keep every channel');
    // Bytes: 5 pruned keys of 2 channels and room for 11 whole ones, 16 values, 16 positions, the channel list.
    assert.equal(h.bytes(), (5 * 2 + 11 * d + 16 * d) * b + 16 * 4 + 2 * 4);
    assert.equal(h.liveBytes(), (5 * 2 + 5 * d) * b + 5 * 4 + 2 * 4);
    assert.equal(full - h.liveBytes(), 5 * 2 * b - 8, 'half the live key bytes freed, less the channel list');
    // Appended after the pruning: whole keys.
    h.append(rows.subarray(5 * d), rows.subarray(5 * d), Int32Array.from([5, 6]), 0, d);
    assert.deepEqual(Array.from(h.keys(5, 2)), Array.from(rows.subarray(5 * d)));
    assert.deepEqual(Array.from(h.keys(3, 4)), [...zeroed(3), ...zeroed(4), ...rows.subarray(5 * d)]);
    assert.equal(h.pruned, 5);
    assert.equal(h.liveBytes(), (5 * 2 + 2 * d + 7 * d) * b + 7 * 4 + 2 * 4);
    // Nothing new to prune, the same channels: no change.
    const again = h.clone();
    assert.equal(again.pruneKeyChannels(Int32Array.from([1, 3])), true, 'the two whole keys are pruned');
    assert.equal(again.pruneKeyChannels(Int32Array.from([1, 3])), false);
    assert.equal(new HeadStore(d, dtype).pruneKeyChannels([0]), false, 'an empty head');
    // A clone holds exactly the live bytes; keep reallocates exactly, pruned entries stay pruned.
    const copy = h.clone();
    assert.equal(copy.bytes(), h.liveBytes());
    assert.deepEqual(Array.from(copy.keys(0, 7)), Array.from(h.keys(0, 7)));
    const before = h.keys(0, 7).slice();
    h.keep([1, 4, 6]);
    assert.equal(h.pruned, 2);
    assert.deepEqual(Array.from(h.keys(0, 3)), [1, 4, 6].flatMap((i) => Array.from(before.subarray(i * d, (i + 1) * d))));
    assert.equal(h.bytes(), h.liveBytes());
    assert.equal(h.bytes(), (2 * 2 + 1 * d + 3 * d) * b + 3 * 4 + 2 * 4);
    h.keep([2]);
    assert.equal(h.pruned, 0);
    assert.equal(h.keyChannels, null, 'no pruned entry left: no channel list');
    assert.equal(h.bytes(), 2 * d * b + 4);
    assert.throws(() => copy.pruneKeyChannels([1, 1]), /ascending, unique and below 4/);
    assert.throws(() => copy.pruneKeyChannels([4]), /ascending, unique and below 4/);
  });

  test(`head memory (${dtype}): pruning again is pruning the zeroed keys again; rollback into pruned entries, then appends`, () => {
    const d = 4;
    const h = new HeadStore(d, dtype);
    const rows = Float32Array.from({ length: 40 * d }, (_, i) => 1 + (i % 50));
    h.append(rows.subarray(0, 3 * d), rows.subarray(0, 3 * d), Int32Array.from([0, 1, 2]), 0, d);
    h.pruneKeyChannels([1, 3]);
    h.append(rows.subarray(3 * d, 4 * d), rows.subarray(3 * d, 4 * d), Int32Array.from([3]), 0, d);
    // Channels 0 and 1 now: the first three keep 0 in channel 0 (lost before), the fourth its own.
    assert.equal(h.pruneKeyChannels([0, 1]), true);
    assert.equal(h.pruned, 4);
    assert.deepEqual(Array.from(h.keys(0, 4)), [0, 1, 2].flatMap((i) => [0, rows[i * d + 1], 0, 0]).concat([rows[12], rows[13], 0, 0]));
    // Rollback to 2 entries (both pruned), then appends: whole keys after them, the key room grown as needed.
    h.truncate(2);
    assert.equal(h.pruned, 2);
    const idx = Int32Array.from({ length: 30 }, (_, i) => 2 + i);
    h.append(rows.subarray(0, 30 * d), rows.subarray(0, 30 * d), idx, 0, d);
    assert.deepEqual(Array.from(h.keys(2, 30)), Array.from(rows.subarray(0, 30 * d)));
    assert.deepEqual(Array.from(h.keys(0, 2)), [0, 1].flatMap((i) => [0, rows[i * d + 1], 0, 0]));
    // Rollback of every pruned entry: no channel list left, whole keys from the first entry on.
    h.truncate(0);
    assert.equal(h.pruned, 0);
    assert.equal(h.keyChannels, null);
    h.append(rows.subarray(0, 20 * d), rows.subarray(0, 20 * d), Int32Array.from({ length: 20 }, (_, i) => i), 0, d);
    assert.deepEqual(Array.from(h.keys(0, 20)), Array.from(rows.subarray(0, 20 * d)));
    // The positions have room for 16 entries, the pruned keys less: appends up to the capacity grow the key room.
    const g = new HeadStore(d, dtype);
    g.append(rows.subarray(0, 5 * d), rows.subarray(0, 5 * d), Int32Array.from([0, 1, 2, 3, 4]), 0, d);
    g.pruneKeyChannels([0, 1]);
    g.truncate(0);
    g.append(rows.subarray(0, 16 * d), rows.subarray(0, 16 * d), Int32Array.from({ length: 16 }, (_, i) => i), 0, d);
    assert.equal(g.capacity, 16);
    assert.deepEqual(Array.from(g.keys(0, 16)), Array.from(rows.subarray(0, 16 * d)));
    assert.equal(g.bytes(), g.liveBytes());
  });

  test(`head memory (${dtype}): a rerotated pruned head stores its turned zeroed keys whole`, () => {
    const d = 4;
    const rows = Float32Array.from({ length: 3 * d }, (_, i) => 0.5 + i / 4);
    const pruned = new HeadStore(d, dtype);
    pruned.append(rows, rows, Int32Array.from([2, 5, 9]), 0, d);
    pruned.pruneKeyChannels([0, 3]);
    const zeroed = new HeadStore(d, dtype);
    zeroed.append(pruned.keys(0, 3).slice(), rows, Int32Array.from([2, 5, 9]), 0, d);
    const rotation = ropeTables(Float32Array.from([1, 0.1]), Int32Array.from([-2, -4, -7]));
    for (const h of [pruned, zeroed]) h.renumber([0, 1, 2], rotation);
    assert.equal(pruned.pruned, 0, 'channel 0 turns into channel 2: it is no longer 0');
    assert.deepEqual(Array.from(pruned.keys(0, 3)), Array.from(zeroed.keys(0, 3)));
    assert.ok(pruned.keys(0, 1)[2] !== 0);
  });
}

test('think prunes again with the zeroed keys when it compresses again (while decoding or per chunk)', () => {
  const d = 6;
  const config = tinyConfig(2, 1, d);
  const first = randomRows(8, d, 7);
  const layer = layerOf([first]);
  const q1 = queriesOf(randomRows(4, 2 * d, 8), [4, 5, 6, 7]);
  const press = new ThinKPress({ window: 4 });
  compressLayer(press, viewOf(config, layer, 4, { ratio: 0.5, queries: q1 }));
  const c1 = list(layer.heads[0].keyChannels)!;
  assert.deepEqual(c1, referenceKept(first, randomRows(4, 2 * d, 8), 0, 2, d, 4, 0.5));
  // Three tokens decoded: their keys whole; then ThinK again with the recent queries.
  const later = randomRows(3, d, 9).map((r) => r.map((x) => 3 * x));
  const flat = Float32Array.from(later.flat());
  (layer.heads[0] as HeadStore).append(flat, flat, Int32Array.from([8, 9, 10]), 0, d);
  const q2rows = randomRows(4, 2 * d, 10);
  const q2 = queriesOf(q2rows, [7, 8, 9, 10]);
  // kvpress's cache at this point: the first keys zeroed outside c1, the new ones whole.
  const zeroedCache = [...first.map((r) => r.map((x, c) => (c1.includes(c) ? x : 0))), ...later];
  const c2 = referenceKept(zeroedCache, q2rows, 0, 2, d, 4, 0.5);
  assert.ok(c2.some((c) => !c1.includes(c)), 'the second choice keeps a channel the first pruned (the case under test)');
  compressLayer(press, viewOf(config, layer, 5, { ratio: 0.5, queries: q2 }));
  assert.deepEqual(list(layer.heads[0].keyChannels), c2);
  assert.equal(layer.heads[0].pruned, 11);
  assert.deepEqual(rowsOf(layer)[0], zeroedCache.map((r) => r.map((x, c) => (c2.includes(c) ? Math.fround(x) : 0))));
});

// --------------------------------------------------------------------------------------------- on a real model

const ids = Array.from({ length: 40 }, (_, i) => (i * 53 + 7) % 384);
const question = [5, 77, 300, 12, 9, 141];

/** A copy of `cache` (uncompressed) holding whole keys with every channel outside `channels[l][h]` set to 0. */
function zeroedCopy(config: ModelConfig, cache: KVCache, channels: (Int32Array | null)[][]): KVCache {
  const copy = newCache(config);
  const d = config.headDim;
  cache.layers.forEach((layer, l) =>
    layer.heads.forEach((head, h) => {
      const keys = head.keys(0, head.length).slice();
      const kept = channels[l][h];
      if (kept) for (let i = 0; i < head.length; i++) for (let c = 0; c < d; c++) if (!kept.includes(c)) keys[i * d + c] = 0;
      (copy.layers[l].heads[h] as HeadStore).append(keys, head.values(0, head.length), head.positions, 0, d);
    }),
  );
  copy.nextPosition = cache.nextPosition;
  return copy;
}

for (const model of ['llama-gqa-tied', 'qwen3-norm']) {
  test(`think on ${model}: logits on the pruned cache equal logits on the cache with those channels zeroed (kvpress's), and the bytes are really lower`, () => {
    const lm = loadModel(join(PARITY_DIR, model));
    const { headDim: d, numLayers, numKvHeads } = lm.config;
    const prompt = ids.map((x) => x % lm.config.vocabSize);
    const asked = question.map((x) => x % lm.config.vocabSize);
    const full = newCache(lm.config);
    prefill(lm.model, full, prompt, { chunkSize: 16 });
    const cache = newCache(lm.config);
    const session = new CompressionSession({ press: createPress('think', { window: 8 }), budget: { ratio: 0.5 } }, lm.model, cache);
    prefill(lm.model, cache, prompt, { chunkSize: 16, observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, prompt.length) });
    assert.equal(session.stats.compressions, 1);
    assert.equal(session.stats.dropped, 0);
    const channels = cache.layers.map((l) => l.heads.map((h) => h.keyChannels ?? null));
    for (const layer of cache.layers) {
      for (const head of layer.heads) {
        assert.equal(head.length, prompt.length, 'every entry kept');
        assert.equal(head.pruned, prompt.length);
        assert.equal(head.keyChannels?.length, d - Math.floor(d / 2));
      }
    }
    // Half the live key bytes are freed (less each head's channel list): a quarter of the cache.
    const heads = numLayers * numKvHeads;
    const kept = d - Math.floor(d / 2);
    assert.equal(full.liveBytes() - cache.liveBytes(), heads * (prompt.length * (d - kept) * 4 - kept * 4));
    assert.ok(cache.bytes() < full.bytes());
    const zeroed = zeroedCopy(lm.config, full, channels);
    cache.layers.forEach((l, li) => l.heads.forEach((h, hi) => assert.deepEqual(Array.from(h.keys(0, h.length)), Array.from(zeroed.layers[li].heads[hi].keys(0, h.length)))));
    // The question (whole keys appended after the pruned ones, blocks crossing from pruned to whole keys), then
    // two decoded tokens.
    const a = lm.model.forward(asked, cache).f32;
    const b = lm.model.forward(asked, zeroed).f32;
    assert.ok(maxAbsDiff(a, b) < 1e-5, `question logits: max |Δ| ${maxAbsDiff(a, b)}`);
    const c = lm.model.forward(asked, full).f32;
    assert.ok(maxAbsDiff(a, c) > 1e-3, 'pruning the channels changed the logits');
    for (const id of [3, 4]) {
      const x = lm.model.forward([id], cache).f32;
      const y = lm.model.forward([id], zeroed).f32;
      assert.ok(maxAbsDiff(x, y) < 1e-5, `decoded token ${id}: max |Δ| ${maxAbsDiff(x, y)}`);
    }
    assert.equal(cache.layers[0].heads[0].pruned, prompt.length);
    assert.equal(cache.layers[0].heads[0].length, prompt.length + asked.length + 2);
  });
}

test('think while decoding: each compression prunes the entries appended since, and the logits stay those of the zeroed cache', () => {
  const lm = loadModel(join(PARITY_DIR, 'llama-gqa-tied'));
  const cache = newCache(lm.config);
  const session = new CompressionSession({ press: createPress('think', {}), budget: { ratio: 0.25 }, decode: { every: 3 } }, lm.model, cache);
  prefill(lm.model, cache, ids, { observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, ids.length) });
  for (let s = 1; s <= 6; s++) {
    lm.model.forward([question[s - 1]], cache, { observer: session.observer });
    session.afterDecodeStep();
    const head = cache.layers[1].heads[0];
    assert.equal(head.pruned, s % 3 === 0 ? head.length : head.length - (s % 3), `step ${s}`);
    assert.equal(head.keyChannels?.length, lm.config.headDim - Math.floor(lm.config.headDim * 0.25));
  }
  assert.equal(session.stats.compressions, 3);
  // The cache is kvpress's zeroed cache, as stored: the next token reads the same logits from either.
  const channels = cache.layers.map((l) => l.heads.map((h) => h.keyChannels ?? null));
  const zeroed = zeroedCopy(lm.config, cache, channels);
  assert.ok(maxAbsDiff(lm.model.forward([8], cache).f32, lm.model.forward([8], zeroed).f32) < 1e-5);
});

// ------------------------------------------------------------------------------------------------- composition

test('composed snapkv then think: SnapKV keeps its entries as alone, ThinK prunes the channels of what it kept', () => {
  const d = 8;
  const config = tinyConfig(4, 2, d);
  const keys = [randomRows(20, d, 11), randomRows(20, d, 12).map((r) => r.map((x, c) => x * (c + 1)))];
  const qrows = randomRows(6, 4 * d, 13);
  const queries = queriesOf(qrows, [14, 15, 16, 17, 18, 19]);
  const snap = () => new SnapKVPress({ window: 4, kernel: 3 });
  const press = new ComposedPress([snap(), new ThinKPress({ window: 5 })], [0.5, 0.5]);
  assert.deepEqual(press.needs, { queryWindow: 5, attention: false });
  // The budget counts entries: SnapKV's 0.5 (ThinK removes none), so the stages are kvpress's own.
  const layer = layerOf(keys);
  const kept = compressLayer(press, viewOf(config, layer, 10, { ratio: 0.5, queries }));
  const alone = layerOf(keys);
  // SnapKV reads the rows it is given: its own window of them, as the composition hands it.
  const keptAlone = compressLayer(snap(), viewOf(config, alone, 10, { ratio: 0.5, queries: lastRows(queries, 4, 4 * d) }));
  assert.deepEqual(kept.map((k) => Array.from(k)), keptAlone.map((k) => Array.from(k)));
  assert.ok(kept.every((k) => k.length === 10));
  // ThinK's channels from the kept entries' keys and its own window of the queries.
  const want = [0, 1].map((g) => referenceKept(Array.from(kept[g], (i) => keys[g][i]), qrows, g, 2, d, 5, 0.5));
  assert.deepEqual(layer.heads.map((h) => list(h.keyChannels)), want);
  assert.deepEqual(layer.heads.map((h) => h.pruned), [10, 10]);
});

test('composed think then snapkv: SnapKV scores the zeroed keys, ThinK’s channels are those of every entry', () => {
  const d = 8;
  const config = tinyConfig(4, 2, d);
  const keys = [randomRows(20, d, 21).map((r) => r.map((x, c) => x * (8 - c))), randomRows(20, d, 22).map((r) => r.map((x, c) => x * (c + 1)))];
  const qrows = randomRows(6, 4 * d, 23).map((r) => r.map((x, i) => x * (1 + (i % d))));
  const queries = queriesOf(qrows, [14, 15, 16, 17, 18, 19]);
  const snap = () => new SnapKVPress({ window: 4, kernel: 3 });
  const layer = layerOf(keys);
  const kept = compressLayer(new ComposedPress([new ThinKPress({ window: 6 }), snap()], [0.75, 0.5]), viewOf(config, layer, 10, { ratio: 0.5, queries }));
  const channels = [0, 1].map((g) => referenceKept(keys[g], qrows, g, 2, d, 6, 0.75));
  // SnapKV alone on kvpress's zeroed keys.
  const zeroed = layerOf(keys.map((rows) => rows.map((r) => r.slice())));
  pruneKeyChannels(zeroed, channels.map((c) => Int32Array.from(c)));
  const window = lastRows(queries, 4, 4 * d);
  const keptZeroed = compressLayer(snap(), viewOf(config, zeroed, 10, { ratio: 0.5, queries: window }));
  assert.deepEqual(kept.map((k) => Array.from(k)), keptZeroed.map((k) => Array.from(k)));
  const keptWhole = compressLayer(snap(), viewOf(config, layerOf(keys), 10, { ratio: 0.5, queries: window }));
  assert.notDeepEqual(keptZeroed, keptWhole, 'the zeroed keys change what SnapKV keeps (the case under test)');
  assert.deepEqual(layer.heads.map((h) => list(h.keyChannels)), channels);
  assert.deepEqual(rowsOf(layer), rowsOf(zeroed));
});

test('composed with think under another budget scales only the entry stages; within the budget it still prunes', () => {
  const d = 4;
  const config = tinyConfig(2, 1, d);
  const keys = [randomRows(40, d, 31)];
  const queries = queriesOf(randomRows(4, 2 * d, 32), [36, 37, 38, 39]);
  const snap = new SnapKVPress({ window: 4, kernel: 3 });
  // Budget 0.75 with ratios 0.5 (SnapKV), 0.5 (ThinK): SnapKV alone takes the budget (keep 10), ThinK prunes half.
  const layer = layerOf(keys);
  const press = new ComposedPress([snap, new ThinKPress()], [0.5, 0.5]);
  const kept = compressLayer(press, viewOf(config, layer, 10, { ratio: 0.75, queries }));
  assert.equal(kept[0].length, 10);
  assert.equal(layer.heads[0].keyChannels?.length, 2);
  // A decoding compression within the budget drops nothing, but the entries appended since are pruned.
  const flat = Float32Array.from(randomRows(2, d, 33).flat());
  (layer.heads[0] as HeadStore).append(flat, flat, Int32Array.from([40, 41]), 0, d);
  assert.equal(layer.heads[0].pruned, 10);
  const view = viewOf(config, layer, 12, { ratio: 0, queries, decoding: true });
  compressLayer(press, view);
  assert.equal(layer.heads[0].length, 12);
  assert.equal(layer.heads[0].pruned, 12);
  assert.equal(layer.heads[0].keyChannels?.length, 2, "ThinK's ratio is its own, not the budget's");
});

test('composed: a think stage leaves the entry stages as they are without it (its ratio is not in their product)', () => {
  const d = 8;
  const config = tinyConfig(2, 1, d);
  const keys = [randomRows(40, d, 41).map((r) => r.map((x, c) => x * (c + 1)))];
  const queries = queriesOf(randomRows(4, 2 * d, 42), [36, 37, 38, 39]);
  const stages = () => [new SnapKVPress({ window: 4, kernel: 3 }), new KnormPress()];
  // kvpress's own stages at 0.75: SnapKV keeps 20, key norm 10 of them.
  const without = compressLayer(new ComposedPress(stages(), [0.5, 0.5]), viewOf(config, layerOf(keys), 10, { ratio: 0.75, queries }));
  const layer = layerOf(keys);
  const withThink = compressLayer(new ComposedPress([...stages(), new ThinKPress()], [0.5, 0.5, 0.25]), viewOf(config, layer, 10, { ratio: 0.75, queries }));
  assert.deepEqual(withThink.map((k) => Array.from(k)), without.map((k) => Array.from(k)));
  assert.equal(layer.heads[0].keyChannels?.length, 6, 'int(8 · 0.25) = 2 channels pruned');
});

test('composed snapkv,think from the registry on a real model: the runner keeps SnapKV’s entries with ThinK’s channels', () => {
  const lm = loadModel(join(PARITY_DIR, 'llama-gqa-tied'));
  const cache = newCache(lm.config);
  const press = new ComposedPress([new SnapKVPress({ window: 8, kernel: 5 }), createPress('think', {})], [0.5, 0.5]);
  const session = new CompressionSession({ press, budget: { ratio: 0.5 } }, lm.model, cache);
  prefill(lm.model, cache, ids, { observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, ids.length) });
  const alone = newCache(lm.config);
  const snap = new CompressionSession({ press: new SnapKVPress({ window: 8, kernel: 5 }), budget: { ratio: 0.5 } }, lm.model, alone);
  prefill(lm.model, alone, ids, { observer: snap.observer, afterChunk: (_, end) => snap.afterChunk(end, ids.length) });
  cache.layers.forEach((l, li) =>
    l.heads.forEach((h, hi) => {
      assert.deepEqual(Array.from(h.positions), Array.from(alone.layers[li].heads[hi].positions));
      assert.equal(h.pruned, 20);
      assert.equal(h.keyChannels?.length, 6);
    }),
  );
  assert.ok(lm.model.forward(question, cache).f32.every(Number.isFinite));
});

// -------------------------------------------------------------------------------------------- options, errors

test('think: registry entry, kvpress’s default window, one-line errors, refused as a scorer', () => {
  const entry = pressEntry('think');
  assert.equal(entry.options.window.default, 32);
  assert.match(entry.source, /arXiv 2407\.21018/);
  assert.deepEqual((createPress('think', {}) as ThinKPress).options, { window: 32 });
  assert.deepEqual(createPress('think', {}).needs, { queryWindow: 32 });
  assert.throws(() => createPress('think', { window: 0 }), (e: Error) => e instanceof AttendError && /think: option window must be a whole number ≥ 1/.test(e.message));
  assert.throws(() => new ThinKPress().score(), (e: Error) => e instanceof AttendError && /scores no entries/.test(e.message));
  // kvpress's wrappers take a ScorerPress, which ThinK is not.
  assert.throws(() => createPress('chunk', { scorer: 'think' }), AttendError);
  const config = tinyConfig(1, 1, 2);
  const layer = layerOf([randomRows(6, 2, 1)]);
  assert.throws(() => new AdaKVPress(new ThinKPress()).score(viewOf(config, layer, 3)), /scores no entries/);
  assert.throws(() => new ThinKPress().keyChannels(viewOf(config, layer, 3, { ratio: 0.5 })), /no queries were recorded/);
  assert.ok(thinkChannels(viewOf(config, layer, 3, { ratio: 0 }), 4).every((c) => c === null), 'ratio 0 needs no queries');
  assert.throws(() => new ComposedPress([new KnormPress(), { ...new KnormPress(), name: 'odd', afterKeep: () => true, score: () => [] }], [0.2, 0.2]), /rewrites the kept entries after the drop/);
  // Budget as a share of the entries (a token budget): the fraction of the tokens seen it removes.
  const cache = subsetLayer(layerOf([randomRows(8, 4, 2)]), [Int32Array.from({ length: 8 }, (_, i) => i)]);
  const view = viewOf(tinyConfig(1, 1, 4), cache, 2, { queries: queriesOf(randomRows(2, 4, 3), [6, 7]) });
  assert.equal(view.ratio, 0.75);
  compressLayer(new ThinKPress(), view);
  assert.equal(cache.heads[0].keyChannels?.length, 1);
});
