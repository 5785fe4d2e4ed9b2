/**
 * SpecKV (src/presses/speckv.ts): the scoring rule worked by hand on a constructed layer (known draft-row and
 * window attention: which entries are kept, what the max pool changes, the mean reduction); the whole press on a
 * parity checkpoint against a direct f64 re-computation of the official rule (the target prefilled once with the
 * prompt and the draft's greedy tokens, as speckv.py does); the bundled pair on a 512-token prompt at ratio 0.5;
 * the errors. The press contract runs it too (test/presses/contract.test.ts, through the registry).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AttentionObserver } from '../../src/backend/backend.js';
import { AttendError } from '../../src/errors.js';
import { prefill } from '../../src/generate/prefill.js';
import { argmax } from '../../src/generate/sampler.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import { topK } from '../../src/presses/press.js';
import { createPress } from '../../src/presses/registry.js';
import { CompressionSession } from '../../src/presses/runner.js';
import { SPECKV_DEFAULTS, SpecKVPress, speckvScores } from '../../src/presses/speckv.js';
import { PARITY_DIR } from '../helpers/fixtures.js';
import { greedyByHand } from '../helpers/greedy.js';
import { layerOf, queriesOf, randomRows, tinyConfig, viewOf } from '../helpers/press-view.js';

const ROOT = join(import.meta.dirname, '..', '..');
const arr = (x: ArrayLike<number>) => Array.from(x);

// ---------------------------------------------------------------- the rule by hand

/**
 * One KV head, two query heads (group 2), 8 entries at positions 0…7; window 1: the last 2 tokens (6, 7) are the
 * window, entries 0…5 are scored. Window rows: 2 queries × 2 heads; draft rows already reduced (their max).
 */
function handCase() {
  const config = tinyConfig(2, 1, 2);
  const cache = layerOf([randomRows(8, 2, 3)]);
  const queries = queriesOf([[0, 0, 0, 0], [0, 0, 0, 0]], [6, 7]);
  const length = 8;
  const probs = new Float32Array(2 * 2 * length).fill(0.01);
  // Row (query 6, head 1) gives entry 4 0.3; the window's own columns never count.
  probs[(0 * 2 + 1) * length + 4] = 0.3;
  probs[(1 * 2 + 0) * length + 7] = 0.9;
  // The draft rows' max: entry 0 0.1, entry 3 0.05 (entries 6, 7 are the window's: ignored).
  const draft = Float32Array.from([0.1, 0, 0, 0.05, 0, 0, 0.7, 0.7]);
  return { view: viewOf(config, cache, 5, { queries }), probs: [probs], draft: [draft] };
}

test('speckv rule by hand: max over the draft and window rows, max-pooled, the window kept', () => {
  const { view, probs, draft } = handCase();
  // Per entry, the max over every row: [0.1, 0.01, 0.01, 0.05, 0.3, 0.01]; max pool of 3 (kernel//2 each side):
  // [0.1, 0.1, 0.05, 0.3, 0.3, 0.3]; the window (6, 7) at the highest + 1.
  const [s] = speckvScores(view, probs, draft, 3, { kernel: 3, pool: 'max', reduction: 'max' });
  assert.deepEqual(arr(s).map((x) => +x.toFixed(4)), [0.1, 0.1, 0.05, 0.3, 0.3, 0.3, 1.3, 1.3]);
  assert.deepEqual(arr(topK(s, 5)), [3, 4, 5, 6, 7]);
  // One more: entries 0 and 1 tie at 0.1, the earlier is kept.
  assert.deepEqual(arr(topK(s, 6)), [0, 3, 4, 5, 6, 7]);
  // Without pooling (width 1) the draft's entries 0 and 3 win over 4's neighbours.
  const [raw] = speckvScores(view, probs, draft, 3, { kernel: 1, pool: 'max', reduction: 'max' });
  assert.deepEqual(arr(topK(raw, 5)), [0, 3, 4, 6, 7]);
});

test('speckv rule by hand: the mean reduction divides by every row, mean pooling counts the padding', () => {
  const { view, probs, draft } = handCase();
  // 2 window tokens + 3 draft tokens, × 2 heads = 10 rows. The draft's sums here: [0.1, 0, 0, 0.05, 0, 0].
  // Window sums: 0.04 everywhere, entry 4: 0.03 + 0.3 = 0.33. Means: [0.014, 0.004, 0.004, 0.009, 0.033, 0.004].
  const [s] = speckvScores(view, probs, draft, 3, { kernel: 1, pool: 'mean', reduction: 'mean' });
  assert.deepEqual(arr(s.subarray(0, 6)).map((x) => +x.toFixed(5)), [0.014, 0.004, 0.004, 0.009, 0.033, 0.004]);
  // Mean pool of 3 with zeros counted: entry 0 (0 + 0.014 + 0.004) / 3 = 0.006.
  const [pooled] = speckvScores(view, probs, draft, 3, { kernel: 3, pool: 'mean', reduction: 'mean' });
  assert.ok(Math.abs(pooled[0] - 0.006) < 1e-7, `entry 0 pooled ${pooled[0]}`);
  assert.ok(Math.abs(pooled[4] - (0.009 + 0.033 + 0.004) / 3) < 1e-7, `entry 4 pooled ${pooled[4]}`);
});

// ---------------------------------------------------------------- the press against the official rule

const target = loadModel(join(PARITY_DIR, 'llama-gqa-tied'));
const draft = loadModel(join(PARITY_DIR, 'llama3-mqa'));
const ids = Array.from({ length: 40 }, (_, i) => (i * 53 + 7) % target.config.vocabSize);

/**
 * speckv.py's computation: one prefill of prompt + draft tokens; in each layer the last window + lookahead + 1
 * queries attend (f64 softmax, 1/√d) over every key they see; per KV head, the max over the group and those rows for
 * each entry before them, max-pooled (−∞ padding), its top budget − window − 1, and the window's window + 1.
 */
function officialKept(prompt: number[], tokens: number[], window: number, kernel: number, budget: number): number[][][] {
  const c = target.config;
  const d = c.headDim;
  const group = c.numHeads / c.numKvHeads;
  const all = [...prompt, ...tokens];
  const width = c.numHeads * d;
  const queries = Array.from({ length: c.numLayers }, () => new Float32Array(all.length * width));
  const observer: AttentionObserver = { queries: (layer, q, positions) => queries[layer].set(q.subarray(0, positions.length * width), positions[0] * width) };
  const cache = newCache(c);
  target.model.forward(all, cache, { observer });
  const rowsFrom = prompt.length - window - 1;
  return cache.layers.map((layer, l) =>
    layer.heads.map((head, g) => {
      const keys = head.keys(0, all.length);
      const best = new Float64Array(rowsFrom);
      for (let t = rowsFrom; t < all.length; t++) {
        for (let j = 0; j < group; j++) {
          const q = queries[l].subarray(t * width + (g * group + j) * d, t * width + (g * group + j + 1) * d);
          const logits = Array.from({ length: t + 1 }, (_, i) => {
            let s = 0;
            for (let x = 0; x < d; x++) s += q[x] * keys[i * d + x];
            return s / Math.sqrt(d);
          });
          const m = Math.max(...logits);
          const e = logits.map((v) => Math.exp(v - m));
          const z = e.reduce((a, b) => a + b, 0);
          for (let i = 0; i < rowsFrom; i++) best[i] = Math.max(best[i], e[i] / z);
        }
      }
      const half = Math.floor(kernel / 2);
      const pooled = Array.from(best, (_, i) => Math.max(...Array.from(best).slice(Math.max(0, i - half), i + half + 1)));
      const order = pooled.map((_, i) => i).sort((a, b) => pooled[b] - pooled[a] || a - b);
      const top = order.slice(0, budget - window - 1);
      const windowEntries = Array.from({ length: window + 1 }, (_, k) => rowsFrom + k);
      return [...top, ...windowEntries].sort((a, b) => a - b);
    }),
  );
}

test('speckv on a parity checkpoint keeps what the official rule keeps (one prefill of prompt + draft tokens)', () => {
  const window = 4;
  const lookahead = 3;
  const kernel = 3;
  const press = new SpecKVPress(draft, { ...SPECKV_DEFAULTS, window, lookahead, kernel });
  const cache = newCache(target.config);
  const session = new CompressionSession({ press, budget: { ratio: 0.5 } }, target.model, cache);
  prefill(target.model, cache, ids, { chunkSize: 16, observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, ids.length) });
  const tokens = greedyByHand(draft, ids, lookahead);
  assert.equal(tokens.length, lookahead, 'the draft did not stop early here');
  const expected = officialKept(ids, tokens, window, kernel, 20);
  assert.deepEqual(cache.layers.map((l) => l.heads.map((h) => arr(h.positions))), expected);
  // The draft tokens' entries are gone again and the sequence continues after the prompt.
  assert.equal(cache.nextPosition, ids.length);
  assert.equal(session.stats.compressions, 1);
});

// ---------------------------------------------------------------- the bundled pair

test('speckv with attend-mini-draft on attend-mini: a 512-token prompt at ratio 0.5 keeps 256 per head, the window with them', () => {
  const lm = loadModel(join(ROOT, 'models', 'attend-mini'));
  const text = 'In the beginning God created the heaven and the earth. And the earth was without form, and void; and darkness was upon the face of the deep. ';
  const prompt = lm.tokenizer.encode(text.repeat(20)).slice(0, 512);
  assert.equal(prompt.length, 512);
  const press = createPress('speckv', { draft: join(ROOT, 'models', 'attend-mini-draft'), lookahead: 8 });
  const cache = newCache(lm.config);
  const session = new CompressionSession({ press, budget: { ratio: 0.5 } }, lm.model, cache);
  const logits = prefill(lm.model, cache, prompt, { observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, prompt.length) });
  const window = SPECKV_DEFAULTS.window + 1;
  for (const layer of cache.layers) {
    for (const head of layer.heads) {
      assert.equal(head.length, 256);
      assert.deepEqual(arr(head.positions.subarray(256 - window)), Array.from({ length: window }, (_, k) => 512 - window + k));
    }
  }
  assert.ok(logits.every(Number.isFinite));
  // Decoding goes on over the compressed cache.
  const next = lm.model.backend.read(lm.model.forward([argmax(logits)], cache, { lastOnly: true, observer: session.observer }));
  assert.ok(next.every(Number.isFinite));
});

// ---------------------------------------------------------------- errors

test('speckv refuses a missing draft, an even kernel, another tokenizer, and serving as a scorer', () => {
  assert.throws(() => createPress('speckv', {}), (e: Error) => e instanceof AttendError && /needs --press-opt draft=/.test(e.message));
  assert.throws(() => createPress('speckv', { draft: join(ROOT, 'no-such-model') }), AttendError);
  assert.throws(() => new SpecKVPress(draft, { ...SPECKV_DEFAULTS, kernel: 4 }), /kernel must be odd/);
  assert.throws(() => createPress('speckv', { draft: join(PARITY_DIR, 'llama3-mqa'), pool: 'sum' }), /pool must be max or mean/);
  // gpt2's fixture has the same vocabulary size and another tokenizer.
  const other = new SpecKVPress(join(PARITY_DIR, 'gpt2'), { ...SPECKV_DEFAULTS, window: 4, lookahead: 2 });
  const cache = newCache(target.config);
  const session = new CompressionSession({ press: other, budget: { ratio: 0.5 } }, target.model, cache);
  assert.throws(
    () => prefill(target.model, cache, ids, { observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, ids.length) }),
    /encodes text differently/,
  );
  const config = tinyConfig(2, 1, 2);
  const view = viewOf(config, layerOf([randomRows(8, 2, 1)]), 4, { queries: queriesOf([[0, 0, 0, 0]], [7]) });
  assert.throws(() => new SpecKVPress(draft).score(view), /runs in a CompressionSession/);
});
