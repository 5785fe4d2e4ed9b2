/**
 * RetrievalAttention (selectors/retrieval-attention.ts, selectors/ann/): the static pattern plus the retrieved
 * top-k worked by hand on a constructed cache, entries leaving the window inserted into the index, the
 * attention-aware index's recall against exact top-k on constructed out-of-distribution queries (and against the
 * same graph built without training queries), exactness when the budget covers the cache, and a decode on
 * attend-mini that builds the index from the prefill's queries and reads a small share per step.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LayerCache } from '../../src/cache/kv-cache.js';
import type { ModelConfig } from '../../src/models/config.js';
import { loadModel } from '../../src/models/load.js';
import { RoarGraphIndex } from '../../src/selectors/ann/roar-graph.js';
import { UsearchHnswIndex, usearchAvailable } from '../../src/selectors/ann/usearch-index.js';
import { innerProducts, topK } from '../../src/selectors/ann/vectors.js';
import { createSelector, SelectionSession } from '../../src/selectors/registry.js';
import { RetrievalAttentionSelector } from '../../src/selectors/retrieval-attention.js';
import { decodeSelected } from '../helpers/selector-decode.js';

const lists = (l: (Int32Array | null)[] | undefined) => l?.map((x) => (x ? Array.from(x) : null));

test('sinks, window and each query head\'s top-k of the keys between, by hand', () => {
  // One KV head (d = 2) shared by two query heads. Entries 0–1 are sinks, the last 3 the window; the middle
  // entries 2–8 hold (3,0) (0,3) (2,1) (1,2) (-1,-1) (0.5,-2) (-2,0.5).
  const config = { numLayers: 1, numHeads: 2, numKvHeads: 1, headDim: 2 } as ModelConfig;
  const keys = [[9, 9], [9, 9], [3, 0], [0, 3], [2, 1], [1, 2], [-1, -1], [0.5, -2], [-2, 0.5], [7, 7], [7, 7], [7, 7]];
  const layer = LayerCache.empty(1, 2, 'f32');
  const flat = Float32Array.from(keys.flat());
  layer.heads[0].append(flat, flat, Int32Array.from(keys.keys()), 0, 2);
  const ra = new RetrievalAttentionSelector({ sinks: 2, window: 3, budget: 2 });
  // A prefill chunk (two rows) runs full attention; its queries become the index's training queries.
  const prefillQ = Float32Array.from([1, 0.1, 0.1, 1, 0.9, 0.2, 0.2, 0.9]);
  assert.equal(ra.select({ layer: 0, config, cache: layer, queries: prefillQ, positions: Int32Array.from([10, 11]) }), undefined);
  // Decoding: head 0 asks (1,0): middle scores 3 0 2 1 -1 0.5 -2 → entries 2, 4; head 1 asks (0,1): 0 3 1 2 -1 -2 0.5
  // → entries 3, 5. Each list: sinks 0, 1, the two retrieved, the window 9, 10, 11.
  const step = (q: number[], at: number) => ra.select({ layer: 0, config, cache: layer, queries: Float32Array.from(q), positions: Int32Array.from([at]) });
  assert.deepEqual(lists(step([1, 0, 0, 1], 12)), [[0, 1, 2, 4, 9, 10, 11], [0, 1, 3, 5, 9, 10, 11]]);
  assert.equal(ra.stats.builds, 1);
  assert.equal(ra.stats.trainingQueries, 4);
  assert.equal(ra.stats.indexed, 7);
  // A new entry pushes entry 9 (7,7) out of the window into the index: head 0 now retrieves 9 and 2.
  layer.heads[0].append(Float32Array.from([0, 0]), Float32Array.from([0, 0]), Int32Array.from([12]), 0, 2);
  assert.deepEqual(lists(step([1, 0, 0, 1], 13)), [[0, 1, 2, 9, 10, 11, 12], [0, 1, 3, 9, 10, 11, 12]]);
  assert.equal(ra.stats.inserts, 1);
  assert.equal(ra.stats.builds, 1);
  // A press that drops an indexed entry changes the head under the index: it is rebuilt. Entry 2 (3,0) gone.
  layer.heads[0].keep([0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  assert.deepEqual(lists(step([1, 0, 0, 1], 13)), [[0, 1, 3, 8, 9, 10, 11], [0, 1, 2, 8, 9, 10, 11]]);
  assert.equal(ra.stats.builds, 2);
  // A budget covering the middle reads everything (null); the dense layers and prefill chunks run full attention.
  assert.deepEqual(lists(new RetrievalAttentionSelector({ sinks: 2, window: 3, budget: 7 }).select({ layer: 0, config, cache: layer, queries: Float32Array.from([1, 0, 0, 1]), positions: Int32Array.from([13]) })), [null, null]);
  assert.equal(new RetrievalAttentionSelector({ denseLayers: 1 }).select({ layer: 0, config, cache: layer, queries: Float32Array.from([1, 0, 0, 1]), positions: Int32Array.from([13]) }), undefined);
  assert.throws(() => createSelector('retrieval-attention', { baseline: 2 }), /baseline must be 0/);
  assert.throws(() => createSelector('retrieval-attention', { budget: 0 }), /budget must be a whole number ≥ 1/);
  assert.throws(() => createSelector('retrieval-attention', { topk: 3 }), /no option 'topk'/);
});

/** Deterministic normal samples. */
function gaussian(seed: number): () => number {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

/** Mean recall@k of the index's answers against the exact top-k by q·k, and the mean share of keys compared. */
function recallOf(index: { search(q: Float32Array, k: number): { ids: Int32Array; distances: number } }, keys: Float32Array, n: number, queries: Float32Array, m: number, d: number, k: number) {
  const scores = innerProducts(queries, m, keys, n, d);
  const exact = new Int32Array(k);
  let recall = 0;
  let compared = 0;
  for (let q = 0; q < m; q++) {
    topK(scores, q * n, n, k, exact);
    const truth = new Set(exact);
    const found = index.search(queries.subarray(q * d, (q + 1) * d), k);
    recall += found.ids.filter((id) => truth.has(id)).length / k;
    compared += found.distances;
  }
  return { recall: recall / m, scanned: compared / m / n };
}

test('the attention-aware index finds out-of-distribution queries\' top-k that a key-only graph misses', () => {
  // Keys around +2 in the first 4 channels, queries around −1 there and +1 every third channel: queries are out of
  // the keys' distribution, as in attention. n = 1500 keys, d = 32, top-20.
  const n = 1500;
  const d = 32;
  const k = 20;
  const g = gaussian(7);
  const row = (i: number, query: boolean) => (query ? 0.5 * g() + (i % d < 4 ? -1 : (i % d) % 3 === 0 ? 1 : 0) : g() + (i % d < 4 ? 2 : 0));
  const keys = Float32Array.from({ length: n * d }, (_, i) => row(i, false));
  const training = Float32Array.from({ length: n * d }, (_, i) => row(i, true));
  const tests = Float32Array.from({ length: 40 * d }, (_, i) => row(i, true));
  const opts = { degree: 16, buildList: 64, searchList: 60, nq: 50 };
  const aware = new RoarGraphIndex(d, opts);
  aware.build(keys, n, training, n);
  const keyOnly = new RoarGraphIndex(d, opts);
  keyOnly.build(keys, n, training, 0);
  const a = recallOf(aware, keys, n, tests, 40, d, k);
  const b = recallOf(keyOnly, keys, n, tests, 40, d, k);
  assert.ok(a.recall >= 0.95, `attention-aware recall@${k} ${a.recall}`);
  assert.ok(a.recall > b.recall + 0.2, `attention-aware ${a.recall} vs key-only ${b.recall}`);
  assert.ok(a.scanned < 0.5, `attention-aware compared ${a.scanned} of the keys`);
  // Degrees: projection lists of at most M, plus the enhancement's links: at most 2M.
  for (let i = 0; i < n; i++) assert.ok(aware.neighbours(i).length <= 2 * opts.degree);
  assert.ok(aware.targetQueries.length > 0 && aware.targetQueries.length <= n);
  // Inserting keys afterwards keeps them findable: a key equal to a test query's direction scaled up is its top.
  const probe = tests.subarray(0, d);
  aware.add(Float32Array.from(probe, (x) => 50 * x), 1);
  assert.equal(aware.search(probe, 1).ids[0], n);
});

test('the library baseline (usearch HNSW on keys) answers exact top-k on a small case', { skip: !usearchAvailable() && 'usearch is not installed' }, () => {
  const index = new UsearchHnswIndex(2);
  index.add(Float32Array.from([3, 0, 0, 3, 2, 1, 1, 2, -1, -1]), 5);
  assert.deepEqual(Array.from(index.search(Float32Array.from([1, 0]), 2).ids), [0, 2]);
  assert.deepEqual(Array.from(index.search(Float32Array.from([0, 1]), 2).ids), [1, 3]);
  assert.equal(index.size, 5);
});

const lm = loadModel(new URL('../../models/attend-mini', import.meta.url).pathname);
const prompt = lm.tokenizer.encode('The museum opens at nine. Tickets cost twelve euros, and the guided tour starts at ten. '.repeat(6) + 'The tour starts at');

test('a budget that covers the cache gives full attention exactly', () => {
  const full = decodeSelected(lm, prompt, undefined);
  const all = new SelectionSession(createSelector('retrieval-attention', { sinks: 4, window: 8, budget: 4096 }), lm.config);
  const same = decodeSelected(lm, prompt, all, { throughPrefill: true });
  same.logits.forEach((l, i) => assert.ok(l.every((x, j) => Math.abs(x - full.logits[i][j]) < 1e-5), `step ${i}`));
  assert.equal(all.readShare(), 1);
});

test('on attend-mini: the index is built from the prefill queries and each step reads sinks + window + k', () => {
  const full = decodeSelected(lm, prompt, undefined);
  const ra = new RetrievalAttentionSelector({ sinks: 4, window: 16, budget: 16 });
  const session = new SelectionSession(ra, lm.config);
  const sparse = decodeSelected(lm, prompt, session, { throughPrefill: true });
  assert.ok(sparse.logits.every((l) => l.every(Number.isFinite)));
  const { numLayers, numHeads, numKvHeads } = lm.config;
  assert.equal(session.stats.selections, 6 * numLayers);
  assert.equal(session.stats.lists, session.stats.selections * numHeads);
  assert.equal(session.stats.entriesRead, session.stats.lists * (4 + 16 + 16));
  assert.ok(session.readShare() < 0.4, `read share ${session.readShare()}`);
  // One index per layer and KV head, from every prefill query of its query heads; later steps insert, not rebuild.
  assert.equal(ra.stats.builds, numLayers * numKvHeads);
  assert.equal(ra.stats.trainingQueries, numLayers * numKvHeads * prompt.length * (numHeads / numKvHeads));
  assert.equal(ra.stats.inserts, 5 * numLayers * numKvHeads);
  assert.ok(ra.scanShare() > 0 && ra.scanShare() < 1, `scan share ${ra.scanShare()}`);
  assert.ok(sparse.logits.some((l, i) => l.some((x, j) => Math.abs(x - full.logits[i][j]) > 1e-4)), 'a small budget changes attention');
  // Without the prefill the index has no training queries (a key-only graph) and still serves the steps.
  const blind = new RetrievalAttentionSelector({ sinks: 4, window: 16, budget: 16 });
  decodeSelected(lm, prompt, new SelectionSession(blind, lm.config));
  assert.equal(blind.stats.trainingQueries, 0);
  assert.equal(blind.stats.builds, numLayers * numKvHeads);
});

test('on attend-mini with the library baseline: the same reads from an HNSW index on the keys alone', { skip: !usearchAvailable() && 'usearch is not installed' }, () => {
  const hnsw = new RetrievalAttentionSelector({ sinks: 4, window: 16, budget: 16, baseline: 1 });
  const session = new SelectionSession(hnsw, lm.config);
  const out = decodeSelected(lm, prompt, session, { throughPrefill: true });
  assert.ok(out.logits.every((l) => l.every(Number.isFinite)));
  assert.equal(session.stats.entriesRead, session.stats.lists * (4 + 16 + 16));
  assert.equal(hnsw.stats.builds, lm.config.numLayers * lm.config.numKvHeads);
  assert.equal(hnsw.stats.trainingQueries, 0);
  assert.ok(Number.isNaN(hnsw.scanShare()), 'usearch does not report the keys it compared');
});

test('through generate() (the CLI\'s and the bench\'s path) the index trains on the prompt\'s queries', async () => {
  const { generate } = await import('../../src/generate/generate.js');
  const ra = new RetrievalAttentionSelector({ sinks: 4, window: 16, budget: 16 });
  const out = await generate(lm, prompt, { temperature: 0, maxNewTokens: 3, prefillChunk: 16, selector: ra });
  const { numLayers, numHeads, numKvHeads } = lm.config;
  assert.equal(ra.stats.trainingQueries, numLayers * numKvHeads * prompt.length * (numHeads / numKvHeads));
  assert.ok(out.selection!.entriesRead > 0);
});
