/** LazyEviction: recurrence tracking and the official importance, by hand; then lagged eviction on a fixture model. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backend/cpu/index.js';
import { KVCache, type LayerCache } from '../../src/cache/kv-cache.js';
import type { HeadStore } from '../../src/cache/head-store.js';
import type { ModelConfig } from '../../src/models/config.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import { prefill } from '../../src/generate/prefill.js';
import { CompressionSession } from '../../src/presses/runner.js';
import { LAZY_LAST, LAZY_MRI, LAZY_SEEN, LazyEvictionPress, lazyImportance } from '../../src/presses/lazy-eviction.js';
import { topK, type LayerView } from '../../src/presses/press.js';
import { argmax } from '../helpers/argmax.js';
import { PARITY_DIR } from '../helpers/fixtures.js';
import { watchBlocks } from '../helpers/observer.js';

// One layer, one KV head shared by two query heads, head size 2.
const config = { numLayers: 1, numHeads: 2, numKvHeads: 1, headDim: 2 } as ModelConfig;
const ALPHA = 0.1;

function view(cache: KVCache, keep: number): LayerView {
  const layer: LayerCache = cache.layers[0];
  return { layer: 0, config, backend: cpuBackend, cache: layer, seen: cache.nextPosition, keep, ratio: 1 - keep / layer.maxLength(), uniform: keep };
}

function append(cache: KVCache<HeadStore>, positions: number[]): void {
  const zeros = new Float32Array(positions.length * 2);
  cache.layers[0].heads[0].append(zeros, zeros, Int32Array.from(positions), 0, 2);
  cache.nextPosition = positions[positions.length - 1] + 1;
}

/** One forward pass as the model makes it: queries first, then the probabilities of each query head (rows: token, then head). */
function step(observer: ReturnType<LazyEvictionPress['observer']>, positions: number[], rows: number[][]): void {
  const cols = positions[positions.length - 1] + 1;
  observer.queries!(0, new Float32Array(positions.length * 4), Int32Array.from(positions));
  const probs = new Float32Array(rows.length * cols);
  rows.forEach((r, i) => probs.set(r, i * cols));
  observer.observe!({ layer: 0, kvHead: 0, groupSize: 2, queryPositions: Int32Array.from(positions), probs, cols });
}

/** A decoding step at position q: `hot0`/`hot1` get 0.5 from query head 0/1, the new token itself 0.3, the rest share what is left (< alpha). */
function decode(observer: ReturnType<LazyEvictionPress['observer']>, cache: KVCache<HeadStore>, q: number, hot0: number[], hot1: number[]): void {
  append(cache, [q]);
  const row = (hot: number[]) => {
    const r = new Array(q + 1).fill(0);
    hot.forEach((i) => (r[i] = 0.5 / hot.length));
    r[q] = 0.3;
    const cold = q + 1 - hot.length - 1;
    for (let i = 0; i < q; i++) if (!hot.includes(i)) r[i] = 0.2 / cold;
    return r;
  };
  step(observer, [q], [row(hot0), row(hot1)]);
}

test('recurrence: renewed entries fold their interval into the MRI; prefill passes are not tracked', () => {
  const press = new LazyEvictionPress({ window: 2, alpha: ALPHA });
  const cache = new KVCache<HeadStore>({ numLayers: 1, numKvHeads: 1, headDim: 2 });
  const observer = press.observer(cache);
  // Prompt of 4 tokens in one pass: every probability is high, but prefill is not tracked.
  append(cache, [0, 1, 2, 3]);
  step(observer, [0, 1, 2, 3], Array.from({ length: 8 }, () => [1, 1, 1, 1]));
  assert.deepEqual(Array.from(cache.layers[0].heads[0].stat(LAZY_SEEN)), [0, 0, 0, 0]);
  // Decoding, time = position + 1; entries start at last = time − 1.
  decode(observer, cache, 4, [0], [1]); // t=5: 0 and 1 renewed (1 only through query head 1), interval 1
  decode(observer, cache, 5, [0], [0]); // t=6: 0 renewed, interval 1
  decode(observer, cache, 6, [0, 1], [0]); // t=7: 0 (interval 1), 1 (interval 7 − 5 = 2)
  decode(observer, cache, 7, [2], [2]); // t=8: 2 renewed for the first time: interval 8 − 4 = 4
  const head = cache.layers[0].heads[0];
  assert.deepEqual(Array.from(head.stat(LAZY_LAST)), [7, 7, 8, 4, 5, 6, 7, 8]);
  assert.deepEqual(Array.from(head.stat(LAZY_MRI)), [1, 2, 4, 0, 1, 1, 1, 1]);
  assert.deepEqual(Array.from(head.stat(LAZY_SEEN)), [1, 1, 1, 1, 1, 1, 1, 1]);

  // Official importance at t = 8, recent window (2 entries) protected.
  const scores = press.score(view(cache, 6))[0];
  const expected = [
    2 / (1 + Math.exp(1 + 1 / 1.00001)) + 1, // 0: mri 1, gap 1
    2 / (1 + Math.exp(1 + 1 / 2.00001)) + 2 / (1 + Math.E), // 1: mri 2, gap 1
    2 / (1 + Math.exp(1)) + 2 / (1 + Math.exp(3)), // 2: mri 4, gap 0
    0, // 3: never renewed
    2 / (1 + Math.exp(1 + 3 / 1.00001)) + 1, // 4: mri 1, gap 3
    2 / (1 + Math.exp(1 + 2 / 1.00001)) + 1, // 5: mri 1, gap 2
  ];
  expected.forEach((e, i) => assert.ok(Math.abs(scores[i] - e) < 1e-6, `entry ${i}: ${scores[i]} vs ${e}`));
  assert.equal(scores[6], Infinity);
  assert.equal(scores[7], Infinity);
  assert.ok(Math.abs(lazyImportance(8, 4, 0)) < 1e-12);

  // Keep 6: the window (6, 7) and the best four of the rest; 3 (never renewed) and 2 (long interval) go.
  assert.deepEqual(Array.from(topK(scores, 6)), [0, 1, 4, 5, 6, 7]);
  // Keep 5: 1 (interval 2) goes too.
  assert.deepEqual(Array.from(topK(press.score(view(cache, 5))[0], 5)), [0, 4, 5, 6, 7]);
  // Keep 1: fewer than the window: only the newest entry is protected.
  assert.deepEqual(Array.from(topK(press.score(view(cache, 1))[0], 1)), [7]);
});

test('statistics move with the entries when a head is compacted, and new entries start untracked', () => {
  const press = new LazyEvictionPress({ window: 1, alpha: 0.15 });
  const cache = new KVCache<HeadStore>({ numLayers: 1, numKvHeads: 1, headDim: 2 });
  const observer = press.observer(cache);
  append(cache, [0, 1, 2]);
  decode(observer, cache, 3, [1], [1]); // t=4: 1 renewed (interval 4 − 3 = 1); 0 and 2 get 0.1 < alpha
  decode(observer, cache, 4, [1], [0]); // t=5: 1 (interval 1) and 0 (interval 5 − 3 = 2)
  const head = cache.layers[0].heads[0];
  assert.deepEqual(Array.from(head.stat(LAZY_MRI)), [2, 1, 0, 1, 1]);
  // t=5: 0 → 2σ(−1)·2 ≈ 1.076, 1 → 1.538, 2 → 0 (never renewed), 3 → 1.238, 4 protected.
  head.keep(topK(press.score(view(cache, 4))[0], 4));
  assert.deepEqual(Array.from(head.positions), [0, 1, 3, 4]);
  assert.deepEqual(Array.from(head.stat(LAZY_MRI)), [2, 1, 1, 1]);
  assert.deepEqual(Array.from(head.stat(LAZY_LAST)), [5, 5, 4, 5]);
  append(cache, [5]);
  assert.deepEqual(Array.from(head.stat(LAZY_SEEN)), [1, 1, 1, 1, 0]);
});

test('the official step order: evict every `window` decoding steps, back to the prefill size, on a fixture model', () => {
  const lm = loadModel(join(PARITY_DIR, 'llama-gqa-tied'));
  const ids = [1, 5, 9, 33, 7, 100, 42, 17, 250, 3, 64, 12];
  const window = 4;
  const press = new LazyEvictionPress({ window, alpha: 0.1 });
  // A budget of the prompt's length keeps the prompt whole, as the official code does.
  const plan = { press, budget: { tokens: ids.length }, decode: { every: window } };
  const cache = newCache(lm.config);
  const session = new CompressionSession(plan, lm.model, cache);
  // The session's observer already chains the press's own (runner.ts). Recording a block twice would leave the
  // recurrence statistics as they are (a second renewal at the same time changes nothing), so count instead: each
  // block of a decoding step is recorded exactly once.
  let records = 0;
  const record = press.record.bind(press);
  press.record = (block, c) => {
    records++;
    record(block, c);
  };
  let decodeBlocks = 0;
  let decoding = false;
  const observer = watchBlocks(session.observer, () => {
    if (decoding) decodeBlocks++;
  });
  let logits = prefill(lm.model, cache, ids, { chunkSize: 5, observer, afterChunk: (_, end) => session.afterChunk(end, ids.length) });
  assert.equal(session.stats.compressions, 0);
  const full = newCache(lm.config);
  prefill(lm.model, full, ids, { chunkSize: 5 });
  assert.equal(records, 0, 'prefill passes are not tracked');
  const tokens: number[] = [];
  decoding = true;
  for (let s = 1; s <= 30; s++) {
    const token = argmax(logits);
    tokens.push(token);
    logits = lm.model.forward([token], cache, { lastOnly: true, observer }).f32;
    lm.model.forward([token], full, { lastOnly: true });
    session.afterDecodeStep();
    for (const layer of cache.layers) {
      for (const head of layer.heads) {
        // Lagged: the cache grows for `window` steps, then goes back to the prompt's size.
        assert.equal(head.length, ids.length + (s % window));
        const p = Array.from(head.positions);
        assert.ok(p.every((x, i) => i === 0 || x > p[i - 1]), 'positions ascending');
        assert.ok(p.every((x) => x >= 0 && x < cache.nextPosition), 'original positions');
        // The observation window just ended is kept whole.
        if (s % window === 0) assert.deepEqual(p.slice(-window), [0, 1, 2, 3].map((k) => cache.nextPosition - window + k));
      }
    }
    // Right after an eviction the dropped entries' memory is released (appends then regrow the heads).
    if (s % window === 0) {
      assert.ok(cache.layers.every((l) => l.heads.every((h) => h.capacity === h.length)));
      assert.ok(cache.bytes() < full.bytes(), `${cache.bytes()} < ${full.bytes()}`);
    }
    if (s >= window) assert.ok(cache.entries() < full.entries());
  }
  assert.equal(session.stats.compressions, 7);
  assert.ok(decodeBlocks >= 30 * lm.config.numLayers * lm.config.numKvHeads, `${decodeBlocks} blocks`);
  assert.equal(records, decodeBlocks, 'every decoding block recorded once');
  assert.equal(cache.nextPosition, ids.length + 30);
  assert.ok(tokens.every((t) => Number.isInteger(t) && t >= 0 && t < lm.config.vocabSize));
  assert.ok(logits.every(Number.isFinite), 'generation continues');
  // Recurrence was tracked in every head.
  assert.ok(cache.layers.every((l) => l.heads.every((h) => h.stat(LAZY_SEEN).every((x) => x === 1))));
});
