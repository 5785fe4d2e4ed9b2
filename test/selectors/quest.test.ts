/**
 * Quest (selectors/quest.ts): the page bound worked by hand, the official rule's page count, exactness when the
 * budget covers every page, and a decode at a small budget that reads fewer entries and still runs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LayerCache } from '../../src/cache/kv-cache.js';
import { loadModel } from '../../src/models/load.js';
import type { ModelConfig } from '../../src/models/config.js';
import { QuestSelector } from '../../src/selectors/quest.js';
import { createSelector, SelectionSession } from '../../src/selectors/registry.js';
import { decodeSelected } from '../helpers/selector-decode.js';

test('page bounds by hand: Σ max(q·min, q·max) ranks the pages', () => {
  // One KV head, d = 2, pages of 2 entries: page 0 keys (1,0),(0,1); page 1 (-1,-1),(-2,0); page 2 (3,-5),(0,0).
  const layer = LayerCache.empty(1, 2, 'f32');
  const keys = Float32Array.from([1, 0, 0, 1, -1, -1, -2, 0, 3, -5, 0, 0]);
  layer.heads[0].append(keys, keys, Int32Array.from([0, 1, 2, 3, 4, 5]), 0, 2);
  const config = { numHeads: 1, numKvHeads: 1, headDim: 2 } as ModelConfig;
  const quest = new QuestSelector({ budget: 2, page: 2, denseLayers: 0 });
  // k = max(3, 2/2) = 3 pages = all: full attention, no list.
  assert.deepEqual(quest.select({ layer: 0, config, cache: layer, queries: Float32Array.from([1, 1]), positions: Int32Array.from([6]) }), [null]);
  // With 4 pages (8 entries) k stays 3: the lowest bound is dropped. q = (1, -1): bounds page 0: max(1·0,1·1)+max(-1·0,-1·1) = 1;
  // page 1: max(-1,-2)... = -1 + 1 = 0; page 2: 3 + 5 = 8; page 3 (keys (0,2),(0,3)): 0 + (-2) = -2 → pages 0, 1, 2.
  layer.heads[0].append(Float32Array.from([0, 2, 0, 3]), Float32Array.from([0, 2, 0, 3]), Int32Array.from([6, 7]), 0, 2);
  const lists = quest.select({ layer: 0, config, cache: layer, queries: Float32Array.from([1, -1]), positions: Int32Array.from([8]) })!;
  assert.deepEqual(Array.from(lists[0]!), [0, 1, 2, 3, 4, 5]);
  // The first layers and prefill chunks run full attention.
  assert.equal(new QuestSelector({ budget: 2, page: 2 }).select({ layer: 1, config, cache: layer, queries: Float32Array.from([1, -1]), positions: Int32Array.from([8]) }), undefined);
  assert.equal(quest.select({ layer: 0, config, cache: layer, queries: Float32Array.from([1, -1, 1, 1]), positions: Int32Array.from([8, 9]) }), undefined);
  assert.throws(() => createSelector('quest', { pages: 3 }), /no option 'pages'/);
  assert.throws(() => createSelector('nope'), /unknown selector/);
});

const lm = loadModel(new URL('../../models/attend-mini', import.meta.url).pathname);
const prompt = lm.tokenizer.encode('The museum opens at nine. Tickets cost twelve euros, and the guided tour starts at ten. '.repeat(6) + 'The tour starts at');

const decode = (select: SelectionSession | undefined) => decodeSelected(lm, prompt, select);

test('a budget that covers every page gives full attention exactly; a small one reads less', () => {
  const full = decode(undefined);
  const all = new SelectionSession(createSelector('quest', { budget: 4096 }), lm.config);
  const same = decode(all);
  same.logits.forEach((l, i) => assert.ok(l.every((x, j) => Math.abs(x - full.logits[i][j]) < 1e-5), `step ${i}`));
  assert.equal(all.stats.selections, 6 * (lm.config.numLayers - 2));
  assert.equal(all.readShare(), 1);
  const small = new SelectionSession(createSelector('quest', { budget: 48, page: 16 }), lm.config);
  const sparse = decode(small);
  assert.ok(sparse.logits.every((l) => l.every(Number.isFinite)));
  // Each query head reads its own 3 pages of 16 entries (the official per-query-head rule) out of the ~130 held.
  assert.equal(small.stats.lists, small.stats.selections * lm.config.numHeads);
  assert.ok(small.stats.entriesRead <= small.stats.lists * 48, `${small.stats.entriesRead} read in ${small.stats.lists} lists`);
  assert.ok(small.readShare() < 1, `read share ${small.readShare()}`);
  assert.ok(sparse.logits.some((l, i) => l.some((x, j) => Math.abs(x - full.logits[i][j]) > 1e-4)), 'a small budget changes attention');
});
