/**
 * Recycled Attention (selectors/recycled-attention.ts): which entries each step reads, worked by hand on a small
 * cache, for the fixed and the dynamic schedule; exactness when K covers the cache; a small K reads K entries per
 * KV head and still decodes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HeadStore } from '../../src/cache/head-store.js';
import { LayerCache } from '../../src/cache/kv-cache.js';
import { loadModel } from '../../src/models/load.js';
import type { ModelConfig } from '../../src/models/config.js';
import { RecycledAttentionSelector } from '../../src/selectors/recycled-attention.js';
import { createSelector, SelectionSession } from '../../src/selectors/registry.js';
import { generate } from '../../src/generate/generate.js';
import { decodeSelected } from '../helpers/selector-decode.js';

// Two query heads share one KV head, d = 2. A query √2·(a, b) has logits a·k₀ + b·k₁ (the scale is 1/√2).
const config = { numHeads: 2, numKvHeads: 1, headDim: 2 } as ModelConfig;
const r = Math.SQRT2;
const q = (a: number[], b: number[]) => Float32Array.from([...a, ...b].map((x) => x * r));
const FAR = [-100, -100];

/**
 * Entries 0–3: X (0, 0), Y (ln 1.5, −100), Z (−100, ln 1.25), V far. With q0 (head A reads channel 0, head B channel 1):
 * head A gives X 0.4, Y 0.6; head B gives X 1/2.25 = 0.444, Z 1.25/2.25 = 0.556. Max over the group: Y 0.6, Z 0.556,
 * X 0.444, V ≈ 0 (a sum would rank X 0.844 first).
 */
const q0 = q([1, 0], [0, 1]);
function cacheXYZV(): LayerCache<HeadStore> {
  const layer = LayerCache.empty(1, 2, 'f32');
  const keys = Float32Array.from([0, 0, Math.log(1.5), -100, -100, Math.log(1.25), ...FAR]);
  layer.heads[0].append(keys, keys, Int32Array.from([0, 1, 2, 3]), 0, 2);
  return layer;
}

/** Appends a far key at `position` (a decoding step's own key), then asks for the step's lists. */
function step(sel: RecycledAttentionSelector, cache: LayerCache<HeadStore>, position: number, queries: Float32Array, layer = 0): number[] | null | undefined {
  if (position > cache.heads[0].positions.at(-1)!) cache.heads[0].append(Float32Array.from(FAR), Float32Array.from(FAR), Int32Array.from([position]), 0, 2);
  const lists = sel.select({ layer, config, cache, queries, positions: Int32Array.from([position]) });
  return lists && (lists[0] ? Array.from(lists[0]) : null);
}

test('fixed schedule by hand: top K at a full step, one dropped per new token, a full step every S', () => {
  const sel = new RecycledAttentionSelector({ budget: 3, stride: 3 });
  const cache = cacheXYZV();
  // No full step seen yet: the first decoding step (position 3) runs full and ranks Y, Z, X.
  assert.equal(step(sel, cache, 3, q0), undefined);
  // One token since: the K − 1 = 2 best (Y, Z) and the new entry 4; two since: Y and entries 4, 5.
  assert.deepEqual(step(sel, cache, 4, q0), [1, 2, 4]);
  assert.deepEqual(step(sel, cache, 5, q0), [1, 4, 5]);
  // S = 3 steps after: full again. Query √2·(−1, 0) on both heads: Z, V and entries 4–6 tie at logit 100 → Z, V, 4.
  const back = q([-1, 0], [-1, 0]);
  assert.equal(step(sel, cache, 6, back), undefined);
  assert.deepEqual(step(sel, cache, 7, q0), [2, 3, 7]);
  // Another layer keeps its own state: no full step there yet.
  assert.equal(step(sel, cache, 7, q0, 1), undefined);
  // Prefill (several rows) is a full step ranked by its last row: the first decoding step after it recycles.
  const fresh = new RecycledAttentionSelector({ budget: 3, stride: 3 });
  const c2 = cacheXYZV();
  assert.equal(fresh.select({ layer: 0, config, cache: c2, queries: Float32Array.from([...back, ...q0]), positions: Int32Array.from([2, 3]) }), undefined);
  assert.deepEqual(step(fresh, c2, 4, q0), [1, 2, 4]);
  // A sliding window of 2 at position 3 ranks only Z and V (head B gives Z ≈ 1): Z, V, then the unseen X.
  const windowed = new RecycledAttentionSelector({ budget: 3, stride: 3 });
  const c4 = cacheXYZV();
  const wconfig = { ...config, slidingWindows: [2] } as ModelConfig;
  assert.equal(windowed.select({ layer: 0, config: wconfig, cache: c4, queries: q0, positions: Int32Array.from([3]) }), undefined);
  c4.heads[0].append(Float32Array.from(FAR), Float32Array.from(FAR), Int32Array.from([4]), 0, 2);
  assert.deepEqual(Array.from(windowed.select({ layer: 0, config: wconfig, cache: c4, queries: q0, positions: Int32Array.from([4]) })![0]!), [2, 3, 4]);
  // A K that covers every entry restricts nothing.
  const all = new RecycledAttentionSelector({ budget: 6 });
  const c3 = cacheXYZV();
  assert.equal(step(all, c3, 3, q0), undefined);
  assert.equal(step(all, c3, 4, q0), null);
  assert.throws(() => createSelector('recycled-attention', { dynamic: 2 }), /dynamic must be 0 or 1/);
  assert.throws(() => createSelector('recycled-attention', { budget: 0 }), /budget must be a whole number/);
  assert.throws(() => createSelector('recycled-attention', { window: 3 }), /no option 'window'/);
});

test('dynamic schedule by hand: every S steps, a full step when the query drifts below the threshold', () => {
  const sel = new RecycledAttentionSelector({ budget: 3, stride: 2, dynamic: 1, threshold: 0.8 });
  const cache = cacheXYZV();
  assert.equal(step(sel, cache, 3, q0), undefined);
  assert.deepEqual(step(sel, cache, 4, q0), [1, 2, 4]);
  // Check at 2 steps since: head A's cosine 1, head B's 0.7 → mean 0.85 ≥ 0.8: recycle.
  assert.deepEqual(step(sel, cache, 5, q([1, 0], [Math.sqrt(0.51), 0.7])), [1, 4, 5]);
  // 3 steps since: no check, however far the query moved; K − 3 = 0 old entries, the 3 new ones.
  assert.deepEqual(step(sel, cache, 6, q([-1, 0], [-1, 0])), [4, 5, 6]);
  // Check at 4 since: head B's cosine 0.5 → mean 0.75 < 0.8: full step. Head A gives X 0.4, Y 0.6; head B, whose
  // logits are (√3/2)k₀ + k₁/2, gives X ≈ 1: max ranks X, Y first, read with the new entry 8.
  const drift = q([1, 0], [Math.sqrt(3) / 2, 0.5]);
  assert.equal(step(sel, cache, 7, drift), undefined);
  assert.deepEqual(step(sel, cache, 8, q0), [0, 1, 8]);
  // Defaults: the paper's K = 4096, S = 50; with dynamic its QC = 5 and s = 0.8.
  const d = new RecycledAttentionSelector({ dynamic: 1 });
  assert.deepEqual([d.budget, d.stride, d.threshold, new RecycledAttentionSelector().stride], [4096, 5, 0.8, 50]);
});

const lm = loadModel(new URL('../../models/attend-mini', import.meta.url).pathname);
const prompt = lm.tokenizer.encode('The museum opens at nine. Tickets cost twelve euros, and the guided tour starts at ten. '.repeat(6) + 'The tour starts at');
const layers = lm.config.numLayers;

/** Greedy decode; with `throughPrefill` the selector also sees the prompt (one full forward). */
const decode = (select: SelectionSession | undefined, throughPrefill = false) => decodeSelected(lm, prompt, select, { throughPrefill }).logits;

test('a K that covers the cache gives full attention exactly; a small K reads K entries per KV head', () => {
  const full = decode(undefined);
  const close = (l: Float32Array[]) => l.every((x, i) => x.every((v, j) => Math.abs(v - full[i][j]) < 1e-5));
  // Not seeing the prefill, the first step is full; the 5 after recycle (S = 50).
  const all = new SelectionSession(createSelector('recycled-attention', { budget: 4096 }), lm.config);
  assert.ok(close(decode(all)));
  assert.equal(all.stats.selections, 5 * layers);
  assert.equal(all.readShare(), 1);
  // Seeing it, the prefill's last row ranks and all 6 steps recycle.
  const seen = new SelectionSession(createSelector('recycled-attention', { budget: 4096 }), lm.config);
  assert.ok(close(decode(seen, true)));
  assert.equal(seen.stats.selections, 6 * layers);

  // K = 16, S = 4: full at steps 1 and 5, recycled at 2–4 and 6; each KV head reads exactly 16 of the ~130 entries.
  const small = new SelectionSession(createSelector('recycled-attention', { budget: 16, stride: 4 }), lm.config);
  const sparse = decode(small);
  assert.equal(small.stats.selections, 4 * layers);
  assert.equal(small.stats.lists, small.stats.selections * lm.config.numKvHeads);
  assert.equal(small.stats.entriesRead, small.stats.lists * 16);
  assert.ok(sparse.every((l) => l.every(Number.isFinite)));
  assert.ok(!close(sparse), 'a small K changes attention');
  // Dynamic, QC = 5: threshold −1 never forces a full step (5 recycled steps per layer); threshold 1 forces one at the
  // check 5 steps after the first (4 per layer).
  for (const [threshold, recycled] of [[-1, 5], [1, 4]]) {
    const dyn = new SelectionSession(createSelector('recycled-attention', { budget: 16, dynamic: 1, threshold }), lm.config);
    decode(dyn);
    assert.equal(dyn.stats.selections, recycled * layers, `threshold ${threshold}`);
  }
});

test('in generation the prompt\'s last token is the first full step: every decoding step after it recycles', async () => {
  // The paper's schedule: the prefill attends in full and its last row fills the recycled cache, so the first
  // generated token is already read through it. generate() shows the prefill only to selectors that declare it.
  const out = await generate(lm, prompt, { selector: createSelector('recycled-attention', { budget: 16, stride: 50 }), maxNewTokens: 4, temperature: 0 });
  assert.equal(out.newTokens, 4);
  // 3 decoding forwards (the 4th token is sampled from the 3rd's logits), all recycled at every layer.
  assert.equal(out.selection?.selections, 3 * layers);
  assert.equal(out.selection?.entriesRead, 3 * layers * lm.config.numKvHeads * 16);
});
