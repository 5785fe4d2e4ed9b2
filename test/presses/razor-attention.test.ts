/**
 * RazorAttention (presses/razor-attention.ts): the compensation token worked by hand (its mean key and value, the
 * log count attention adds, the attention output of Eq. 5 on the CPU kernel and the reference, the same as n copies
 * of the token), the token folded again without losing a token's weight, the kept entries per head and the memory
 * freed, the budget over the whole cache, the retrieval-head files, exactness when the budget covers everything,
 * and a short attend-mini run with the profile probed on the fly.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { referenceAttention } from '../../src/attention/reference.js';
import { cpuBackend } from '../../src/backend/cpu/index.js';
import { referenceBackend } from '../../src/backend/reference/index.js';
import { ENTRY_LOG_WEIGHT } from '../../src/cache/head-memory.js';
import { HeadStore } from '../../src/cache/head-store.js';
import { KVCache, LayerCache } from '../../src/cache/kv-cache.js';
import { prefill } from '../../src/generate/prefill.js';
import { score } from '../../src/eval/scoring.js';
import { taskByName } from '../../src/eval/tasks/index.js';
import type { TaskInstance } from '../../src/eval/types.js';
import { argmax } from '../../src/generate/sampler.js';
import { echoInductionScores } from '../../src/heads/echo-induction.js';
import { loadModel } from '../../src/models/load.js';
import { compensationToken, headLayout, probeInput, RAZOR_DEFAULTS, RazorAttentionPress, readRetrievalHeads, type RetrievalMap } from '../../src/presses/razor-attention.js';
import { createPress } from '../../src/presses/registry.js';
import { CompressionSession } from '../../src/presses/runner.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { PARITY_DIR } from '../helpers/fixtures.js';
import { tinyConfig, viewOf } from '../helpers/press-view.js';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) => {
  assert.equal(a.length, b.length, `${what}: lengths`);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
};

/** One KV head, d = 2, entries 0…7: keys and values chosen so that the means and the softmax come out round. */
const KEYS = [[0, 0], [1, 0], [0, 1], [1, 1], [2, 0], [1, 3], [0, 1], [1, 0]];
const VALUES = [[1, 1], [2, 0], [0, 2], [4, 4], [0, 0], [4, -1], [3, 0], [0, 3]];

function handLayer(keys = KEYS, values = VALUES, positions = keys.map((_, i) => i)): LayerCache<HeadStore> {
  const layer = LayerCache.empty(1, 2, 'f32');
  layer.heads[0].append(Float32Array.from(keys.flat()), Float32Array.from(values.flat()), Int32Array.from(positions), 0, 2);
  return layer;
}

/** One compression of a one-layer, one-head cache as the runner does it: select, beforeKeep, keep, afterKeep. */
function compressByHand(press: RazorAttentionPress, layer: LayerCache, keep: number): void {
  const config = tinyConfig(1, 1, 2);
  const view = viewOf(config, layer, keep);
  const kept = press.select(view);
  press.beforeKeep(view);
  layer.heads.forEach((head, h) => head.keep(kept[h]));
  press.afterKeep(view);
}

/** The attention output of one query row q at `position` (scale 1) on the CPU backend and the reference. */
function attend(layer: LayerCache, q: number[], position: number): { cpu: Float32Array; reference: Float32Array } {
  const positions = Int32Array.from([position]);
  const opts = { layer: 0, scale: 1, window: null };
  const cpu = cpuBackend.read(cpuBackend.attention(new Tensor([1, 2], Float32Array.from(q)), layer, positions, opts));
  const reference = referenceAttention(Float32Array.from(q), 1, layer, positions, opts).out;
  return { cpu, reference };
}

test('the compensation token by hand: sinks 1, 4 entries kept of 8 → entries 1…5 folded into one token at position 5', () => {
  // headLayout: 1 sink, the token's slot (the last dropped entry, 5), the 2 most recent (6, 7); folded: 1…5.
  assert.deepEqual(headLayout(8, 4, 1, true), { kept: Int32Array.from([0, 5, 6, 7]), slot: 1, from: 1, to: 6 });
  assert.deepEqual(headLayout(8, 4, 1, false), { kept: Int32Array.from([0, 5, 6, 7]), slot: -1, from: 1, to: 5 });
  assert.equal(headLayout(4, 4, 1, true), null, 'a head within its slots keeps everything');
  // Mean key of entries 1…5: ((1+0+1+2+1)/5, (0+1+1+0+3)/5) = (1, 1); mean value ((2+0+4+0+4)/5, (0+2+4+0−1)/5) = (2, 1).
  const token = compensationToken(handLayer().heads[0], 1, 6);
  assert.deepEqual([...token.key], [1, 1]);
  assert.deepEqual([...token.value], [2, 1]);
  assert.equal(token.count, 5);

  const layer = handLayer();
  const before = layer.heads[0].bytes();
  const press = new RazorAttentionPress({ ...RAZOR_DEFAULTS, sinks: 1 }).use([[false]]);
  compressByHand(press, layer, 4);
  const head = layer.heads[0];
  assert.deepEqual([...head.positions], [0, 5, 6, 7], 'sinks, the token at the last dropped position, the window');
  assert.deepEqual([...head.keys(0, 4)], [0, 0, 1, 1, 0, 1, 1, 0]);
  assert.deepEqual([...head.values(0, 4)], [1, 1, 2, 1, 3, 0, 0, 3]);
  close(head.stat(ENTRY_LOG_WEIGHT), [0, Math.log(5), 0, 0], 1e-7, 'log weights');
  // 4 entries of 2·2 floats and a position, plus the log weights: the 4 dropped entries' memory is gone.
  assert.equal(head.bytes(), 4 * (2 * 2 * 4 + 4 + 4));
  assert.equal(head.bytes(), head.liveBytes());
  assert.ok(head.bytes() < before);

  // q = (ln 2, 0): e^{q·k} = 1, 2 (token, ×5 = 10), 1, 2 over entries 0, T, 6, 7: denominator 14, output
  // (1·(1,1) + 10·(2,1) + 1·(3,0) + 2·(0,3)) / 14 = (24/14, 17/14) — Eq. 5.
  const q = [Math.LN2, 0];
  const eq5 = [24 / 14, 17 / 14];
  const out = attend(layer, q, 8);
  close(out.cpu, eq5, 1e-6, 'CPU attention with the token');
  close(out.reference, eq5, 1e-6, 'reference attention with the token');
  // The same as five literal copies of (k̂, v̂) at positions 1…5.
  const copies = handLayer([[0, 0], ...Array(5).fill([1, 1]), [0, 1], [1, 0]], [[1, 1], ...Array(5).fill([2, 1]), [3, 0], [0, 3]]);
  close(attend(copies, q, 8).cpu, eq5, 1e-6, 'five copies');
  // Weight 1 (Golden Stick's deploy, no count) would give (1·(1,1) + 2·(2,1) + 3,0 + 2·(0,3)) / 6 = (8/6, 9/6) instead.
  head.stat(ENTRY_LOG_WEIGHT).fill(0);
  close(attend(layer, q, 8).cpu, [8 / 6, 9 / 6], 1e-6, 'weight 1');
});

test('a second compression folds the old token with its count: the token is the mean of every token dropped so far', () => {
  const layer = handLayer();
  const press = new RazorAttentionPress({ ...RAZOR_DEFAULTS, sinks: 1 }).use([[false]]);
  compressByHand(press, layer, 4);
  // Two more tokens (positions 8, 9), then back to 4 entries: the token (5 tokens), 6 and 7 fold into one at 7.
  layer.heads[0].append(Float32Array.from([3, 3, 0, 2]), Float32Array.from([1, 0, 5, 5]), Int32Array.from([8, 9]), 0, 2);
  compressByHand(press, layer, 4);
  const head = layer.heads[0];
  assert.deepEqual([...head.positions], [0, 7, 8, 9]);
  // Mean of the original entries 1…7: keys (1+0+1+2+1+0+1, 0+1+1+0+3+1+0)/7 = (6/7, 6/7); values (2+0+4+0+4+3+0, 0+2+4+0−1+0+3)/7 = (13/7, 8/7).
  close(head.keys(1, 1), [6 / 7, 6 / 7], 1e-6, 'token key');
  close(head.values(1, 1), [13 / 7, 8 / 7], 1e-6, 'token value');
  close(head.stat(ENTRY_LOG_WEIGHT), [0, Math.log(7), 0, 0], 1e-6, 'log weights');
});

test('retrieval heads keep everything; the others share what is left of the cache budget (budget=cache) or keep the budget each (heads)', () => {
  const config = tinyConfig(4, 4, 2, 1);
  const rows = Array.from({ length: 20 }, (_, i) => [i % 3, (i * 7) % 5]);
  const make = () => {
    const layer = LayerCache.empty(4, 2, 'f32');
    for (const head of layer.heads) head.append(Float32Array.from(rows.flat()), Float32Array.from(rows.flat()), Int32Array.from(rows.map((_, i) => i)), 0, 2);
    return layer;
  };
  const map: RetrievalMap = [[true, false, false, false]];
  // 4 heads × keep 8 = 32 entries; the retrieval head holds 20, the three others ⌊12 / 3⌋ = 4 each.
  const shared = new RazorAttentionPress({ ...RAZOR_DEFAULTS }).use(map);
  const layer = make();
  const kept = shared.select(viewOf(config, layer, 8));
  assert.deepEqual(kept.map((k) => k.length), [20, 4, 4, 4]);
  assert.deepEqual([...kept[1]], [0, 1, 2, 19], 'sinks 0…2 (3 of the 4 sinks fit beside the token), the token in the last slot, no window');
  const each = new RazorAttentionPress({ ...RAZOR_DEFAULTS, budget: 'heads' }).use(map);
  assert.deepEqual(each.select(viewOf(config, make(), 8)).map((k) => k.length), [20, 8, 8, 8]);
  // The paper's S0 as a floor; a head keeps at least its token when the retrieval heads take the whole budget.
  const floor = new RazorAttentionPress({ ...RAZOR_DEFAULTS, minWindow: 6 }).use(map);
  assert.deepEqual(floor.select(viewOf(config, make(), 8)).map((k) => k.length), [20, 6, 6, 6]);
  assert.deepEqual(shared.select(viewOf(config, make(), 5)).map((k) => k.length), [20, 1, 1, 1]);
});

test('retrieval-head files: attend heads JSON and Golden Stick JSON; bad files are one-line errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'razor-'));
  const attendJson = join(dir, 'echo.json');
  writeFileSync(attendJson, JSON.stringify({ probe: 'echo', scores: [[0]], details: { retrievalHeads: [{ layer: 1, kvHead: 0, echo: false, induction: true }] } }));
  assert.deepEqual(readRetrievalHeads(attendJson), [{ layer: 1, kvHead: 0 }]);
  const gs = join(dir, 'head_dict.json');
  writeFileSync(gs, JSON.stringify({ 0: [1], 1: [0, 1] }));
  assert.deepEqual(readRetrievalHeads(gs), [{ layer: 0, kvHead: 1 }, { layer: 1, kvHead: 0 }, { layer: 1, kvHead: 1 }]);
  for (const [text, why] of [['[1]', /JSON object/], ['{"a": [1]}', /not a layer index/], ['{"0": [-1]}', /KV head indices/], ['{"scores": []}', /without details/], ['{', /not JSON/]] as const) {
    const f = join(dir, 'bad.json');
    writeFileSync(f, text);
    assert.throws(() => readRetrievalHeads(f), why);
  }
  assert.throws(() => createPress('razor-attention', { heads: join(dir, 'missing.json') }), /does not exist/);
  assert.throws(() => createPress('razor-attention', { budget: 'layers' }), /cache or heads/);
  assert.throws(() => createPress('razor-attention', { 'induction-share': 2 }), /in \[0, 1\]/);
});

test('the probe input: the official 2500 ids from 10000 where they fit, else 64 from 1000, cut to the model', () => {
  assert.deepEqual(probeInput({ vocabSize: 152064, maxPositions: 32768 } as never), { length: 2500, low: 10000 });
  assert.deepEqual(probeInput({ vocabSize: 16384, maxPositions: 8192 } as never), { length: 64, low: 1000 });
  assert.deepEqual(probeInput({ vocabSize: 384, maxPositions: 64 } as never), { length: 15, low: 368 });
  assert.deepEqual(probeInput({ vocabSize: 16384, maxPositions: 8192 } as never, 100, 50), { length: 100, low: 50 });
});

test('llama-gqa-tied: exact when the budget covers the prompt; chunked compression keeps layer 0 tokens exact means', () => {
  const lm = loadModel(join(PARITY_DIR, 'llama-gqa-tied'));
  const ids = Array.from({ length: 30 }, (_, i) => (i * 31 + 5) % lm.config.vocabSize);
  const full = lm.model.makeCache();
  const want = prefill(lm.model, full, ids);
  const covered = lm.model.makeCache();
  const session = new CompressionSession({ press: createPress('razor-attention', {}), budget: { tokens: 30 } }, lm.model, covered);
  const got = prefill(lm.model, covered, ids, { observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, ids.length) });
  assert.deepEqual([...got], [...want], 'a budget of every token: the same logits');
  assert.equal(session.stats.dropped, 0);

  // After every chunk of 6, no retrieval heads, 8 entries per head: 4 sinks, the token, the 3 latest. Layer 0's keys
  // do not depend on compression, so its token is the mean of the full cache's entries at the folded positions.
  const press = new RazorAttentionPress({ ...RAZOR_DEFAULTS }).use([[false, false], [false, false]]);
  const cache = lm.model.makeCache();
  const chunks = new CompressionSession({ press, budget: { tokens: 8 }, during: 'chunks' }, lm.model, cache);
  prefill(lm.model, cache, ids, { chunkSize: 6, observer: chunks.observer, afterChunk: (_, end) => chunks.afterChunk(end, ids.length) });
  for (const [h, head] of cache.layers[0].heads.entries()) {
    assert.deepEqual([...head.positions], [0, 1, 2, 3, 26, 27, 28, 29]);
    const fullHead = full.layers[0].heads[h];
    const mean = (rows: Float32Array) => Array.from({ length: head.headDim }, (_, x) => {
      let s = 0;
      for (let p = 4; p <= 26; p++) s += rows[p * head.headDim + x];
      return s / 23;
    });
    close(head.keys(4, 1), mean(fullHead.keys(0, 30)), 1e-5, `layer 0 head ${h} token key`);
    close(head.values(4, 1), mean(fullHead.values(0, 30)), 1e-5, `layer 0 head ${h} token value`);
    close([head.stat(ENTRY_LOG_WEIGHT)[4]], [Math.log(23)], 1e-5, 'token count');
  }
  // The reference backend reads the same weights: one decoding step agrees with the CPU kernel.
  const next = [7];
  const cpuLogits = lm.model.forward(next, cache.clone()).f32;
  const refLm = loadModel(join(PARITY_DIR, 'llama-gqa-tied'), { backend: referenceBackend });
  const refCache = refLm.model.makeCache() as KVCache;
  cache.layers.forEach((l, i) => l.heads.forEach((head, h) => {
    const r = refCache.layers[i].heads[h] as HeadStore;
    r.append(head.keys(0, head.length), head.values(0, head.length), head.positions, 0, head.headDim);
    if (head.hasStat?.(ENTRY_LOG_WEIGHT)) r.stat(ENTRY_LOG_WEIGHT).set(head.stat(ENTRY_LOG_WEIGHT));
  }));
  refCache.nextPosition = cache.nextPosition;
  close(refLm.model.forward(next, refCache).f32, cpuLogits, 1e-4, 'reference vs CPU logits');
});

test('attend-mini, a 1K-token needle with 75% of the cache removed: the probed retrieval heads stay whole, the rest is freed, the needle is found', () => {
  const lm = loadModel(new URL('../../models/attend-mini', import.meta.url).pathname);
  const c = lm.config;
  // The on-the-fly profile is the echo/induction probe's (64 ids from 1000 on this 8K model).
  const probe = echoInductionScores(lm, { length: 64, low: 1000 });
  const expected = (probe.echo.details as { retrievalHeads: { layer: number; kvHead: number }[] }).retrievalHeads.map((h) => `${h.layer}.${h.kvHead}`);
  assert.equal(expected.length, 2, 'round(16 · 0.14) = 2 induction heads, round(16 · 0.01) = 0 echo heads');
  const instance = taskByName('niah_single').generate({ seed: 0, contextLength: 1024, tokenizer: lm.tokenizer }) as TaskInstance;
  const ids = lm.tokenizer.encode(instance.context);
  const question = lm.tokenizer.encode(instance.question, { addSpecialTokens: false });
  const press = createPress('razor-attention', {}) as RazorAttentionPress;
  const cache = lm.model.makeCache();
  const session = new CompressionSession({ press, budget: { ratio: 0.75 } }, lm.model, cache);
  const before = { bytes: 0 };
  prefill(lm.model, cache, ids, {
    observer: session.observer,
    afterChunk: (_, end) => {
      if (end === ids.length) before.bytes = cache.layers.reduce((s, l) => s + l.bytes(), 0);
      session.afterChunk(end, ids.length);
    },
  });
  const found = press.retrieval!.flatMap((row, l) => row.flatMap((r, h) => (r ? [`${l}.${h}`] : [])));
  assert.deepEqual(found, expected);
  const n = ids.length;
  const keep = Math.floor(n * 0.25);
  const slots = Math.floor((16 * keep - 2 * n) / 14);
  cache.layers.forEach((layer, l) => layer.heads.forEach((head, h) => {
    const retrieval = press.retrieval![l][h];
    assert.equal(head.length, retrieval ? n : slots, `${l}.${h}`);
    assert.equal(head.bytes(), head.liveBytes());
    if (!retrieval) {
      assert.deepEqual([...head.positions.subarray(0, 5)], [0, 1, 2, 3, n - (slots - 5) - 1], 'sinks, then the token');
      close([head.stat(ENTRY_LOG_WEIGHT)[4]], [Math.log(n - slots + 1)], 1e-5, 'the token stands for every dropped entry');
    }
  }));
  const entries = cache.layers.reduce((s, l) => s + l.heads.reduce((t, h) => t + h.length, 0), 0);
  assert.ok(entries <= 16 * keep, `${entries} entries within the budget of ${16 * keep}`);
  const after = cache.layers.reduce((s, l) => s + l.bytes(), 0);
  assert.ok(after < 0.3 * before.bytes, `${after} bytes of ${before.bytes}: the dropped entries are freed`);
  let logits = lm.model.forward(question, cache, { lastOnly: true }).f32;
  const out: number[] = [];
  for (let t = 0; t < instance.maxNewTokens; t++) {
    out.push(argmax(logits));
    logits = lm.model.forward([out[t]], cache, { lastOnly: true }).f32;
  }
  assert.equal(score(instance, lm.tokenizer.decode(out)), 1, `the answer ${instance.answers} in ${JSON.stringify(lm.tokenizer.decode(out))}`);
});
