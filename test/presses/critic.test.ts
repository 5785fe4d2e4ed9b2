/** CRITIC: the hybrid importance by hand (attention, entropy, gradient), then per-step compression on a fixture model. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backend/cpu/index.js';
import { KVCache } from '../../src/cache/kv-cache.js';
import type { HeadStore } from '../../src/cache/head-store.js';
import type { ModelConfig } from '../../src/models/config.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import { prefill } from '../../src/generate/prefill.js';
import { CRITIC_ENTROPY, CriticPress } from '../../src/presses/critic.js';
import { ATTENTION_SUM } from '../../src/presses/observe.js';
import { topK, type LayerView, type QueryWindow } from '../../src/presses/press.js';
import { CompressionSession } from '../../src/presses/runner.js';
import { argmax } from '../helpers/argmax.js';
import { PARITY_DIR } from '../helpers/fixtures.js';
import { watchBlocks } from '../helpers/observer.js';

function view(config: ModelConfig, cache: KVCache, keep: number, queries?: QueryWindow): LayerView {
  const layer = cache.layers[0];
  return { layer: 0, config, backend: cpuBackend, cache: layer, seen: cache.nextPosition, keep, ratio: 1 - keep / layer.maxLength(), uniform: keep, queries };
}

/** Two KV heads of two query heads each, five entries at positions 0…4. */
function twoHeads(): { config: ModelConfig; cache: KVCache } {
  const config = { numLayers: 1, numHeads: 4, numKvHeads: 2, headDim: 2 } as ModelConfig;
  const cache = new KVCache<HeadStore>({ numLayers: 1, numKvHeads: 2, headDim: 2 });
  const zeros = new Float32Array(10);
  for (const head of cache.layers[0].heads) head.append(zeros, zeros, Int32Array.from([0, 1, 2, 3, 4]), 0, 2);
  cache.nextPosition = 5;
  return { config, cache };
}

test('attention and entropy importances: summed over the layer, min–max normalised, mixed by weight', () => {
  const { config, cache } = twoHeads();
  const [h0, h1] = cache.layers[0].heads;
  // Attention received (over all query heads and queries): 7, 0, 2, 2, 2 → 1, 0, 2/7, 2/7, 2/7.
  h0.stat(ATTENTION_SUM).set([5, 0, 1, 0, 2]);
  h1.stat(ATTENTION_SUM).set([2, 0, 1, 2, 0]);
  // Own-row entropies summed over each group; averaged over the 4 heads: 0, 0.75, 1, 0.75, 0.
  h0.stat(CRITIC_ENTROPY).set([0, 2, 1, 2, 0]);
  h1.stat(CRITIC_ENTROPY).set([0, 1, 3, 1, 0]);
  const both = new CriticPress({ weights: { attention: 0.5, entropy: 0.5, gradient: 0 }, minTokens: 0 });
  // Hybrid: 0.5, 0.375, 0.643, 0.518, 0.143 → normalised by (x − 1/7) / (0.5 + 1/7 − 1/7).
  const scores = both.score(view(config, cache, 3));
  const hybrid = [0.5, 0.375, 1 / 7 + 0.5, 1 / 7 + 0.375, 1 / 7];
  const norm = hybrid.map((x) => (x - 1 / 7) / 0.5);
  scores.forEach((s) => norm.forEach((e, i) => assert.ok(Math.abs(s[i] - e) < 1e-6, `entry ${i}: ${s[i]} vs ${e}`)));
  // One layer-wide selection: both heads keep the same entries.
  assert.deepEqual(scores.map((s) => Array.from(topK(s, 3))), [
    [0, 2, 3],
    [0, 2, 3],
  ]);
  // The attention term counts the queries since the last compression: none since, so entropy alone ranks.
  assert.deepEqual(Array.from(topK(both.score(view(config, cache, 3))[0], 3)), [1, 2, 3]);
  // New attention (the next token's query) counts again: 0, 0.375, 0.5, 0.375, 0.5 before normalising.
  h0.stat(ATTENTION_SUM)[4] += 1;
  const after = both.score(view(config, cache, 3))[0];
  assert.deepEqual(Array.from(topK(after, 3)), [1, 2, 4]);
  // Entropy only.
  const entropy = new CriticPress({ weights: { attention: 0, entropy: 1, gradient: 0 }, minTokens: 0 });
  assert.deepEqual(Array.from(topK(entropy.score(view(config, cache, 3))[0], 3)), [1, 2, 3]);
});

test('the observer records each query row’s entropy at its own token’s entry', () => {
  const { cache } = twoHeads();
  const press = new CriticPress();
  let forwarded = 0;
  const observer = press.observer(cache, { observe: () => forwarded++ });
  // KV head 1, queries at positions 3 and 4 (rows: token, then query head), over entries 0…4.
  const probs = Float32Array.from([
    ...[0.5, 0.5, 0, 0, 0], // position 3, head 0: ln 2
    ...[0.25, 0.25, 0.25, 0.25, 0], // position 3, head 1: ln 4
    ...[1, 0, 0, 0, 0], // position 4, head 0: 0
    ...[0.2, 0.2, 0.2, 0.2, 0.2], // position 4, head 1: ln 5
  ]);
  observer.observe!({ layer: 0, kvHead: 1, groupSize: 2, queryPositions: Int32Array.from([3, 4]), probs, cols: 5 });
  assert.equal(forwarded, 1);
  const entropy = cache.layers[0].heads[1].stat(CRITIC_ENTROPY);
  assert.deepEqual(Array.from(entropy.subarray(0, 3)), [0, 0, 0]);
  assert.ok(Math.abs(entropy[3] - Math.log(8)) < 1e-5);
  assert.ok(Math.abs(entropy[4] - Math.log(5)) < 1e-5);
  assert.deepEqual(Array.from(cache.layers[0].heads[0].stat(CRITIC_ENTROPY)), [0, 0, 0, 0, 0]);
});

test('gradient importance equals |∂L/∂k|₁ + |∂L/∂v|₁ of L = ‖o_t − o_prev‖² (finite differences)', () => {
  const config = { numLayers: 1, numHeads: 1, numKvHeads: 1, headDim: 2 } as ModelConfig;
  const cache = new KVCache<HeadStore>({ numLayers: 1, numKvHeads: 1, headDim: 2 });
  const keys = Float32Array.from([0.3, -0.2, 1.1, 0.4, -0.7, 0.9, 0.2, 0.2, -0.5, -1.3]);
  const values = Float32Array.from([1, 0, 0.5, -1, -0.3, 0.8, 2, 0.1, -1.2, 0.6]);
  cache.layers[0].heads[0].append(keys, values, Int32Array.from([0, 1, 2, 3, 4]), 0, 2);
  cache.nextPosition = 5;
  // The last two queries (positions 3 and 4): o_prev over entries 0…3, o_t over 0…4.
  const q = Float32Array.from([0.9, -0.4, -0.6, 1.2]);
  const queries = { data: q, positions: Int32Array.from([3, 4]) };

  const out = (k: Float32Array, v: Float32Array, qi: number, n: number) => {
    const s = Array.from({ length: n }, (_, i) => (q[qi * 2] * k[i * 2] + q[qi * 2 + 1] * k[i * 2 + 1]) / Math.SQRT2);
    const m = Math.max(...s);
    const e = s.map((x) => Math.exp(x - m));
    const z = e.reduce((a, b) => a + b, 0);
    return [0, 1].map((d) => e.reduce((acc, w, i) => acc + (w / z) * v[i * 2 + d], 0));
  };
  const prev = out(keys, values, 0, 4);
  const loss = (k: Float32Array, v: Float32Array) => out(k, v, 1, 5).reduce((acc, o, d) => acc + (o - prev[d]) ** 2, 0);
  const h = 1e-3;
  const expected = Array.from({ length: 5 }, (_, i) => {
    let g = 0;
    for (const which of ['k', 'v'] as const) {
      for (let d = 0; d < 2; d++) {
        const plus = Float32Array.from(which === 'k' ? keys : values);
        const minus = Float32Array.from(plus);
        plus[i * 2 + d] += h;
        minus[i * 2 + d] -= h;
        const [lp, lm] = which === 'k' ? [loss(plus, values), loss(minus, values)] : [loss(keys, plus), loss(keys, minus)];
        g += Math.abs((lp - lm) / (2 * h));
      }
    }
    return g;
  });
  const lo = Math.min(...expected);
  const hi = Math.max(...expected);
  const press = new CriticPress({ weights: { attention: 0, entropy: 0, gradient: 1 }, minTokens: 0 });
  assert.equal(press.needs.queryWindow, 2);
  const scores = press.score(view(config, cache, 3, queries))[0];
  expected.forEach((e, i) => assert.ok(Math.abs(scores[i] - (e - lo) / (hi - lo)) < 1e-3, `entry ${i}: ${scores[i]} vs ${(e - lo) / (hi - lo)}`));
  const ranked = expected.map((e, i) => [e, i]).sort((a, b) => b[0] - a[0]).slice(0, 3).map(([, i]) => i).sort();
  assert.deepEqual(Array.from(topK(scores, 3)), ranked);
});

test('delayed activation: layers of at most minTokens entries are left alone, and never cut below it', () => {
  const { config, cache } = twoHeads();
  const press = new CriticPress({ ...new CriticPress().options, minTokens: 4 });
  assert.equal(press.layerKeep(view(config, cache, 2)), 4);
  const small = new CriticPress({ ...new CriticPress().options, minTokens: 5 });
  assert.equal(small.layerKeep(view(config, cache, 2)), 5);
  assert.equal(new CriticPress().layerKeep(view(config, cache, 2)), 2);
  assert.throws(() => new CriticPress({ weights: { attention: 0.5, entropy: 0.5, gradient: 0.5 }, minTokens: 0 }), /sum to 1/);
});

test('fixture model: compressed after the prompt and at every generated token, positions kept', () => {
  const lm = loadModel(join(PARITY_DIR, 'llama-gqa-tied'));
  const ids = [1, 5, 9, 33, 7, 100, 42, 17, 250, 3, 64, 12];
  const press = new CriticPress();
  const plan = { press, budget: { ratio: 0.5 }, during: 'prefill' as const, decode: { every: 1 } };
  const cache = newCache(lm.config);
  const session = new CompressionSession(plan, lm.model, cache);
  // The session's observer already chains the press's own (runner.ts); this one only watches the same blocks to
  // compute each query row's entropy independently, once per query token.
  const ownRow = new Map<string, number>();
  const observer = watchBlocks(session.observer, ({ layer, kvHead, probs, cols, groupSize, queryPositions }) => {
    for (let t = 0; t < queryPositions.length; t++) {
      let h = 0;
      for (let j = 0; j < groupSize * cols; j++) {
        const p = probs[t * groupSize * cols + j];
        if (p > 0) h -= p * Math.log(p + 1e-10);
      }
      const key = `${layer}/${kvHead}/${queryPositions[t]}`;
      ownRow.set(key, (ownRow.get(key) ?? 0) + h);
    }
  });
  let logits = prefill(lm.model, cache, ids, { chunkSize: 5, observer, afterChunk: (_, end) => session.afterChunk(end, ids.length) });
  const full = newCache(lm.config);
  prefill(lm.model, full, ids, { chunkSize: 5 });
  assert.equal(session.stats.compressions, 1);
  assert.ok(cache.layers.every((l) => l.heads.every((h) => h.length === 6)));
  for (let s = 1; s <= 20; s++) {
    const token = argmax(logits);
    logits = lm.model.forward([token], cache, { lastOnly: true, observer }).f32;
    lm.model.forward([token], full, { lastOnly: true });
    session.afterDecodeStep();
    for (const layer of cache.layers) {
      const first = Array.from(layer.heads[0].positions);
      assert.equal(first.length, 6);
      assert.ok(first.every((x, i) => i === 0 || x > first[i - 1]), 'positions ascending');
      assert.ok(first.every((x) => x >= 0 && x < cache.nextPosition), 'original positions');
      // Scored per layer: every head keeps the same tokens.
      for (const head of layer.heads) assert.deepEqual(Array.from(head.positions), first);
    }
    // Compaction released the dropped entries: every head holds exactly what it keeps.
    assert.ok(cache.layers.every((l) => l.heads.every((h) => h.capacity === h.length)));
    assert.ok(cache.bytes() < full.bytes(), `${cache.bytes()} < ${full.bytes()}`);
  }
  assert.equal(session.stats.compressions, 21);
  assert.equal(cache.nextPosition, ids.length + 20);
  assert.ok(logits.every(Number.isFinite), 'generation continues');
  // Entropies were recorded for the entries kept, each once: the entropy of its own token's row, as computed above.
  assert.ok(cache.layers.every((l) => l.heads.every((h) => h.stat(CRITIC_ENTROPY).some((x) => x > 0))));
  cache.layers.forEach((l, layer) =>
    l.heads.forEach((head, g) => {
      const entropy = head.stat(CRITIC_ENTROPY);
      head.positions.forEach((p, i) => {
        const want = ownRow.get(`${layer}/${g}/${p}`);
        assert.ok(want !== undefined, `layer ${layer} head ${g}: no query row at position ${p}`);
        assert.ok(Math.abs(entropy[i] - want) <= 1e-5 * Math.max(1, want), `layer ${layer} head ${g} position ${p}: ${entropy[i]}, once is ${want}`);
      });
    }),
  );
});
