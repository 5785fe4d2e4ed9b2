/** When compression runs, what it frees, and that compressed caches keep working (fixture model). */
import { CONTRACT_OPTIONS } from '../helpers/press-options.js';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { generate } from '../../src/generate/generate.js';
import { prefill } from '../../src/generate/prefill.js';
import { loadModel } from '../../src/models/load.js';
import { kvBytesPerToken, newCache } from '../../src/models/model.js';
import { createPress, PRESSES } from '../../src/presses/registry.js';
import { CompressionSession } from '../../src/presses/runner.js';
import { PARITY_DIR, maxAbsDiff } from '../helpers/fixtures.js';

const lm = loadModel(join(PARITY_DIR, 'llama-gqa-tied'));
const ids = Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % 384);

function positionsAscending(cache: ReturnType<typeof newCache>): boolean {
  return cache.layers.every((l) => l.heads.every((h) => h.positions.every((p, i, a) => i === 0 || p > a[i - 1])));
}

/** Options for presses whose defaults do not fit a 40-token prompt (SnapKV's and AdaKV's scorer's window is 64); the rest run on their defaults. */
const OPTIONS: Record<string, Record<string, string | number>> = {
  snapkv: { window: 8 },
  adakv: { scorer: 'knorm' },
  pyramidkv: { window: 4 },
  // FINCH re-rotates by default, renumbering what it keeps (as key-rerotation).
  finch: { window: 4, rerotate: 0 },
};

test('the options above name registered presses', () => {
  for (const name of Object.keys(OPTIONS)) assert.ok(PRESSES.some((p) => p.name === name), name);
});

// Presses that set their own size take no ratio (test/presses/decoding.test.ts tests them); key rerotation renumbers
// the kept entries 0…n−1 by design (test/presses/structure.test.ts); ThinK prunes key channels, not entries
// (test/presses/think.test.ts); RestoreKV adds its restore tokens' entries at new positions (test/presses/trained.test.ts);
// DuoAttention's ratio is a share of KV heads, not of entries (test/presses/duo-attention.test.ts checks its bytes).
const OWN_LAYOUT = new Set(['key-rerotation', 'think', 'restorekv', 'duo-attention']);
for (const { name } of PRESSES.filter((p) => !p.sizesItself && !OWN_LAYOUT.has(p.name))) {
  test(`${name}: ratio 0.5 really halves the bytes held, positions stay original`, () => {
    const cache = newCache(lm.config);
    const session = new CompressionSession({ press: createPress(name, OPTIONS[name] ?? CONTRACT_OPTIONS[name] ?? {}), budget: { ratio: 0.5 } }, lm.model, cache);
    prefill(lm.model, cache, ids, { chunkSize: 16, observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, ids.length) });
    const full = ids.length * kvBytesPerToken(lm.config);
    const stats = cache.layers.flatMap((l) => l.heads).reduce((s, h) => s + h.bytes() - h.capacity * (2 * h.headDim * 4 + 4), 0);
    assert.ok(cache.bytes() - stats <= full / 2, `${cache.bytes() - stats} > ${full / 2}`);
    assert.equal(cache.entries(), (lm.config.numLayers * lm.config.numKvHeads * ids.length) / 2);
    assert.ok(positionsAscending(cache));
    assert.equal(cache.nextPosition, ids.length);
    // The question continues the original numbering on the compressed cache.
    const logits = lm.model.forward([5, 6], cache).f32;
    assert.ok(logits.every(Number.isFinite));
    assert.equal(cache.layers[0].heads[0].positions.at(-1), ids.length + 1);
  });
}

const createAda = () => createPress('adakv', { scorer: 'knorm' });

test('adakv: heads keep different numbers of entries, and their total is the budget', () => {
  const cache = newCache(lm.config);
  const session = new CompressionSession({ press: createAda(), budget: { ratio: 0.5 } }, lm.model, cache);
  prefill(lm.model, cache, ids, { observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, ids.length) });
  for (const layer of cache.layers) {
    const lengths = layer.heads.map((h) => h.length);
    assert.equal(lengths.reduce((a, b) => a + b), (ids.length / 2) * layer.heads.length);
  }
  const all = cache.layers.flatMap((l) => l.heads.map((h) => h.length));
  assert.ok(new Set(all).size > 1, `every head kept the same count: ${all}`);
});

test('chunked compression keeps every head within the budget after each chunk', () => {
  const cache = newCache(lm.config);
  const session = new CompressionSession({ press: createPress('snapkv', { window: 4 }), budget: { ratio: 0.75 }, during: 'chunks' }, lm.model, cache);
  const seenSizes: number[] = [];
  prefill(lm.model, cache, ids, {
    chunkSize: 8,
    observer: session.observer,
    afterChunk: (c, end) => {
      session.afterChunk(end, ids.length);
      seenSizes.push(Math.max(...c.layers.map((l) => l.maxLength())));
      assert.ok(seenSizes.at(-1)! <= Math.floor(end * 0.25), `after ${end} tokens a head holds ${seenSizes.at(-1)}`);
    },
  });
  assert.deepEqual(seenSizes, [2, 4, 6, 8, 10]);
  assert.equal(session.stats.compressions, 5);
});

test('token budgets: heads keep that many entries', () => {
  const cache = newCache(lm.config);
  const session = new CompressionSession({ press: createPress('knorm', {}), budget: { tokens: 7 } }, lm.model, cache);
  prefill(lm.model, cache, ids, { observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, ids.length) });
  assert.ok(cache.layers.every((l) => l.heads.every((h) => h.length === 7)));
});

test('h2o evicts while decoding, holding the cache at its prefill budget', async () => {
  const plan = { press: createPress('h2o', {}), budget: { ratio: 0.5 }, decode: { every: 1 } };
  const result = await generate(lm, ids, { temperature: 0, maxNewTokens: 10, eosTokenIds: [], compression: plan });
  assert.equal(result.tokens.length, 10);
  // Prefill left 20 entries per head; each decoded token is added then one entry evicted.
  assert.ok(result.cache.layers.every((l) => l.heads.every((h) => h.length === 20)));
  assert.equal(result.compression!.compressions, 10);
  assert.ok(positionsAscending(result.cache));
});

test('a compressed context can answer several questions from copies', () => {
  const cache = newCache(lm.config);
  const session = new CompressionSession({ press: createPress('knorm', {}), budget: { ratio: 0.5 } }, lm.model, cache);
  prefill(lm.model, cache, ids, { observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, ids.length) });
  const bytes = cache.bytes();
  const a = lm.model.forward([1, 2, 3], cache.clone()).f32;
  const b = lm.model.forward([1, 2, 3], cache.clone()).f32;
  assert.equal(maxAbsDiff(a, b), 0);
  assert.equal(cache.bytes(), bytes);
  assert.equal(cache.nextPosition, ids.length);
});

test('a batch of sequences with different lengths and budgets decodes as each would alone', () => {
  const prompts = [ids, ids.slice(0, 24)];
  const budgets = [{ ratio: 0.5 }, { tokens: 5 }];
  const run = () =>
    prompts.map((p, i) => {
      const cache = newCache(lm.config);
      const session = new CompressionSession({ press: createPress('knorm', {}), budget: budgets[i] }, lm.model, cache);
      prefill(lm.model, cache, p, { observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, p.length) });
      return cache;
    });
  const alone = run().map((cache) => lm.model.forward([7], cache).f32);
  const caches = run();
  const together = lm.model.forwardBatch(caches.map((cache) => ({ ids: [7], cache })));
  together.forEach((t, i) => assert.ok(maxAbsDiff(t.f32, alone[i]) < 1e-5));
  assert.equal(caches[1].layers[0].heads[0].length, 6);
  assert.equal(caches[0].layers[0].heads[0].length, 21);
});
