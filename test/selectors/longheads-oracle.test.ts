/**
 * LongHeads (selectors/longheads.ts) against the official code: LuLuLuyi/LongHeads' modeling_longheads/modeling_llama.py
 * run by tools/fixtures/make_longheads_oracle.py (its LlamaForCausalLM, float32; commit, versions and shims in the
 * fixture) into test/fixtures/longheads-oracle/. The official code is multi-head only, so the model is the tiny
 * random multi-head Llama test/fixtures/parity/llama-mha; chunks of w = 8, atten_length L = 256 (K = 32 chunks per
 * head), begin_selective_length B = 256: a 252-token prefill (below B: full attention, chunks summarised), then the
 * rest of the 640 prompt tokens one per forward, then 8 greedy steps, all teacher-forced here on the oracle's ids.
 * The official decoding branch selects from S = 256 (31 of 32 chunks read) to S = 648 (31 of 81).
 *
 * Compared at every selecting step, layer and head: the whole chunks read (first, chosen, last whole; exact, except
 * where the official choice is a near-tie, below), the slot each is read at (keys at slot·w + e mod w), the query's
 * remapped position and the number of keys read (the official relative_position_ids and current_query_position_ids);
 * the logits wherever the oracle recorded them (1e-3); the chunk keys after the last step (1e-4 of their largest).
 *
 * Near-ties: the oracle records, per choice, the gap between the last chunk chosen and the first left out, relative to
 * the largest score (the smallest of the ~3000 choices is ~7e-6, against chunk keys that agree to ~5e-6 of their
 * largest). Where it is below TIE, float32 rounding may order the two the other way: a differing choice is accepted
 * there (counted, at most MAX_TIES) and that head's reads are set to the official chunks, so that the step's logits
 * and everything after stay comparable. A differing choice anywhere else fails.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { isRemap, type RemappedReads } from '../../src/attention/remap.js';
import type { LayerCache } from '../../src/cache/kv-cache.js';
import type { SelectEntries } from '../../src/models/batch.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import { LongHeadsSelector } from '../../src/selectors/longheads.js';
import { SelectionSession } from '../../src/selectors/registry.js';

const DIR = new URL('../fixtures/longheads-oracle/', import.meta.url);
const FILE = new URL('oracle.json', DIR);
const LOGITS_TOLERANCE = 1e-3;
const KEY_TOLERANCE = 1e-4;
const TIE = 1e-4;
const MAX_TIES = 3;

interface Step {
  step: number;
  position: number;
  S: number;
  rows: number;
  selecting: boolean;
  query_position?: number;
  keys_read?: number;
  logits_row?: number;
}

interface Oracle {
  official_commit: string;
  model: string;
  weights_sha256: string;
  window: number;
  atten_length: number;
  begin: number;
  chunks_per_head: number;
  prefill: number;
  tokens: number;
  layers: number;
  heads: number;
  head_dim: number;
  vocab: number;
  ids: number[];
  steps: Step[];
  chunks: { file: string; shape: number[] };
  gaps: { file: string; shape: number[]; min: number | null };
  logits: { file: string; shape: number[] };
  chunk_keys: { file: string; shape: number[] } | null;
  errors: string[];
}

const bytes = (name: string) => {
  const b = readFileSync(new URL(name, DIR));
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
};

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
};

test('LongHeads on llama-mha against the official code: chunks, remapped positions, chunk keys and logits', {
  skip: !existsSync(FILE) && 'fixture absent: run python3 tools/fixtures/make_longheads_oracle.py --out test/fixtures/longheads-oracle (GPU machine, .oracle/LongHeads)',
}, (t) => {
  const o = JSON.parse(readFileSync(FILE, 'utf8')) as Oracle;
  assert.deepEqual(o.errors, [], 'the oracle run failed');
  const dir = new URL(`../fixtures/parity/${o.model}/`, import.meta.url);
  const weights = createHash('sha256').update(readFileSync(new URL('model.safetensors', dir))).digest('hex');
  assert.equal(weights, o.weights_sha256, `the oracle ran other weights than ${o.model}'s`);
  const lm = loadModel(dir.pathname);
  const { window: w, chunks_per_head: K, layers: L, heads: H } = o;
  assert.equal(lm.config.numHeads, H);
  assert.equal(lm.config.numKvHeads, H, 'multi-head: query head h reads KV head h');
  const chunks = new Int16Array(bytes(o.chunks.file));
  const gaps = new Float32Array(bytes(o.gaps.file));
  const logits = new Float32Array(bytes(o.logits.file));
  assert.equal(chunks.length, o.chunks.shape.reduce((m, x) => m * x, 1));
  assert.deepEqual(o.chunks.shape.slice(1), [L, H, K - 1]);

  const lh = new LongHeadsSelector({ window: w, budget: o.atten_length, begin: o.begin });
  const session = new SelectionSession(lh, lm.config);
  let current: { s: Step; row: number } | null = null;
  let ties = 0;
  let nontrivial = 0;
  const selected: boolean[] = [];
  /** This step's reads in one layer against the official ones; a near-tie that went the other way is set to the official chunks. */
  const check = (layer: number, r: RemappedReads, layerCache: LayerCache) => {
    const { s, row } = current!;
    const G = Math.floor(s.S / w);
    for (let h = 0; h < H; h++) {
      const head = layerCache.heads[h];
      const where = `step ${s.step} (S = ${s.S}), layer ${layer}, head ${h}`;
      const at = ((row * L + layer) * H + h) * (K - 1);
      const want = Array.from(chunks.subarray(at, at + K - 1));
      const got: number[] = [];
      let keys = 0;
      for (let span = r.offsets[h], slot = 0; span < r.offsets[h + 1]; span++, slot++) {
        const start = head.positions[r.starts[span]];
        const c = Math.floor(start / w);
        assert.equal(start % w, 0, `${where}: a span starts a chunk`);
        assert.equal(start + r.keyShifts[span], slot * w, `${where}: chunk ${c} read at slot ${slot}`);
        keys += Math.min(r.ends[span], head.visibleUpTo(s.position)) - r.starts[span];
        if (c < G) got.push(c);
      }
      assert.equal(s.position + r.queryShifts[h], s.query_position, `${where}: the query's remapped position`);
      assert.equal(keys, s.keys_read, `${where}: keys read`);
      if (got.join() === want.join()) continue;
      const gap = gaps[(row * L + layer) * H + h];
      assert.ok(gap < TIE && got.length === want.length, `${where}: chunks ${got} vs the official ${want} (gap ${gap})`);
      ties++;
      want.forEach((c, slot) => {
        const span = r.offsets[h] + slot;
        r.starts[span] = head.visibleUpTo(c * w - 1);
        r.ends[span] = head.visibleUpTo((c + 1) * w - 1);
        r.keyShifts[span] = (slot - c) * w;
      });
    }
  };
  const spy: SelectEntries = (layer, q, positions, layerCache) => {
    const r = session.select(layer, q, positions, layerCache);
    selected[layer] = isRemap(r);
    if (isRemap(r) && current) check(layer, r, layerCache);
    return r;
  };
  const cache = newCache(lm.config);
  // Full attention on the same ids: LongHeads must move the logits well past the tolerance for the comparison to mean something.
  const fullCache = newCache(lm.config);
  let selecting = 0;
  let comparedLogits = 0;
  let worstLogits = 0;
  let moved = 0;
  for (const s of o.steps) {
    const ids = s.step === 0 ? o.ids.slice(0, o.prefill) : [o.ids[s.position]];
    assert.equal(ids.length, s.rows, `step ${s.step}: rows`);
    if (s.selecting) {
      current = { s, row: selecting++ };
      if (Math.floor(s.S / w) - 2 > K - 3) nontrivial++;
    } else current = null;
    selected.length = 0;
    const last = lm.model.backend.read(lm.model.forward(ids, cache, { select: spy, lastOnly: true })).slice();
    assert.equal(selected.length, L);
    assert.ok(selected.every((x) => x === s.selecting), `step ${s.step} (S = ${s.S}): selects ${selected}, the official code ${s.selecting}`);
    const full = lm.model.backend.read(lm.model.forward(ids, fullCache, { lastOnly: true }));
    if (maxDiff(last, full) > 10 * LOGITS_TOLERANCE) moved++;
    if (s.logits_row !== undefined) {
      const want = logits.subarray(s.logits_row * o.vocab, (s.logits_row + 1) * o.vocab);
      const diff = maxDiff(last, want);
      assert.ok(diff < LOGITS_TOLERANCE, `step ${s.step} (S = ${s.S}): logits differ by ${diff}`);
      worstLogits = Math.max(worstLogits, diff);
      comparedLogits++;
    }
    // The oracle's greedy choices (the ids past its prompt) are Attend's argmax too.
    if (s.position + 1 >= o.tokens && s.position + 1 < o.ids.length) {
      assert.equal(last.indexOf(Math.max(...last)), o.ids[s.position + 1], `step ${s.step}: greedy token`);
    }
  }
  assert.ok(ties <= MAX_TIES, `${ties} near-tie choices differ`);
  assert.equal(selecting, o.chunks.shape[0]);
  assert.equal(comparedLogits, o.logits.shape[0]);
  assert.ok(nontrivial > 0.9 * selecting, 'most steps leave chunks out');
  assert.ok(moved > 0.5 * selecting, `LongHeads moved the logits past ${10 * LOGITS_TOLERANCE} at only ${moved} of ${selecting} selecting steps`);
  let worstKey = 0;
  if (o.chunk_keys) {
    const want = new Float32Array(bytes(o.chunk_keys.file));
    const [, , G, d] = o.chunk_keys.shape;
    const scale = want.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    for (let layer = 0; layer < L; layer++) {
      for (let h = 0; h < H; h++) {
        for (let c = 0; c < G; c++) {
          const got = lh.chunkKey(cache.layers[layer], h, c)!;
          const at = ((layer * H + h) * G + c) * d;
          const diff = maxDiff(got, want.subarray(at, at + d));
          assert.ok(diff < KEY_TOLERANCE * scale, `layer ${layer}, head ${h}, chunk ${c}: chunk key differs by ${diff}`);
          worstKey = Math.max(worstKey, diff / scale);
        }
      }
    }
  }
  t.diagnostic(`${selecting} selecting steps (${nontrivial} leaving chunks out), ${ties} near-tie choices set to the official ones; ` +
    `${comparedLogits} logits rows, worst |Δ| ${worstLogits.toExponential(2)}; chunk keys worst ${worstKey.toExponential(2)} of their largest; ` +
    `logits moved from full attention at ${moved} steps; official ${o.official_commit.slice(0, 7)}, smallest choice gap ${o.gaps.min}`);
});
