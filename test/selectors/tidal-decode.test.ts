/**
 * TidalDecode (selectors/tidal-decode.ts): the selection layers' top-k and its reuse worked by hand on a constructed
 * four-layer cache, the re-selection layer scaled by depth, exactness when the budget covers the cache, and a
 * decode at a small budget that reads fewer entries and still runs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LayerCache } from '../../src/cache/kv-cache.js';
import { loadModel } from '../../src/models/load.js';
import type { ModelConfig } from '../../src/models/config.js';
import { TidalDecodeSelector } from '../../src/selectors/tidal-decode.js';
import { createSelector, SelectionSession } from '../../src/selectors/registry.js';
import { decodeSelected } from '../helpers/selector-decode.js';

/** One KV head of d = 2 holding `keys` (rows) at `positions`. */
function layerOf(keys: number[][], positions: number[]): LayerCache {
  const layer = LayerCache.empty(1, 2, 'f32');
  const flat = Float32Array.from(keys.flat());
  layer.heads[0].append(flat, flat, Int32Array.from(positions), 0, 2);
  return layer;
}

const lists = (l: (Int32Array | null)[] | undefined) => l?.map((x) => (x ? Array.from(x) : null));

test('selection layers pick each query head\'s top-k positions; the layers after read those entries', () => {
  // Two query heads share one KV head; layer 0 selects, 1 reuses, 2 re-selects, 3 reuses.
  const config = { numLayers: 4, numHeads: 2, numKvHeads: 1, headDim: 2 } as ModelConfig;
  const td = new TidalDecodeSelector({ budget: 2, denseLayers: 0, reselectLayer: 2 });
  const queries = Float32Array.from([1, 0, 0, 1]); // head 0: (1,0), head 1: (0,1)
  const step = Int32Array.from([5]);
  const at = (layer: number, cache: LayerCache, positions = step) => td.select({ layer, config, cache, queries, positions });
  // Layer 0, keys at positions 0–4: (1,0) (0,1) (-1,0) (2,2) (0,-3). Head 0 scores 1 0 -1 2 0 → positions 3, 0;
  // head 1 scores 0 1 0 2 -3 → positions 3, 1. The selection layer itself attends in full.
  const full = layerOf([[1, 0], [0, 1], [-1, 0], [2, 2], [0, -3]], [0, 1, 2, 3, 4]);
  assert.equal(at(0, full), undefined);
  // Layer 1 holds positions 0, 2, 3, 4 (1 was evicted there): head 0 reads positions 0, 3 = entries 0, 2; head 1
  // reads position 3 = entry 2 only (its position 1 is not held).
  const pressed = layerOf([[9, 9], [9, 9], [9, 9], [9, 9]], [0, 2, 3, 4]);
  assert.deepEqual(lists(at(1, pressed)), [[0, 2], [2]]);
  // Layer 2 re-selects on its own keys (0,0) (5,0) (0,5) (-1,-1) (1,1): head 0 scores 0 5 0 -1 1 → positions 1, 4;
  // head 1 scores 0 0 5 -1 1 → positions 2, 4. Layer 3 (all positions held) reads those.
  assert.equal(at(2, layerOf([[0, 0], [5, 0], [0, 5], [-1, -1], [1, 1]], [0, 1, 2, 3, 4])), undefined);
  assert.deepEqual(lists(at(3, full)), [[1, 4], [2, 4]]);
  // Another step's layer without a selection of its own runs full; so do prefill chunks and the dense layers.
  assert.equal(at(3, full, Int32Array.from([6])), undefined);
  assert.equal(td.select({ layer: 1, config, cache: full, queries: Float32Array.from([1, 0, 0, 1, 1, 0, 0, 1]), positions: Int32Array.from([5, 6]) }), undefined);
  assert.equal(new TidalDecodeSelector({ budget: 2 }).select({ layer: 1, config, cache: full, queries, positions: step }), undefined);
  // A budget covering the head's entries chooses all: the layers after read everything.
  const wide = new TidalDecodeSelector({ budget: 5, denseLayers: 0, reselectLayer: 0 });
  wide.select({ layer: 0, config, cache: full, queries, positions: step });
  assert.deepEqual(lists(wide.select({ layer: 1, config, cache: pressed, queries, positions: step })), [null, null]);
});

test('the re-selection layer: 13 of 32 as in the official scripts, scaled by depth otherwise', () => {
  const td = new TidalDecodeSelector();
  assert.deepEqual([32, 8, 28].map((n) => td.reselectLayer(n)), [13, 5, 12]);
  assert.equal(new TidalDecodeSelector({ reselectLayer: 9 }).reselectLayer(32), 9);
  assert.throws(() => createSelector('tidal-decode', { budget: 0 }), /budget must be a whole number ≥ 1/);
  assert.throws(() => createSelector('tidal-decode', { page: 16 }), /no option 'page'/);
});

const lm = loadModel(new URL('../../models/attend-mini', import.meta.url).pathname);
const prompt = lm.tokenizer.encode('The museum opens at nine. Tickets cost twelve euros, and the guided tour starts at ten. '.repeat(6) + 'The tour starts at');

const decode = (select: SelectionSession | undefined) => decodeSelected(lm, prompt, select).logits;

test('a budget that covers the cache gives full attention exactly; a small one reads less', () => {
  const full = decode(undefined);
  const all = new SelectionSession(createSelector('tidal-decode', { budget: 4096 }), lm.config);
  const same = decode(all);
  same.forEach((l, i) => assert.ok(l.every((x, j) => Math.abs(x - full[i][j]) < 1e-5), `step ${i}`));
  // attend-mini's 8 layers: 0, 1 dense, 2 selects, 3 and 4 reuse, 5 re-selects, 6 and 7 reuse.
  assert.equal(all.stats.selections, 6 * 4);
  assert.equal(all.readShare(), 1);
  const small = new SelectionSession(createSelector('tidal-decode', { budget: 16 }), lm.config);
  const sparse = decode(small);
  assert.ok(sparse.every((l) => l.every(Number.isFinite)));
  // Each query head reads exactly its 16 chosen positions (nothing is evicted) out of the ~130 held.
  assert.equal(small.stats.lists, small.stats.selections * lm.config.numHeads);
  assert.equal(small.stats.entriesRead, small.stats.lists * 16);
  assert.ok(small.readShare() < 0.2, `read share ${small.readShare()}`);
  assert.ok(sparse.some((l, i) => l.some((x, j) => Math.abs(x - full[i][j]) > 1e-4)), 'a small budget changes attention');
});
