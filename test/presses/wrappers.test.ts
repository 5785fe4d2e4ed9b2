/**
 * The wrapper presses (chunk, chunkkv, block, criticalkv, critical-adakv, per-layer-compression, composed) on small
 * layers worked by hand, or against a direct f64 re-computation of kvpress's rule written here, plus their edge
 * cases and one-line errors, and two runs on a real model's cache.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { cpuBackend } from '../../src/backend/cpu/index.js';
import { AttendError } from '../../src/errors.js';
import { prefill } from '../../src/generate/prefill.js';
import type { ModelConfig } from '../../src/models/config.js';
import { loadModel } from '../../src/models/load.js';
import { type CausalLM, newCache } from '../../src/models/model.js';
import { AdaKVPress } from '../../src/presses/adakv.js';
import { BlockPress } from '../../src/presses/block.js';
import { ChunkPress, chunkKeep } from '../../src/presses/chunk.js';
import { ChunkKVPress } from '../../src/presses/chunkkv.js';
import { ComposedPress } from '../../src/presses/composed.js';
import { CriticalAdaKVPress } from '../../src/presses/critical-adakv.js';
import { CriticalKVPress, outputNorms } from '../../src/presses/criticalkv.js';
import { KeyDiffPress } from '../../src/presses/keydiff.js';
import { KnormPress } from '../../src/presses/knorm.js';
import { PerLayerCompressionPress } from '../../src/presses/per-layer-compression.js';
import { type LayerView, type Press, topK } from '../../src/presses/press.js';
import { createPress } from '../../src/presses/registry.js';
import { CompressionSession } from '../../src/presses/runner.js';
import { TOVAPress } from '../../src/presses/tova.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { PARITY_DIR } from '../helpers/fixtures.js';
import { layerOf, queriesOf, randomRows, tinyConfig, viewOf } from '../helpers/press-view.js';

const F32_MAX = 3.4028234663852886e38;

/** What the runner keeps: the press's selection, or the top `keep` of its scores per head. */
function keptBy(press: Press, view: LayerView): number[][] {
  const scores = press.score(view);
  const kept = press.select ? press.select(view, scores) : scores.map((s) => topK(s, view.keep));
  return kept.map((k) => Array.from(k));
}

/** A scorer that gives each entry a fixed score by its original position, and records which positions it saw. */
function byPosition(scoreOf: (p: number) => number, needs: Press['needs'] = {}) {
  const calls: { positions: number[][]; keep: number; queries?: { positions: number[]; data: Float32Array } }[] = [];
  const press: Press = {
    name: 'fixed',
    needs,
    score(view) {
      calls.push({
        positions: view.cache.heads.map((h) => Array.from(h.positions)),
        keep: view.keep,
        queries: view.queries && { positions: Array.from(view.queries.positions), data: view.queries.data.slice() },
      });
      return view.cache.heads.map((h) => Float32Array.from(h.positions, scoreOf));
    },
  };
  return { press, calls };
}

/** Plain f64 RoPE (rotate-half) of one head's row to position p: the rule, written out. */
function rope64(config: ModelConfig, x: number[], p: number): number[] {
  const rope = config.rope!;
  const half = rope.dim / 2;
  const out = x.slice();
  for (let i = 0; i < half; i++) {
    const angle = p * rope.theta ** (-(2 * i) / rope.dim);
    out[i] = x[i] * Math.cos(angle) - x[i + half] * Math.sin(angle);
    out[i + half] = x[i + half] * Math.cos(angle) + x[i] * Math.sin(angle);
  }
  return out;
}

const sortedKeysNorm = (keys: number[][]) => keys.map((k) => -Math.hypot(...k));

// ---------------------------------------------------------------------------------------------------------- chunk

test('chunk: each chunk keeps its own max(1, ⌊n·(1 − ratio)⌋ best entries, scored from that chunk alone', () => {
  const config = tinyConfig(1, 1, 2);
  const cache = layerOf([randomRows(10, 2, 1)]);
  // Scores rise with the position: globally the last 5 would stay; per chunk of 4 (4, 4, 2) the last 2, 2, 1.
  const { press: scorer, calls } = byPosition((p) => p);
  const press = new ChunkPress(scorer, { chunkLength: 4 });
  assert.deepEqual(keptBy(press, viewOf(config, cache, 5, { ratio: 0.5 })), [[2, 3, 6, 7, 9]]);
  assert.deepEqual(calls.map((c) => c.positions[0]), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
  assert.deepEqual(calls.map((c) => c.keep), [2, 2, 1]);
  // kvpress's counts: max(1, int(n·(1 − r))).
  assert.equal(chunkKeep(3, 0.9), 1);
  assert.equal(chunkKeep(10, 0.75), 2);
  assert.equal(chunkKeep(512, 0.5), 256);
});

test('chunk with key norms equals per-chunk top-k of −‖k‖ (direct re-computation), per head', () => {
  const config = tinyConfig(4, 2, 4);
  const keys = [randomRows(13, 4, 5), randomRows(13, 4, 6)];
  const cache = layerOf(keys);
  const ratio = 0.4;
  const want = keys.map((rows) => {
    const out: number[] = [];
    for (let lo = 0; lo < rows.length; lo += 5) {
      const chunk = rows.slice(lo, lo + 5);
      const n = Math.max(1, Math.floor(chunk.length * (1 - ratio)));
      const order = sortedKeysNorm(chunk).map((s, i) => ({ s, i })).sort((a, b) => b.s - a.s || a.i - b.i);
      out.push(...order.slice(0, n).map((o) => lo + o.i).sort((a, b) => a - b));
    }
    return out;
  });
  const press = new ChunkPress(new KnormPress(), { chunkLength: 5 });
  assert.deepEqual(keptBy(press, viewOf(config, cache, 7, { ratio })), want);
});

test('chunk chunks by original position: a compressed head keeps each range’s share of what is left of it', () => {
  const config = tinyConfig(1, 1, 2);
  // Positions 0, 2, 3 | 4, 5, 6, 7 | 9 with chunks of 4: 3, 4 and 1 entries.
  const cache = layerOf([randomRows(8, 2, 2)], [0, 2, 3, 4, 5, 6, 7, 9]);
  const { press: scorer, calls } = byPosition((p) => -p);
  const press = new ChunkPress(scorer, { chunkLength: 4 });
  assert.deepEqual(keptBy(press, viewOf(config, cache, 4, { ratio: 0.5, seen: 10 })), [[0, 3, 4, 7]]);
  assert.deepEqual(calls.map((c) => c.positions[0]), [[0, 2, 3], [4, 5, 6, 7], [9]]);
});

test("chunk: a window scorer gets its chunk's last queries, turned to the prompt's last positions as kvpress does", () => {
  const d = 4;
  const config = tinyConfig(2, 1, d);
  const cache = layerOf([randomRows(12, d, 3)]);
  const pre = randomRows(12, 2 * d, 4);
  const post = pre.map((row, t) => [...rope64(config, row.slice(0, d), t), ...rope64(config, row.slice(d), t)]);
  const { press: scorer, calls } = byPosition((p) => p, { queryWindow: 2 });
  const press = new ChunkPress(scorer, { chunkLength: 6 });
  assert.equal(press.needs.queryWindow, Infinity, 'every query is recorded: each chunk reads its own window');
  press.score(viewOf(config, cache, 6, { ratio: 0.5, queries: queriesOf(post, Array.from({ length: 12 }, (_, t) => t)) }));
  assert.deepEqual(calls.map((c) => c.queries!.positions), [[4, 5], [10, 11]], 'original positions (causality)');
  // Rows 4, 5 turned to positions 10, 11 (seen − 2, seen − 1); the last chunk's rows stay as recorded.
  const expect = [
    [4, 10],
    [5, 11],
    [10, 10],
    [11, 11],
  ].map(([t, p]) => [...rope64(config, pre[t].slice(0, d), p), ...rope64(config, pre[t].slice(d), p)]);
  const got = calls.flatMap((c) => [Array.from(c.queries!.data.subarray(0, 2 * d)), Array.from(c.queries!.data.subarray(2 * d))]);
  got.forEach((row, r) => row.forEach((x, i) => assert.ok(Math.abs(x - expect[r][i]) < 1e-5, `row ${r} dim ${i}: ${x} vs ${expect[r][i]}`)));
  // A scorer reading every query gets the chunk's rows as recorded.
  const every = byPosition((p) => p, { queryWindow: Infinity });
  new ChunkPress(every.press, { chunkLength: 6 }).score(viewOf(config, cache, 6, { ratio: 0.5, queries: queriesOf(post, Array.from({ length: 12 }, (_, t) => t)) }));
  assert.deepEqual(every.calls.map((c) => c.queries!.positions), [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]);
  assert.deepEqual(Array.from(every.calls[0].queries!.data), post.slice(0, 6).flat().map(Math.fround));
});

test('chunk: with nothing to remove every entry stays; bad options and selecting scorers are refused in one line', () => {
  const config = tinyConfig(1, 1, 2);
  const cache = layerOf([randomRows(6, 2, 1)]);
  assert.deepEqual(keptBy(new ChunkPress(new KnormPress(), { chunkLength: 2 }), viewOf(config, cache, 6, { ratio: 0 })), [[0, 1, 2, 3, 4, 5]]);
  assert.throws(() => new ChunkPress(new KnormPress(), { chunkLength: 0 }), (e: Error) => e instanceof AttendError && /chunk-length must be a whole number ≥ 1/.test(e.message));
  assert.throws(() => new ChunkPress(new AdaKVPress(new KnormPress())), /selects its own entries across heads/);
  // A chunk too short for the scorer's window: the scorer's own error, saying which chunk.
  const snap = createPress('chunk', { scorer: 'snapkv', 'chunk-length': 4 });
  const view = viewOf(tinyConfig(2, 1, 2), cache, 3, { ratio: 0.5, queries: queriesOf(randomRows(6, 4, 2), [0, 1, 2, 3, 4, 5]) });
  assert.throws(() => snap.score(view), (e: Error) => e instanceof AttendError && /^chunk: the chunk at positions 0…3: snapkv: window 64/.test(e.message));
});

// -------------------------------------------------------------------------------------------------------- chunkkv

test('chunkkv keeps whole chunks ranked by their mean score summed over heads, the same in every head', () => {
  const config = tinyConfig(2, 2, 2);
  const cache = layerOf([randomRows(10, 2, 1), randomRows(10, 2, 2)]);
  // Chunks of 3: [0,3) [3,6) [6,9) and the partial [9]. Summed over heads: chunk means 2, 1.5, 0.5 and 3 (the
  // heads' largest alone would rank [3,6) above [0,3)).
  const h0 = [1, 1, 1, 1.5, 1.5, 1.5, 0, 0, 0, 2];
  const h1 = [1, 1, 1, 0, 0, 0, 0.5, 0.5, 0.5, 1];
  const scorer: Press = { name: 'fixed', needs: {}, score: () => [Float32Array.from(h0), Float32Array.from(h1)] };
  const press = new ChunkKVPress(scorer, { chunkLength: 3 });
  // 4 chunks · (1 − 0.5) = 2 chunks: the partial one and the first.
  assert.deepEqual(keptBy(press, viewOf(config, cache, 5, { ratio: 0.5 })), [[0, 1, 2, 9], [0, 1, 2, 9]]);
  // 4 · 0.25 = 1 → max(1, 1): the partial chunk alone; at 0.9, max(1, 0) still keeps one chunk.
  assert.deepEqual(keptBy(press, viewOf(config, cache, 2, { ratio: 0.75 })), [[9], [9]]);
  assert.deepEqual(keptBy(press, viewOf(config, cache, 1, { ratio: 0.9 })), [[9], [9]]);
  // kvpress's whole chunks may exceed the budget: 3 chunks of 3 at 0.25 are 9 entries for a budget of 7.
  assert.deepEqual(keptBy(press, viewOf(config, cache, 7, { ratio: 0.25 }))[0], [0, 1, 2, 3, 4, 5, 9]);
});

test('chunkkv with fewer entries than a chunk lets the scorer compress alone; unequal heads are refused', () => {
  const config = tinyConfig(2, 2, 2);
  const cache = layerOf([randomRows(4, 2, 1), randomRows(4, 2, 2)]);
  const scorer: Press = { name: 'fixed', needs: {}, score: () => [Float32Array.from([4, 1, 3, 2]), Float32Array.from([1, 2, 3, 4])] };
  assert.deepEqual(keptBy(new ChunkKVPress(scorer, { chunkLength: 5 }), viewOf(config, cache, 2, { ratio: 0.5 })), [[0, 2], [2, 3]]);
  const uneven = layerOf([randomRows(4, 2, 1), randomRows(3, 2, 2)]);
  assert.throws(() => keptBy(new ChunkKVPress(new KnormPress(), { chunkLength: 2 }), viewOf(config, uneven, 2, { ratio: 0.5 })), /hold different numbers of entries/);
  assert.throws(() => new ChunkKVPress(new KnormPress(), { chunkLength: 1.5 }), /chunk-length must be a whole number ≥ 1/);
});

// ---------------------------------------------------------------------------------------------------------- block

/** kvpress's BlockPress loop written out in f64 for one head, with `scoreSet` scoring a set of entries. */
function blockReference(n: number, keep: number, block: number, scoreSet: (entries: number[]) => number[]): number[] {
  let kept = Array.from({ length: keep }, (_, i) => i);
  const size = Math.min(block, n);
  for (let i = keep; i < n; i += size) {
    const candidates = [...kept, ...Array.from({ length: Math.min(i + size, n) - i }, (_, j) => i + j)];
    const s = scoreSet(candidates);
    kept = candidates
      .map((e, j) => ({ e, s: s[j], j }))
      .sort((a, b) => b.s - a.s || a.j - b.j)
      .slice(0, keep)
      .map((x) => x.e);
  }
  return kept.sort((a, b) => a - b);
}

test('block: by hand, the kept entries and each next block are scored together, the budget kept each step', () => {
  const config = tinyConfig(1, 1, 2);
  // 1-D keys; the score of an entry is its distance from the mean key of the candidates (a set-dependent score).
  const k = [5, 0, 6, 1, 7, 9, 2, 3];
  const cache = layerOf([k.map((x) => [x, 0])]);
  const scorer: Press = {
    name: 'spread',
    needs: {},
    score: (view) => {
      const keys = Array.from(view.cache.heads[0].keys(0, view.cache.heads[0].length)).filter((_, i) => i % 2 === 0);
      const mean = keys.reduce((a, b) => a + b, 0) / keys.length;
      return [Float32Array.from(keys, (x) => Math.abs(x - mean))];
    },
  };
  // keep 3, blocks of 2: start {5, 0, 6}; + {1, 7} (mean 3.8) → 0, 7, 1; + {9, 2} (mean 3.8) → 9, 0, 7;
  // + {3} (mean 4.75) → 0, 9, 7: entries 1, 4, 5. Scored at once (mean 4.125): 9, 0, 1, entries 1, 3, 5.
  const press = new BlockPress(scorer, { blockSize: 2 });
  assert.deepEqual(keptBy(press, viewOf(config, cache, 3, { ratio: 0.625 })), [[1, 4, 5]]);
  assert.deepEqual(keptBy(scorer, viewOf(config, cache, 3)), [[1, 3, 5]]);
});

test('block with KeyDiff equals kvpress’s loop re-computed in f64 with the KeyDiff rule, per head', () => {
  const d = 4;
  const config = tinyConfig(2, 2, d);
  const keys = [randomRows(23, d, 11), randomRows(23, d, 12)];
  const cache = layerOf(keys);
  const keydiff = (rows: number[][]) => (entries: number[]) => {
    const unit = entries.map((e) => rows[e].map((x) => x / Math.max(Math.hypot(...rows[e]), 1e-12)));
    const anchor = Array.from({ length: d }, (_, c) => unit.reduce((a, u) => a + u[c], 0) / unit.length);
    const an = Math.max(Math.hypot(...anchor), 1e-8);
    return entries.map((e) => -rows[e].reduce((a, x, c) => a + x * anchor[c], 0) / (Math.max(Math.hypot(...rows[e]), 1e-8) * an));
  };
  for (const [keep, block] of [
    [9, 4],
    [5, 7],
    [11, 128],
  ]) {
    const want = keys.map((rows) => blockReference(23, keep, block, keydiff(rows)));
    const got = keptBy(new BlockPress(new KeyDiffPress(), { blockSize: block }), viewOf(config, cache, keep));
    assert.deepEqual(got, want, `keep ${keep}, blocks of ${block}`);
  }
});

test('block: the scorer sees the candidates and their tokens’ last queries; nothing happens within the budget', () => {
  const config = tinyConfig(2, 1, 2);
  const cache = layerOf([randomRows(7, 2, 1)]);
  const { press: scorer, calls } = byPosition((p) => (p % 2 === 0 ? p : -p), { queryWindow: 2 });
  const press = new BlockPress(scorer, { blockSize: 2 });
  const all = queriesOf(randomRows(7, 4, 3), [0, 1, 2, 3, 4, 5, 6]);
  const scores = press.score(viewOf(config, cache, 3, { ratio: 0.5, queries: all }));
  // Start {0, 1, 2}; + {3, 4} → 0, 2, 4; + {5, 6} → 2, 4, 6.
  assert.deepEqual(calls.map((c) => c.positions[0]), [[0, 1, 2, 3, 4], [0, 2, 4, 5, 6]]);
  assert.deepEqual(calls.map((c) => c.queries!.positions), [[3, 4], [5, 6]]);
  assert.deepEqual(Array.from(topK(scores[0], 3)), [2, 4, 6]);
  assert.equal(scores[0][1], -Infinity, 'dropped by an earlier step');
  assert.deepEqual(keptBy(press, viewOf(config, cache, 7, { ratio: 0 })), [[0, 1, 2, 3, 4, 5, 6]]);
  // Two heads keeping different entries: the rows are the tokens any head's candidates hold.
  const two = layerOf([randomRows(7, 2, 1), randomRows(7, 2, 2)]);
  const wide = byPosition((p) => p % 3, { queryWindow: Infinity });
  const perHead: Press = {
    ...wide.press,
    score: (view) => {
      const s = wide.press.score(view);
      return s.map((x, h) => (h === 0 ? x : x.map((y) => -y)));
    },
  };
  new BlockPress(perHead, { blockSize: 2 }).score(viewOf(tinyConfig(2, 2, 2), two, 3, { ratio: 0.5, queries: queriesOf(randomRows(7, 4, 3), [0, 1, 2, 3, 4, 5, 6]) }));
  // Step 1: {0…4} in both heads; head 0 keeps 1, 2, 4 (p % 3 = 1, 2, 1), head 1 keeps 0, 3, 1 (0, 0, 1).
  assert.deepEqual(wide.calls[1].positions, [[1, 2, 4, 5, 6], [0, 1, 3, 5, 6]]);
  assert.deepEqual(wide.calls[1].queries!.positions, [0, 1, 2, 3, 4, 5, 6]);
  assert.throws(() => new BlockPress(new KnormPress(), { blockSize: 0 }), /block-size must be a whole number ≥ 1/);
});

test('block with TOVA: all heads keep the same entries at every step (the latest query averaged over heads)', () => {
  const d = 2;
  const config = tinyConfig(2, 2, d);
  const cache = layerOf([randomRows(9, d, 1), randomRows(9, d, 2)]);
  const view = viewOf(config, cache, 4, { ratio: 0.5, queries: queriesOf(randomRows(9, 2 * d, 3), [0, 1, 2, 3, 4, 5, 6, 7, 8]) });
  const kept = keptBy(new BlockPress(new TOVAPress(), { blockSize: 2 }), view);
  assert.deepEqual(kept[0], kept[1]);
  assert.ok(kept[0].includes(8), 'the latest token stays');
});

// ------------------------------------------------------------------------------------------------------ criticalkv

/** A model stand-in that only has an output projection W_o [hidden × numHeads·headDim]. */
function withOutputProjection(config: ModelConfig, seed: number): { model: CausalLM; wo: number[][] } {
  const width = config.numHeads * config.headDim;
  const wo = randomRows(config.hiddenSize, width, seed).map((r) => r.map((x) => 2 * x - 1));
  const model = { outputProjection: () => new Tensor([config.hiddenSize, width], Float32Array.from(wo.flat())) } as unknown as CausalLM;
  return { model, wo };
}

/** ‖v·W_o,h‖₁ averaged over the query heads of KV head g, in f64. */
function vwl1(config: ModelConfig, wo: number[][], v: number[], g: number): number {
  const group = config.numHeads / config.numKvHeads;
  const d = config.headDim;
  let mean = 0;
  for (let j = 0; j < group; j++) {
    const h = g * group + j;
    mean += wo.reduce((a, row) => a + Math.abs(v.reduce((s, x, c) => s + x * row[h * d + c], 0)), 0) / group;
  }
  return mean;
}

test('criticalkv: outputNorms is ‖v·W_o,h‖₁ averaged over the group (direct re-computation)', () => {
  const config = tinyConfig(4, 2, 4);
  const values = [randomRows(5, 4, 1), randomRows(5, 4, 2)];
  const cache = layerOf(values);
  const { model, wo } = withOutputProjection(config, 7);
  const norms = outputNorms(viewOf(config, cache, 3, { model }), 'test');
  values.forEach((rows, g) => rows.forEach((v, i) => assert.ok(Math.abs(norms[g][i] - vwl1(config, wo, v, g)) < 1e-5, `head ${g} entry ${i}`)));
  assert.throws(() => outputNorms(viewOf(config, cache, 3), 'criticalkv'), /criticalkv: needs the model's output projection/);
});

test('criticalkv keeps the scorer’s first-stage best, then the best by (score + ε)·‖W_o v‖₁ (direct re-computation)', () => {
  const config = tinyConfig(4, 2, 4);
  const values = [randomRows(20, 4, 3), randomRows(20, 4, 4)];
  const cache = layerOf(values);
  const { model, wo } = withOutputProjection(config, 8);
  const raw = [randomRows(1, 20, 5)[0], randomRows(1, 20, 6)[0]];
  const scorer: Press = { name: 'fixed', needs: {}, score: () => raw.map((r) => Float32Array.from(r)) };
  for (const [ratio, fsr] of [
    [0.5, 0.5],
    [0.7, 1],
    [0.25, 0],
  ]) {
    const keep = Math.floor(20 * (1 - ratio));
    const want = raw.map((s, g) => {
      const first = Math.floor((1 - ratio) * 20 * fsr);
      const byScore = s.map((x, i) => ({ x, i })).sort((a, b) => b.x - a.x || a.i - b.i);
      const protectedSet = new Set(byScore.slice(0, first).map((o) => o.i));
      const stage2 = s.map((x, i) => ({ x: protectedSet.has(i) ? Infinity : (x + 1e-4) * vwl1(config, wo, values[g][i], g), i }));
      return stage2.sort((a, b) => b.x - a.x || a.i - b.i).slice(0, keep).map((o) => o.i).sort((a, b) => a - b);
    });
    const press = new CriticalKVPress(scorer, { epsilon: 1e-4, firstStageRatio: fsr });
    const view = viewOf(config, cache, keep, { ratio, model });
    assert.deepEqual(keptBy(press, view), want, `ratio ${ratio}, first stage ${fsr}`);
    const scores = press.score(view);
    const protectedCount = scores[0].filter((x) => x === F32_MAX).length;
    assert.equal(protectedCount, Math.floor((1 - ratio) * 20 * fsr), 'the first stage scores float32 max');
  }
  assert.throws(() => new CriticalKVPress(scorer, { epsilon: 1e-4, firstStageRatio: 1.5 }), /first-stage-ratio must be in \[0, 1\]/);
  // By hand, epsilon at work: score 0 with a value of norm 10 beats score 1e-5 with a norm of 1 (1e-3 vs 1.1e-4).
  const two = tinyConfig(2, 2, 2);
  const small = layerOf([[[10, 0], [1, 0], [0, 0]], [[0, 0], [0, 0], [0, 0]]]);
  const eye = { outputProjection: () => new Tensor([4, 4], Float32Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0))) } as unknown as CausalLM;
  const tiny: Press = { name: 'tiny', needs: {}, score: () => [Float32Array.from([0, 1e-5, -1]), Float32Array.from([0, 0, 0])] };
  assert.deepEqual(keptBy(new CriticalKVPress(tiny, { epsilon: 1e-4, firstStageRatio: 0 }), viewOf(two, small, 1, { model: eye }))[0], [0]);
  assert.deepEqual(keptBy(new CriticalKVPress(tiny, { epsilon: 0, firstStageRatio: 0 }), viewOf(two, small, 1, { model: eye }))[0], [1]);
  assert.throws(() => new CriticalKVPress(scorer, { epsilon: Number.NaN, firstStageRatio: 0.5 }), /epsilon must be a finite number/);
});

// -------------------------------------------------------------------------------------------------- critical-adakv

/** kvpress's CriticalAdaKVPress.compress written out in f32/f64 (flattened top-k, scatters), kept entries per head. */
function criticalAdaReference(scores: number[][], norms: number[][], keep: number, alpha: number, fsr: number, eps: number): number[][] {
  const H = scores.length;
  const n = scores[0].length;
  const s = scores.map((r) => Float32Array.from(r));
  const top = (row: Float32Array, k: number) => Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b).slice(0, k);
  const safe = Math.floor(keep * alpha);
  s.forEach((row) => top(row, safe).forEach((i) => (row[i] = F32_MAX)));
  const flat = s.flatMap((row, h) => Array.from(row, (x, i) => ({ x, h, i }))).sort((a, b) => b.x - a.x || a.h - b.h || a.i - b.i);
  const budgets = new Array(H).fill(0);
  flat.slice(0, keep * H).forEach((e) => budgets[e.h]++);
  const b1 = budgets.map((b) => Math.floor(b * fsr));
  s.forEach((row, h) => top(row, b1[h]).forEach((i) => (row[i] = F32_MAX)));
  const s2 = s.map((row, h) => Float32Array.from(row, (x, i) => Math.fround(x + Math.fround(eps)) * norms[h][i]));
  s2.forEach((row, h) => top(row, budgets[h]).forEach((i) => (row[i] = F32_MAX)));
  // Bottom n_pruned across heads are dropped.
  const pruned = H * (n - keep);
  const all = s2.flatMap((row, h) => Array.from(row, (x, i) => ({ x, h, i }))).sort((a, b) => a.x - b.x || b.h - a.h || b.i - a.i);
  const dropped = new Set(all.slice(0, pruned).map((e) => `${e.h}:${e.i}`));
  return s2.map((row, h) => Array.from(row.keys()).filter((i) => !dropped.has(`${h}:${i}`)));
}

test('critical-adakv: head budgets from the safeguarded scores across heads, then CriticalKV per head (direct re-computation)', () => {
  const config = tinyConfig(4, 2, 4);
  const values = [randomRows(16, 4, 21), randomRows(16, 4, 22)];
  const cache = layerOf(values);
  const { model } = withOutputProjection(config, 9);
  // Comparable scores in both heads (the budgets split), and a head whose scores are much lower (only the
  // safeguard keeps its entries).
  const raws = [
    [randomRows(1, 16, 23)[0].map((x) => x + 1), randomRows(1, 16, 24)[0].map((x) => x + 1)],
    [randomRows(1, 16, 23)[0].map((x) => x + 1), randomRows(1, 16, 24)[0].map((x) => x / 10)],
  ];
  const norms = outputNorms(viewOf(config, cache, 8, { model }), 'test').map((r) => Array.from(r));
  for (const [keep, alpha, fsr, which] of [
    [8, 0.2, 0.5, 0],
    [8, 0.2, 0.5, 1],
    [8, 0.5, 0.5, 1],
    [4, 0, 1, 0],
    [10, 1, 0, 0],
    [6, 0, 0, 0],
  ]) {
    const raw = raws[which];
    const scorer: Press = { name: 'fixed', needs: {}, score: () => raw.map((r) => Float32Array.from(r)) };
    const press = new CriticalAdaKVPress(scorer, { alpha, epsilon: 1e-4, firstStageRatio: fsr });
    const got = keptBy(press, viewOf(config, cache, keep, { model, ratio: 1 - keep / 16 }));
    assert.deepEqual(got, criticalAdaReference(raw, norms, keep, alpha, fsr, 1e-4), `keep ${keep}, alpha ${alpha}, first stage ${fsr}, scores ${which}`);
    assert.equal(got[0].length + got[1].length, 2 * keep, 'the layer keeps its budget in all');
    assert.ok(got[1].length >= Math.floor(keep * alpha), 'the safeguard');
  }
  assert.throws(() => new CriticalAdaKVPress(new KnormPress(), { alpha: 1.2, epsilon: 1e-4, firstStageRatio: 0.5 }), /alpha must be in \[0, 1\]/);
});

test('critical-adakv by hand: the safeguard gives the weak head its share, the first stage its best entry', () => {
  const config = tinyConfig(2, 2, 2);
  // Values of norm 1 in every head and W_o = identity-like: norms all 1, so stage 2 ranks by the scores.
  const cache = layerOf([[[1, 0], [1, 0], [1, 0], [1, 0]], [[0, 1], [0, 1], [0, 1], [0, 1]]]);
  const eye = Float32Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0));
  const model = { outputProjection: () => new Tensor([4, 4], eye) } as unknown as CausalLM;
  const scorer: Press = { name: 'fixed', needs: {}, score: () => [Float32Array.from([9, 8, 7, 6]), Float32Array.from([1, 0.5, 0.2, 0.1])] };
  // keep 2 per head → 4 in all; safeguard ⌊2·0.5⌋ = 1 per head; budgets: head 0 gets 9, 8, 7 (3), head 1 its safe 1.
  const press = new CriticalAdaKVPress(scorer, { alpha: 0.5, epsilon: 1e-4, firstStageRatio: 0.5 });
  assert.deepEqual(keptBy(press, viewOf(config, cache, 2, { model })), [[0, 1, 2], [0]]);
  // A tie at the cut across heads goes to the lower head: 3, then 2 (head 0) before 2 (head 1).
  const tied: Press = { name: 'tied', needs: {}, score: () => [Float32Array.from([3, 2, 0, 0]), Float32Array.from([2, 0, 0, 0])] };
  const bare = new CriticalAdaKVPress(tied, { alpha: 0, epsilon: 1e-4, firstStageRatio: 0 });
  assert.deepEqual(keptBy(bare, viewOf(config, cache, 1, { model })), [[0, 1], []]);
  // Epsilon at work in stage 2: head 0's budget of 1 goes to score 0 × norm 10 (1e-3) over 1e-5 × norm 1 (1.1e-4).
  const small = layerOf([[[10, 0], [1, 0], [0, 0]], [[1, 0], [1, 0], [1, 0]]]);
  const tiny: Press = { name: 'tiny', needs: {}, score: () => [Float32Array.from([0, 1e-5, -1]), Float32Array.from([5, -5, -5])] };
  const at = (epsilon: number) => keptBy(new CriticalAdaKVPress(tiny, { alpha: 0, epsilon, firstStageRatio: 0 }), viewOf(config, small, 1, { model }));
  assert.deepEqual(at(1e-4), [[0], [0]]);
  assert.deepEqual(at(0), [[1], [0]]);
});

// -------------------------------------------------------------------------------------------- per-layer compression

test('per-layer-compression: each layer keeps ⌊seen·(1 − ratios[l])⌋, scaled when the budget is not their mean', () => {
  const config = tinyConfig(2, 1, 2, 4);
  const cache = layerOf([randomRows(100, 2, 1)]);
  const press = new PerLayerCompressionPress(new KnormPress(), [0.25, 0.5, 0.75, 0.5, 0.9]);
  const keeps = (extra: Partial<LayerView>) => [0, 1, 2, 3].map((layer) => press.layerKeep(viewOf(config, cache, 50, { layer, ...extra })));
  // The budget is the list's mean (0.5): kvpress's int(100·(1 − r)); the fifth ratio is past the model's layers.
  assert.deepEqual(keeps({ ratio: 0.5, uniform: 50 }), [75, 50, 25, 50]);
  // A ratio of 0.75 halves every kept fraction; a budget of 20 tokens keeps 20 per head on average.
  assert.deepEqual(keeps({ ratio: 0.75, uniform: 25 }), [37, 25, 12, 25]);
  assert.deepEqual(keeps({ ratio: 0.8, uniform: 20 }), [30, 20, 10, 20]);
  // From the tokens seen, not the current length (per-chunk compressions): 200 seen, 100 held.
  assert.deepEqual(keeps({ seen: 200, ratio: 0.5, uniform: 100 }), [150, 100, 50, 100]);
  assert.throws(() => press.layerKeep(viewOf(tinyConfig(2, 1, 2, 6), cache, 50, { ratio: 0.5 })), /6 ratios for this model, got 5/);
  // A budget equal to the mean but for float rounding ((0.7 + 0.1)/2 = 0.39999999999999997 vs 0.4) is the mean.
  const two = new PerLayerCompressionPress(new KnormPress(), [0.7, 0.1]);
  const small = layerOf([randomRows(10, 2, 1)]);
  assert.equal(two.layerKeep(viewOf(tinyConfig(2, 1, 2, 2), small, 6, { layer: 1, ratio: 0.4, uniform: 10 * (1 - 0.4) })), 9);
  assert.throws(() => new PerLayerCompressionPress(new KnormPress(), [0.5, 1]), /every ratio must be in \[0, 1\)/);
  assert.throws(() => createPress('per-layer-compression', {}), /needs --press-opt ratios=/);
});

test('per-layer-compression scores with the scorer alone, at the layer’s own ratio', () => {
  const config = tinyConfig(1, 1, 2, 2);
  const cache = layerOf([[[3, 4], [0, 1], [1, 1], [6, 8]]]);
  let seenRatio = NaN;
  const scorer: Press = { name: 'spy', needs: {}, score: (v) => ((seenRatio = v.ratio), new KnormPress().score(v)) };
  const press = new PerLayerCompressionPress(scorer, [0.25, 0.75]);
  const view = viewOf(config, cache, 1, { layer: 1, ratio: 0.5, uniform: 2 });
  assert.equal(press.layerKeep(view), 1);
  assert.deepEqual(keptBy(press, view), [[1]]);
  assert.equal(seenRatio, 0.75);
});

// ------------------------------------------------------------------------------------------------------- composed

test('composed: each press removes its ratio of what the one before kept, and sees only that', () => {
  const config = tinyConfig(1, 1, 2);
  const cache = layerOf([randomRows(10, 2, 1)]);
  const a = byPosition((p) => (p % 2 === 0 ? 1 : 0) + p / 100); // keeps the even positions, the later first
  const b = byPosition((p) => -p); // keeps the earliest
  const press = new ComposedPress([a.press, b.press], [0.5, 0.4]);
  // Budget ratio 1 − 0.5·0.6 = 0.7: n₁ = 5 (0, 2, 4, 6, 8), n₂ = ⌊5·0.6⌋ = 3 (0, 2, 4).
  assert.deepEqual(keptBy(press, viewOf(config, cache, 3, { ratio: 0.7 })), [[0, 2, 4]]);
  assert.deepEqual(b.calls.at(-1)!.positions, [[0, 2, 4, 6, 8]]);
  assert.deepEqual([a.calls.at(-1)!.keep, b.calls.at(-1)!.keep], [5, 3]);
  // kvpress's nested floors, even where they keep less than the budget: 23 → ⌊11.5⌋ = 11 → ⌊9.9⌋ = 9, not ⌊10.35⌋.
  const long = layerOf([randomRows(23, 2, 2)]);
  const nested = new ComposedPress([a.press, b.press], [0.5, 0.1]);
  assert.equal(keptBy(nested, viewOf(config, long, 10, { ratio: 0.55 }))[0].length, 9);
  assert.deepEqual([a.calls.at(-1)!.keep, b.calls.at(-1)!.keep], [11, 9]);
});

test('composed under another budget scales both stages by one factor and never keeps more than the budget', () => {
  const config = tinyConfig(1, 1, 2);
  const cache = layerOf([randomRows(100, 2, 1)]);
  const a = byPosition((p) => p);
  const b = byPosition((p) => p);
  const press = new ComposedPress([a.press, b.press], [0.5, 0.5]);
  // kvpress's composed ratio is 0.75; at 0.84 (keep 16) each kept fraction 0.5 is scaled by √(0.16/0.25) = 0.8.
  const kept = keptBy(press, viewOf(config, cache, 16, { ratio: 0.84 }));
  assert.deepEqual([a.calls.at(-1)!.keep, b.calls.at(-1)!.keep], [40, 16]);
  assert.equal(kept[0].length, 16);
  // Just over the budget (per-chunk or decoding compression): each stage removes little, the last lands on it.
  const c = new ComposedPress([a.press, b.press], [0.5, 0.5]);
  assert.equal(keptBy(c, viewOf(config, cache, 96, { ratio: 0.04 }))[0].length, 96);
  assert.deepEqual([a.calls.at(-1)!.keep, b.calls.at(-1)!.keep], [97, 96]);
});

test('composed: a stage’s own selection across heads runs; needs are merged; bad lists are refused', () => {
  const config = tinyConfig(2, 2, 2);
  const cache = layerOf([randomRows(10, 2, 1), randomRows(10, 2, 2).map((r) => r.map((x) => 10 * x))]);
  const press = new ComposedPress([new TOVAPress(), new AdaKVPress(new KnormPress(), { alpha: 0 })], [0.2, 0.5]);
  assert.deepEqual(press.needs, { queryWindow: 1, attention: false });
  const view = viewOf(config, cache, 4, { ratio: 0.6, queries: queriesOf(randomRows(1, 4, 3), [9]) });
  const kept = keptBy(press, view);
  assert.equal(kept[0].length + kept[1].length, 8, 'AdaKV shares 2 · 4 entries between the heads');
  assert.notEqual(kept[0].length, 4);
  assert.throws(() => new ComposedPress([new KnormPress()], [0.2, 0.3]), /1 presses \(knorm\) need 1 ratios, got 2/);
  assert.throws(() => new ComposedPress([new KnormPress()], [1]), /every ratio must be in \[0, 1\)/);
  assert.throws(() => createPress('composed', { presses: 'knorm,nope' }), /unknown press "nope"/);
  assert.throws(() => createPress('composed', { ratios: '0.3,,0.2' }), /ratios must be comma-separated numbers/);
  assert.throws(() => createPress('composed', { ratios: '0.3,x' }), /ratios must be comma-separated numbers/);
});

// ------------------------------------------------------------------------------------------- on a real model's cache

const lm = loadModel(join(PARITY_DIR, 'llama-gqa-tied'));
const ids = Array.from({ length: 30 }, (_, i) => (i * 37 + 3) % lm.config.vocabSize);

function compressed(press: Press, ratio: number): number[][][] {
  const cache = newCache(lm.config);
  const session = new CompressionSession({ press, budget: { ratio }, during: 'prefill' }, lm.model, cache);
  prefill(lm.model, cache, ids, { observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, ids.length) });
  return cache.layers.map((l) => l.heads.map((h) => Array.from(h.positions)));
}

test('on a model: chunk(knorm) keeps per chunk the smallest key norms of the uncompressed cache', () => {
  const full = newCache(lm.config);
  prefill(lm.model, full, ids);
  const want = full.layers.map((l) =>
    l.heads.map((h) => {
      const norms = cpuBackend.keyNorms(l)[l.heads.indexOf(h)];
      const out: number[] = [];
      for (let lo = 0; lo < h.length; lo += 8) {
        const chunk = Float32Array.from(norms.subarray(lo, lo + 8), (n) => -n);
        out.push(...Array.from(topK(chunk, Math.max(1, Math.floor(chunk.length * 0.5))), (i) => lo + i));
      }
      return out;
    }),
  );
  assert.deepEqual(compressed(createPress('chunk', { scorer: 'knorm', 'chunk-length': 8 }), 0.5), want);
});

test('on a model: criticalkv reads W_o from the model, and keeps the first stage of its scorer', () => {
  const kept = compressed(createPress('criticalkv', { scorer: 'knorm' }), 0.5);
  const alone = compressed(createPress('knorm', {}), 0.5);
  kept.forEach((heads, l) =>
    heads.forEach((k, h) => {
      assert.equal(k.length, 15);
      // The first stage is knorm's best ⌊0.5·30·0.5⌋ = 7: all kept.
      const cache = newCache(lm.config);
      prefill(lm.model, cache, ids);
      const best = Array.from(topK(cpuBackend.keyNorms(cache.layers[l])[h].map((n) => -n), 7));
      for (const p of best) assert.ok(k.includes(p), `layer ${l} head ${h}: first-stage entry ${p}`);
    }),
  );
  assert.notDeepEqual(kept, alone, 'the value norms change the choice');
});
