/** Each scoring press on small cases worked by hand or by a direct f64 re-computation of its rule. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AdaKVPress } from '../../src/presses/adakv.js';
import { H2OPress } from '../../src/presses/h2o.js';
import { KnormPress } from '../../src/presses/knorm.js';
import { ObservedAttentionPress } from '../../src/presses/observed-attention.js';
import { ATTENTION_COUNT, ATTENTION_SUM } from '../../src/presses/observe.js';
import { topK, type Press } from '../../src/presses/press.js';
import { PyramidKVPress } from '../../src/presses/pyramidkv.js';
import { RandomPress } from '../../src/presses/random.js';
import { SnapKVPress } from '../../src/presses/snapkv.js';
import { StreamingLLMPress } from '../../src/presses/streaming-llm.js';
import { TOVAPress } from '../../src/presses/tova.js';
import { avgPool1d } from '../../src/presses/window-attention.js';
import { layerOf, queriesOf, randomRows, tinyConfig, viewOf } from '../helpers/press-view.js';

const kept = (press: Press, view: ReturnType<typeof viewOf>) => press.score(view).map((s) => Array.from(topK(s, view.keep)));

test('topK keeps the highest scores in entry order, ties to the earlier entry', () => {
  assert.deepEqual(Array.from(topK(Float32Array.from([3, 1, 3, 2]), 2)), [0, 2]);
  assert.deepEqual(Array.from(topK(Float32Array.from([1, 1, 1]), 2)), [0, 1]);
  assert.deepEqual(Array.from(topK(Float32Array.from([1, 2]), 5)), [0, 1]);
});

test('streaming-llm keeps the sinks and the most recent entries', () => {
  const config = tinyConfig(2, 1, 2);
  const cache = layerOf([randomRows(10, 2, 1)]);
  assert.deepEqual(kept(new StreamingLLMPress({ sinks: 2 }), viewOf(config, cache, 5)), [[0, 1, 7, 8, 9]]);
  assert.deepEqual(kept(new StreamingLLMPress({ sinks: 4 }), viewOf(config, cache, 4)), [[0, 1, 2, 3]]);
});

test('knorm keeps the keys with the smallest norms', () => {
  const config = tinyConfig(1, 1, 2);
  const cache = layerOf([[[3, 4], [0, 1], [1, 1], [6, 8], [0, 0.5]]]);
  assert.deepEqual(kept(new KnormPress(), viewOf(config, cache, 3)), [[1, 2, 4]]);
});

test('random is reproducible from its seed', () => {
  const config = tinyConfig(2, 2, 2);
  const cache = layerOf([randomRows(20, 2, 1), randomRows(20, 2, 2)]);
  const a = kept(new RandomPress({ seed: 5 }), viewOf(config, cache, 6));
  assert.deepEqual(a, kept(new RandomPress({ seed: 5 }), viewOf(config, cache, 6)));
  assert.notDeepEqual(a, kept(new RandomPress({ seed: 6 }), viewOf(config, cache, 6)));
});

test('avg_pool1d pads with zeros counted in the mean (PyTorch count_include_pad)', () => {
  const pooled = Array.from(avgPool1d(Float32Array.from([5, 0, 0, 0, 10]), 3));
  [5 / 3, 5 / 3, 0, 10 / 3, 10 / 3].forEach((x, i) => assert.ok(Math.abs(pooled[i] - x) < 1e-6));
});

/** SnapKV's rule recomputed directly in f64: softmax over visible keys, mean over the window, pool, group mean. */
function snapReference(keys: number[][][], queries: number[][], qPos: number[], group: number, d: number, window: number, kernel: number): number[][] {
  return keys.map((rows, g) => {
    const n = rows.length;
    const prefix = n - window;
    const perHead: number[][] = [];
    for (let j = 0; j < group; j++) {
      const mean = new Array(prefix).fill(0);
      queries.forEach((qAll, t) => {
        const q = qAll.slice((g * group + j) * d, (g * group + j + 1) * d);
        const s = rows.map((k, i) => (i <= qPos[t] ? k.reduce((a, x, c) => a + x * q[c], 0) / Math.sqrt(d) : -Infinity));
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const z = e.reduce((a, b) => a + b);
        for (let i = 0; i < prefix; i++) mean[i] += e[i] / z / window;
      });
      const pad = Math.floor(kernel / 2);
      perHead.push(mean.map((_, i) => {
        let s = 0;
        for (let o = -pad; o <= pad; o++) s += mean[i + o] ?? 0;
        return s / kernel;
      }));
    }
    return Array.from({ length: prefix }, (_, i) => perHead.reduce((a, h) => a + h[i], 0) / group);
  });
}

test('snapkv scores equal a direct re-computation of its rule, and keep the window', () => {
  const d = 4;
  const config = tinyConfig(4, 2, d);
  const keys = [randomRows(12, d, 3), randomRows(12, d, 4)];
  const cache = layerOf(keys);
  const window = 3;
  const qRows = randomRows(window, 4 * d, 9).map((r) => r.map((x) => 3 * x));
  const qPos = [9, 10, 11];
  const press = new SnapKVPress({ window, kernel: 3 });
  const view = viewOf(config, cache, 6, { queries: queriesOf(qRows, qPos) });
  const scores = press.score(view);
  const want = snapReference(keys, qRows, qPos, 2, d, window, 3);
  scores.forEach((s, g) => {
    want[g].forEach((w, i) => assert.ok(Math.abs(s[i] - w) < 1e-6, `head ${g} entry ${i}: ${s[i]} vs ${w}`));
    const max = Math.max(...want.flat());
    for (let i = 9; i < 12; i++) assert.ok(Math.abs(s[i] - (max + 1)) < 1e-6, 'window entries score max + 1');
    assert.deepEqual(Array.from(topK(s, 6)).slice(-3), [9, 10, 11]);
  });
});

test('snapkv refuses a window as long as the context', () => {
  const config = tinyConfig(2, 1, 2);
  const cache = layerOf([randomRows(4, 2, 1)]);
  const view = viewOf(config, cache, 2, { queries: queriesOf(randomRows(4, 4, 2), [0, 1, 2, 3]) });
  assert.throws(() => new SnapKVPress({ window: 4, kernel: 5 }).score(view), /window 4 must be shorter than the context/);
});

test('pyramidkv budgets: KVCache-Factory arithmetic, by hand', () => {
  // 1000 entries, ratio 0.5, window 64, beta 20, 8 layers: capacity = 64 + 500 = 564; min = 500/20 = 25;
  // max = 2·500 − 25 = 975 ≥ 1000 − 64 = 936 → max = 936, min = 1000 − 936 = 64; step = (936 − 64)/7.
  const config = tinyConfig(2, 1, 2, 8);
  const cache = layerOf([randomRows(1000, 2, 1)]);
  const press = new PyramidKVPress({ window: 64, kernel: 5, beta: 20 });
  const budgets = Array.from({ length: 8 }, (_, layer) => press.layerKeep(viewOf(config, cache, 500, { layer, ratio: 0.5 })));
  assert.deepEqual(budgets, [936, 811, 687, 562, 438, 313, 189, 64]);
  assert.equal(budgets.reduce((a, b) => a + b) / 8, 500);
  // Too short for a pyramid (min_num < window): every layer keeps round(length · (1 − ratio)).
  const small = layerOf([randomRows(100, 2, 1)]);
  assert.equal(press.layerKeep(viewOf(config, small, 50, { layer: 3, ratio: 0.5 })), 50);
});

test('observed-attention divides the attention received by the queries that saw each entry, averaged over the group', () => {
  const config = tinyConfig(2, 1, 2);
  const cache = layerOf([randomRows(3, 2, 1)]);
  const head = cache.heads[0];
  head.stat(ATTENTION_SUM).set([3, 1, 1]);
  head.stat(ATTENTION_COUNT).set([6, 4, 2]);
  assert.deepEqual(Array.from(new ObservedAttentionPress().score(viewOf(config, cache, 2))[0]), [0.5, 0.25, 0.5]);
});

test('h2o keeps the recent half of its budget and the heaviest of the rest', () => {
  const config = tinyConfig(1, 1, 2);
  const cache = layerOf([randomRows(8, 2, 1)]);
  cache.heads[0].stat(ATTENTION_SUM).set([5, 0.1, 4, 0.2, 0.3, 9, 0, 0]);
  // keep 4: recent 2 (entries 6, 7) + heavy 2 among 0…5 (entries 5, 0).
  assert.deepEqual(kept(new H2OPress(), viewOf(config, cache, 4)), [[0, 5, 6, 7]]);
});

test('tova averages the latest query over all heads and keeps the same entries in every KV head', () => {
  const d = 2;
  const config = tinyConfig(2, 2, d);
  // Head 0's query points at entry 1, head 1's at entry 2; entry 4 is the latest token itself.
  const keys = [[[0, 0], [5, 0], [0, 0], [0, 0], [0, 0]], [[0, 0], [0, 0], [0, 5], [0, 0], [0, 0]]];
  const cache = layerOf(keys);
  const view = viewOf(config, cache, 3, { queries: queriesOf([[1, 0, 0, 1]], [4]) });
  assert.deepEqual(kept(new TOVAPress(), view), [[1, 2, 4], [1, 2, 4]]);
});

test('adakv gives the layer budget to the best entries of any head, after each head keeps its safeguard', () => {
  const config = tinyConfig(2, 2, 2);
  const cache = layerOf([[[0, 0], [0, 0], [0, 0], [0, 0]], [[0, 0], [0, 0], [0, 0], [0, 0]]]);
  const scorer: Press = {
    name: 'fixed',
    needs: {},
    score: () => [Float32Array.from([9, 8, 7, 6]), Float32Array.from([1, 0.5, 0.2, 0.1])],
  };
  // Budget 2 per head → 4 in all; safeguard floor(2 · 0.5) = 1 per head; then the best remaining: 9, 8, 7.
  const press = new AdaKVPress(scorer, { alpha: 0.5 });
  const view = viewOf(config, cache, 2);
  const selected = press.select(view, press.score(view)).map((s) => Array.from(s));
  assert.deepEqual(selected, [[0, 1, 2], [0]]);
  // Without a safeguard the weak head may lose everything.
  const bare = new AdaKVPress(scorer, { alpha: 0 });
  assert.deepEqual(bare.select(view, bare.score(view)).map((s) => Array.from(s)), [[0, 1, 2, 3], []]);
});
