/**
 * LongHeads (selectors/longheads.ts): the chunks a head reads and the positions it reads them at, worked by hand on a
 * constructed cache; the remapped attention against attention recomputed by hand with the keys and the query rotated
 * at their new positions; exactness when nothing is dropped or moved; and short runs on attend-mini.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyRope, inverseFrequencies, ropeTables } from '../../src/attention/rope.js';
import { isRemap, type RemappedReads } from '../../src/attention/remap.js';
import { cpuBackend } from '../../src/backend/cpu/index.js';
import { referenceBackend } from '../../src/backend/reference/index.js';
import { LayerCache } from '../../src/cache/kv-cache.js';
import { uniformArray } from '../../src/generate/random.js';
import { prefill } from '../../src/generate/prefill.js';
import type { ModelConfig } from '../../src/models/config.js';
import type { SelectEntries } from '../../src/models/batch.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import { LongHeadsSelector, topChunks } from '../../src/selectors/longheads.js';
import { createSelector, SelectionSession } from '../../src/selectors/registry.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { decodeSelected } from '../helpers/selector-decode.js';

// A constructed head: d = 4 with rotary on dims 0–1 only (inv = [1]); chunks of w = 2 positions; L = 8 (K = 4 chunks
// per head: the first, one chosen, the last whole one, the partial one); B = 8. Dims 2–3 carry the selection signal,
// unrotated: chunk c's two keys hold (a_c, 0.5) there, every query (1, 0), so the query meets chunk c's key in a_c
// (the chunk key of two equal keys is that key); dims 0–1 hold small random parts that rotate.
const w = 2;
const rope = { type: 'default' as const, theta: 10000, dim: 2, factor: 1, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8 };
const config = { numHeads: 1, numKvHeads: 1, headDim: 4, maxPositions: 8, rope } as ModelConfig;
const inv = inverseFrequencies(rope, 13);
const a = [5, 1, 3, 9, 2, 7, 4];
const preKeys = Float32Array.from({ length: 13 * 4 }, (_, i) => (i % 4 < 2 ? 0.1 * uniformArray(52, 1)[i] : i % 4 === 2 ? a[Math.floor(i / 4 / w)] : 0.5));
const preQueries = Float32Array.from({ length: 13 * 4 }, (_, i) => (i % 4 < 2 ? 0.1 * uniformArray(52, 2)[i] : i % 4 === 2 ? 1 : 0));
const values = uniformArray(13 * 4, 3);

/** Pre-RoPE rows turned to `positions` (rows × 4), as the model stores keys and hands queries to selectors. */
function rotated(pre: Float32Array, positions: Int32Array): Float32Array {
  const x = pre.slice(0, positions.length * 4);
  applyRope(x, positions.length, 1, 4, ropeTables(inv, positions));
  return x;
}

function world(): { layer: ReturnType<typeof LayerCache.empty>; stored: { q: Float32Array; k: Float32Array } } {
  const layer = LayerCache.empty(1, 4, 'f32');
  const positions = Int32Array.from({ length: 13 }, (_, i) => i);
  const q = rotated(preQueries, positions);
  const k = rotated(preKeys, positions);
  return { layer, stored: { q, k } };
}

/** Unit u's spans as [start, end, keyShift] and its query shift. */
function unit(remap: RemappedReads, u: number): { spans: number[][]; queryShift: number } {
  const spans = [];
  for (let s = remap.offsets[u]; s < remap.offsets[u + 1]; s++) spans.push([remap.starts[s], remap.ends[s], remap.keyShifts[s]]);
  return { spans, queryShift: remap.queryShifts[u] };
}

test('chunk choice and positions by hand: first chunk, the best-scoring middle chunk, the last whole one, the partial one', () => {
  const { layer, stored } = world();
  const lh = new LongHeadsSelector({ window: w });
  assert.equal(lh.budgetFor(config), 8);
  const positions = Int32Array.from({ length: 12 }, (_, i) => i);
  layer.heads[0].append(stored.k, values, positions, 0, 4);
  // Prefill of positions 0…11 (the selector sees every query; it summarises chunks 0…5 as they are whole).
  const pre = lh.select({ layer: 0, config, cache: layer, queries: stored.q.slice(0, 48), positions })!;
  // p = 6: S = 7 < B: everything, unmoved (one span that causality clips).
  assert.deepEqual(unit(pre, 6), { spans: [[0, 12, 0]], queryShift: 0 });
  // p = 7: S = 8 = B, G = 4 whole chunks, candidates 1…2 score a = 1, 3: chunk 2 (K − 3 = 1 chosen); read 0, 2, 3 at
  // slots 0, 1, 2: chunk 2 moves by (1 − 2)·2 = −2, chunk 3 (the query's own, S mod w = 0: no partial chunk) by −2.
  assert.deepEqual(unit(pre, 7), { spans: [[0, 2, 0], [4, 6, -2], [6, 8, -2]], queryShift: -2 });
  // p = 9: G = 5, candidates 1…3 score 1, 3, 9: chunk 3; read 0, 3, 4: shifts 0, (1 − 3)·2, (2 − 4)·2.
  assert.deepEqual(unit(pre, 9), { spans: [[0, 2, 0], [6, 8, -4], [8, 10, -4]], queryShift: -4 });
  // p = 10: G = 5 and the partial chunk 5 (its entries 10, 11 are listed; causality clips 11): slot 3, shift −4.
  assert.deepEqual(unit(pre, 10), { spans: [[0, 2, 0], [6, 8, -4], [8, 10, -4], [10, 12, -4]], queryShift: -4 });
  // Decoding p = 12: G = 6, candidates 1…4 score 1, 3, 9, 2: chunk 3; read 0, 3, 5 and the partial chunk 6.
  layer.heads[0].append(stored.k.slice(48), values.slice(48), Int32Array.from([12]), 0, 4);
  const step = lh.select({ layer: 0, config, cache: layer, queries: stored.q.slice(48), positions: Int32Array.from([12]) })!;
  assert.deepEqual(unit(step, 0), { spans: [[0, 2, 0], [6, 8, -4], [10, 12, -6], [12, 13, -6]], queryShift: -6 });
  // The query reads at (K − 1)·w + (S mod w) − 1 = 6 (the official current_query_position_ids); every key below L = 8.
  assert.equal(12 + step.queryShifts[0], 6);
  for (let s = 0; s < step.offsets[1]; s++) assert.ok(step.ends[s] - 1 + step.keyShifts[s] < 8);
  // The session counts what the spans read against what each row could see.
  const session = new SelectionSession(new LongHeadsSelector({ window: w }), config);
  const fresh = world();
  fresh.layer.heads[0].append(fresh.stored.k, values, Int32Array.from({ length: 13 }, (_, i) => i), 0, 4);
  session.select(0, fresh.stored.q, Int32Array.from({ length: 13 }, (_, i) => i), fresh.layer);
  assert.ok(session.stats.entriesRead < session.stats.entriesHeld);
});

test('chunk representation by hand: non-causal attention inside the chunk, its mean output attends over the keys', () => {
  // Chunk 0 (w = 2), content in the unrotated dims 2–3: k0 = (1, 0), k1 = (0, 1); q0 = (2 ln 3, 0), q1 = 0; v0 = (4, 0),
  // v1 = (0, 4); scale 1/√4. Token 0 weighs k0, k1 by softmax(ln 3, 0) = (3/4, 1/4), so it outputs (3, 1); token 1
  // weighs them evenly: (2, 2). Mean (2.5, 1.5). It scores k0, k1 at 1.25, 0.75: weights σ(0.5), 1 − σ(0.5), the chunk key.
  // Chunk 1 holds the same content before RoPE plus rotated dims; its key, at positions local to the chunk, equals chunk 0's.
  const sig = 1 / (1 + Math.exp(-0.5));
  for (const rotatedPart of [0, 0.3]) {
    const chunkKeys = [0, 0, 1, 0, 0, 0, 0, 1].map((x, i) => (i % 4 < 2 ? rotatedPart * (i % 4 ? -1 : 1) * (1 + (i >> 2)) : x));
    const chunkQueries = [0, 0, 2 * Math.log(3), 0, 0, 0, 0, 0].map((x, i) => (i % 4 < 2 ? rotatedPart * (1 + i) : x));
    const pre = { k: Float32Array.from([...chunkKeys, ...chunkKeys]), q: Float32Array.from([...chunkQueries, ...chunkQueries]) };
    const vals = Float32Array.from([0, 0, 4, 0, 0, 0, 0, 4, 0, 0, 4, 0, 0, 0, 0, 4]);
    const positions = Int32Array.from([0, 1, 2, 3]);
    const layer = LayerCache.empty(1, 4, 'f32');
    layer.heads[0].append(rotated(pre.k, positions), vals, positions, 0, 4);
    const lh = new LongHeadsSelector({ window: w });
    assert.equal(lh.select({ layer: 0, config, cache: layer, queries: rotated(pre.q, positions), positions }), undefined);
    const [c0, c1] = [lh.chunkKey(layer, 0, 0)!, lh.chunkKey(layer, 0, 1)!];
    if (rotatedPart === 0) [0, 0, sig, 1 - sig].forEach((x, i) => assert.ok(Math.abs(c0[i] - x) < 1e-6, `dim ${i}: ${c0[i]} vs ${x}`));
    c0.forEach((x, i) => assert.ok(Math.abs(c1[i] - x) < 1e-5, `local positions, dim ${i}: ${c1[i]} vs ${x}`));
  }
});

test('top chunks: the highest scores of chunks 1…last, in order; ties to the earlier; empty chunks never', () => {
  const keys = Float32Array.from([0, 4, 2, 2, 9, 1]); // d = 1: chunk c's key is keys[c]
  assert.deepEqual(topChunks(Float32Array.from([1]), keys, new Uint8Array(6), 4, 2, 1), [1, 4]);
  assert.deepEqual(topChunks(Float32Array.from([1]), keys, new Uint8Array(6), 4, 3, 1), [1, 2, 4]);
  assert.deepEqual(topChunks(Float32Array.from([1]), keys, Uint8Array.from([0, 0, 0, 0, 1, 0]), 4, 2, 1), [1, 2]);
  assert.deepEqual(topChunks(Float32Array.from([-1]), keys, new Uint8Array(6), 4, 1, 1), [2]);
  assert.deepEqual(topChunks(Float32Array.from([1]), keys, new Uint8Array(6), 2, 5, 1), [1, 2]);
});

test('remapped positions by hand: the backends equal attention over the read keys re-encoded at their new positions', () => {
  const { layer, stored } = world();
  const all = Int32Array.from({ length: 13 }, (_, i) => i);
  layer.heads[0].append(stored.k, values, all, 0, 4);
  const lh = new LongHeadsSelector({ window: w });
  lh.select({ layer: 0, config, cache: layer, queries: stored.q.slice(0, 48), positions: all.subarray(0, 12) });
  const remap = lh.select({ layer: 0, config, cache: layer, queries: stored.q.slice(48), positions: Int32Array.from([12]) })!;
  // Read: entries 0, 1 (chunk 0 → slot 0), 6, 7 (chunk 3 → slot 1), 10, 11 (chunk 5 → slot 2), 12 (partial chunk 6 →
  // slot 3); new position slot·w + e mod w: 0, 1, 2, 3, 4, 5, 6; the query at 6.
  const read = [0, 1, 6, 7, 10, 11, 12];
  const k = rotated(Float32Array.from(read.flatMap((e) => Array.from(preKeys.subarray(4 * e, 4 * e + 4)))), Int32Array.from([0, 1, 2, 3, 4, 5, 6]));
  const q = rotated(preQueries.slice(48), Int32Array.from([6]));
  const scale = 0.5;
  const s = read.map((_, j) => scale * [0, 1, 2, 3].reduce((m, i) => m + q[i] * k[4 * j + i], 0));
  const max = Math.max(...s);
  const p = s.map((x) => Math.exp(x - max));
  const sum = p.reduce((m, x) => m + x, 0);
  const want = [0, 1, 2, 3].map((i) => read.reduce((m, e, j) => m + (p[j] / sum) * values[4 * e + i], 0));
  const qt = new Tensor([1, 4], stored.q.slice(48));
  for (const be of [cpuBackend, referenceBackend]) {
    const got = be.read(be.attention(qt, layer, Int32Array.from([12]), { layer: 0, scale, window: null, remap }));
    got.forEach((x, i) => assert.ok(Math.abs(x - want[i]) < 1e-5, `${be.name} dim ${i}: ${x} vs ${want[i]}`));
  }
  // Without the remap the same entries at their own positions give another result (the shift matters).
  const unmoved = { ...remap, keyShifts: new Int32Array(remap.keyShifts.length), queryShifts: new Int32Array(1) };
  const other = cpuBackend.read(cpuBackend.attention(qt, layer, Int32Array.from([12]), { layer: 0, scale, window: null, remap: unmoved }));
  assert.ok(other.some((x, i) => Math.abs(x - want[i]) > 1e-4));
});

test('options: bad values fail in one line; a late start fails when a step needs the chunks it never saw', () => {
  assert.throws(() => createSelector('longheads', { window: 0 }), /window must be a whole number/);
  assert.throws(() => new LongHeadsSelector({ window: 256, budget: 1000 }).budgetFor(config), /multiple of the window/);
  assert.throws(() => createSelector('longheads', { chunk: 3 }), /no option 'chunk'/);
  const { layer, stored } = world();
  layer.heads[0].append(stored.k, values, Int32Array.from({ length: 13 }, (_, i) => i), 0, 4);
  assert.throws(
    () => new LongHeadsSelector({ window: w }).select({ layer: 0, config, cache: layer, queries: stored.q.slice(48), positions: Int32Array.from([12]) }),
    /never saw the queries of chunks before 6: .*the prefill too/,
  );
  const noRope = { ...config, rope: null } as ModelConfig;
  assert.throws(() => new LongHeadsSelector().select({ layer: 0, config: noRope, cache: layer, queries: stored.q.slice(48), positions: Int32Array.from([12]) }), /no rotary/);
});

const lm = loadModel(new URL('../../models/attend-mini', import.meta.url).pathname);
const prompt = lm.tokenizer.encode('The museum opens at nine. Tickets cost twelve euros, and the guided tour starts at ten. '.repeat(7) + 'The tour starts at');

test('attend-mini: inside the trained length, and when every chunk is read unmoved, the logits are full attention', () => {
  const full = decodeSelected(lm, prompt, undefined, { throughPrefill: true });
  // Default budget (8192): the prompt is inside it, nothing selects.
  const inside = new SelectionSession(createSelector('longheads'), lm.config);
  const same = decodeSelected(lm, prompt, inside, { throughPrefill: true });
  same.logits.forEach((l, i) => assert.ok(l.every((x, j) => Math.abs(x - full.logits[i][j]) < 1e-5), `step ${i}`));
  assert.equal(inside.stats.selections, 0);
  // Selecting from S = 64 with K = 32 chunks of 16: every chunk of the ~170 tokens is chosen, each at its own slot
  // (shift 0): the remapped path in prefill and decoding, exact.
  const every = new SelectionSession(createSelector('longheads', { window: 16, budget: 512, begin: 64 }), lm.config);
  const exact = decodeSelected(lm, prompt, every, { throughPrefill: true });
  assert.ok(every.stats.selections > 0);
  assert.equal(every.readShare(), 1);
  exact.logits.forEach((l, i) => {
    const worst = l.reduce((m, x, j) => Math.max(m, Math.abs(x - full.logits[i][j])), 0);
    assert.ok(worst < 1e-5, `step ${i}: ${worst}`);
  });
});

test('attend-mini: a 64-token attention length reads 4 chunks per head, every position inside it, and still decodes', () => {
  const full = decodeSelected(lm, prompt, undefined, { throughPrefill: true });
  const lh = createSelector('longheads', { window: 16, budget: 64, begin: 64 });
  const session = new SelectionSession(lh, lm.config);
  // Every call's reads stay inside the 64-position window: keys at [0, 64), the query after every key it reads.
  let checked = 0;
  const spy: SelectEntries = (layer, q, positions, cache) => {
    const r = session.select(layer, q, positions, cache);
    if (isRemap(r)) {
      const heads = lm.config.numHeads;
      for (let u = 0; u < positions.length * heads; u++) {
        const p = positions[Math.floor(u / heads)];
        const qNew: number = p + r.queryShifts[u];
        if (p + 1 < 64) continue;
        assert.ok(qNew < 64 && qNew >= 0, `query at ${qNew}`);
        const head = cache.heads[Math.floor((u % heads) / (heads / lm.config.numKvHeads))];
        for (let s: number = r.offsets[u]; s < r.offsets[u + 1]; s++) {
          const lastSeen: number = Math.min(r.ends[s], head.visibleUpTo(p)) - 1;
          if (lastSeen < r.starts[s]) continue;
          assert.ok(head.positions[r.starts[s]] + r.keyShifts[s] >= 0 && head.positions[lastSeen] + r.keyShifts[s] <= qNew);
          checked++;
        }
      }
    }
    return r;
  };
  const cache = newCache(lm.config);
  let last = lm.model.backend.read(lm.model.forward(prompt, cache, { select: spy, lastOnly: true }));
  const logits: Float32Array[] = [];
  for (let i = 0; i < 4; i++) {
    last = lm.model.forward([last.indexOf(Math.max(...last))], cache, { select: spy }).f32.slice();
    logits.push(last);
  }
  assert.ok(checked > 0);
  assert.ok(logits.every((l) => l.every(Number.isFinite)));
  assert.ok(session.readShare() < 0.7, `read share ${session.readShare()}`);
  assert.ok(session.stats.entriesRead <= session.stats.lists * 64);
  assert.ok(logits.some((l, i) => l.some((x, j) => Math.abs(x - full.logits[i][j]) > 1e-4)), 'reading 64 of ~170 entries changes attention');
  // A prefill the selector did not see cannot be scored once a step selects.
  const late = newCache(lm.config);
  prefill(lm.model, late, prompt, { chunkSize: 64 });
  assert.throws(() => lm.model.forward([5], late, { select: new SelectionSession(createSelector('longheads', { window: 16, budget: 64 }), lm.config).select }), /the prefill too/);
});
