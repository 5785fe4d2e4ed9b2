/**
 * A session joining a prefill recorded for several presses (CompressionSession.afterSharedPrefill) compresses
 * as one that watched the prefill itself; presses that record their own statistics are refused (fixture model).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { KVCache } from '../../src/cache/kv-cache.js';
import { prefill } from '../../src/generate/prefill.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import { PressRecorder } from '../../src/presses/observe.js';
import { createPress } from '../../src/presses/registry.js';
import { type CompressionPlan, CompressionSession } from '../../src/presses/runner.js';
import { PARITY_DIR } from '../helpers/fixtures.js';

const lm = loadModel(join(PARITY_DIR, 'llama-gqa-tied'));
const ids = Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % 384);
const width = lm.config.numHeads * lm.config.headDim;

function positions(cache: KVCache): number[][] {
  return cache.layers.flatMap((l) => l.heads.map((h) => Array.from(h.positions)));
}

test('snapkv from a longer shared query window keeps what its own session keeps', () => {
  const plan = (): CompressionPlan => ({ press: createPress('snapkv', { window: 4 }), budget: { ratio: 0.5 } });
  const own = newCache(lm.config);
  const session = new CompressionSession(plan(), lm.model, own);
  prefill(lm.model, own, ids, { chunkSize: 16, observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, ids.length) });

  const shared = newCache(lm.config);
  const recorder = new PressRecorder({ queryWindow: 12, attention: true }, width);
  prefill(lm.model, shared, ids, { chunkSize: 16, observer: recorder });
  const joined = shared.clone();
  CompressionSession.afterSharedPrefill(plan(), lm.model, joined, recorder.recorded());
  assert.deepEqual(positions(joined), positions(own));
  assert.equal(shared.entries(), lm.config.numLayers * lm.config.numKvHeads * ids.length);
});

test('presses with their own observers, and per-chunk compression, cannot join a shared prefill', () => {
  const cache = newCache(lm.config);
  prefill(lm.model, cache, ids);
  const joinShared = (plan: CompressionPlan) => () => CompressionSession.afterSharedPrefill(plan, lm.model, cache, []);
  assert.throws(joinShared({ press: createPress('lazy-eviction', {}), budget: { ratio: 0.5 } }), /records its own statistics/);
  assert.throws(joinShared({ press: createPress('knorm', {}), budget: { ratio: 0.5 }, during: 'chunks' }), /compressed once at its end/);
  assert.equal(cache.entries(), lm.config.numLayers * lm.config.numKvHeads * ids.length);
});
