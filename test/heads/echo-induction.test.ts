/**
 * Echo and induction scores (heads/echo-induction.ts, RazorAttention): the scores worked by hand on constructed
 * attention blocks, the retrieval-head shares (top 1% echo, top 14% induction by KV head, Python's rounding, ties
 * in), and a short attend-mini run in which a trained induction head stands out.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AttentionBlock } from '../../src/backend/backend.js';
import {
  EchoInductionRecorder,
  echoInductionScores,
  groupMax,
  repeatedRandomTokens,
  retrievalHeads,
  shareCut,
} from '../../src/heads/echo-induction.js';
import { roundHalfEven } from '../../src/presses/lukv.js';
import { PROBES } from '../../src/heads/registry.js';
import { loadModel } from '../../src/models/load.js';

/** A block of one KV head with two query heads: `rows[t][g]` is query head g's row at position positions[t]. */
function block(positions: number[], rows: number[][][], cols: number): AttentionBlock {
  const probs = new Float32Array(positions.length * 2 * cols);
  rows.forEach((perHead, t) => perHead.forEach((r, g) => probs.set(r, (t * 2 + g) * cols)));
  return { layer: 0, kvHead: 0, groupSize: 2, queryPositions: Int32Array.from(positions), probs, cols };
}

test('echo and induction by hand: a BOS, 2 tokens repeated 3 times', () => {
  // Positions: 0 BOS | 1 2 (copy 0, i = 0 1) | 3 4 (copy 1, i = 2 3) | 5 6 (copy 2, i = 4 5).
  // Earlier occurrences of the row at i: j = i-2, i-4, … ≥ 0, at column 1 + j (echo) and 2 + j (induction).
  const layout = { offset: 1, length: 2, repeats: 3 };
  const rec = new EchoInductionRecorder({ numLayers: 1, numHeads: 2, numKvHeads: 1 }, layout);
  // Rows of the first copy (and the BOS) are not scored, whatever they hold.
  rec.observe(block([0, 1, 2], [[[1, 0, 0], [1, 0, 0]], [[0, 1, 0], [0, 1, 0]], [[0, 0, 1], [0, 0, 1]]], 3));
  // Head 0 (induction): pos 3 → col 2: 0.8; pos 4 → col 3: 0.6; pos 5 → cols 4, 2: 0.5 + 0.3; pos 6 → cols 5, 3: 0.7 + 0.1,
  // and echo only at pos 6 (col 2: 0.2). Head 1 (echo): pos 3 col 1: 1; pos 4 col 2: 0.5; pos 5 cols 3, 1: 0.6 + 0.4;
  // pos 6 cols 4, 2: 0.9 (col 6, itself, 0.1).
  rec.observe(
    block(
      [3, 4, 5, 6],
      [
        [[0.2, 0, 0.8, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0]],
        [[0, 0, 0, 0.6, 0.4, 0, 0], [0.5, 0, 0.5, 0, 0, 0, 0]],
        [[0.2, 0, 0.3, 0, 0.5, 0, 0], [0, 0.4, 0, 0.6, 0, 0, 0]],
        [[0, 0, 0.2, 0.1, 0, 0.7, 0], [0, 0, 0, 0, 0.9, 0, 0.1]],
      ],
      7,
    ),
  );
  const { echo, induction } = rec.scores();
  const near = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-6, `${a} ≠ ${b}`);
  near(induction[0][0], (0.8 + 0.6 + 0.8 + 0.8) / 4);
  near(echo[0][0], 0.2 / 4);
  near(echo[0][1], (1 + 0.5 + 1 + 0.9) / 4);
  near(induction[0][1], 0);
  assert.deepEqual(Array.from(rec.rows[0]), [4, 4]);
  // A block of one query head (per-query-head entry lists) cannot be placed in its group.
  assert.throws(() => rec.observe({ ...block([3], [[[0], [0]]], 1), groupSize: 1 }), /whole KV groups/);
});

test('the input: a seeded block in [low, low + length] repeated after the BOS', () => {
  const r = repeatedRandomTokens(100, 7, { length: 5, repeats: 3, low: 40, seed: 3 });
  assert.equal(r.ids.length, 1 + 15);
  assert.equal(r.ids[0], 7);
  const blockIds = r.ids.slice(1, 6);
  assert.deepEqual(r.ids.slice(6, 11), blockIds);
  assert.deepEqual(r.ids.slice(11), blockIds);
  assert.ok(blockIds.every((id) => id >= 40 && id <= 45));
  assert.deepEqual(repeatedRandomTokens(100, 7, { length: 5, repeats: 3, low: 40, seed: 3 }).ids, r.ids);
  assert.equal(repeatedRandomTokens(100, undefined, { length: 5, repeats: 2, low: 40 }).offset, 0);
  assert.throws(() => repeatedRandomTokens(100, 0, { length: 60, low: 40 }), /do not fit a vocabulary of 100/);
  assert.throws(() => repeatedRandomTokens(100, 0, { length: 5, repeats: 1, low: 0 }), /repeats must be/);
});

test('retrieval heads by hand: max per KV group, top shares with Python rounding and ties', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 2.24, 0.16, 2.6].map(roundHalfEven), [0, 2, 2, 2, 0, 3]);
  // 2 layers × 4 query heads, groups of 2 → KV units: layer 0 [0.9, 0.4], layer 1 [0.7, 0.4].
  const induction = [
    [0.1, 0.9, 0.4, 0.2],
    [0.7, 0.3, 0.4, 0.0],
  ];
  const echo = [
    [0.0, 0.1, 0.3, 0.2],
    [0.05, 0.0, 0.01, 0.02],
  ];
  assert.deepEqual(groupMax(induction, 2), [[0.9, 0.4], [0.7, 0.4]]);
  // Induction share 0.5 of 4 units: k = 2 → 0.9 and 0.7. Echo share 0.25: k = 1 → layer 0 KV head 1 (0.3).
  assert.deepEqual(retrievalHeads(echo, induction, 2, { echo: 0.25, induction: 0.5 }), [
    { layer: 0, kvHead: 0, echo: false, induction: true },
    { layer: 0, kvHead: 1, echo: true, induction: false },
    { layer: 1, kvHead: 0, echo: false, induction: true },
  ]);
  // k = 3 reaches the tie at 0.4: both units scoring 0.4 are in (4 heads for a share of 3).
  assert.equal(retrievalHeads(echo, induction, 2, { echo: 0, induction: 0.75 }).length, 4);
  // The paper's shares on 4 units: round(0.04) = 0 echo, round(0.56) = 1 induction.
  assert.deepEqual(retrievalHeads(echo, induction, 2), [{ layer: 0, kvHead: 0, echo: false, induction: true }]);
  // 4 · 0.125 = 0.5 rounds to 0 as Python rounds it (Math.round would take one).
  assert.equal(shareCut(groupMax(induction, 2), 0.125), undefined);
  assert.throws(() => retrievalHeads(echo, induction, 2, { echo: 1.5 }), /share must be in \[0, 1\]/);
});

test('attend-mini on repeated random tokens: finite scores of the right shape, one clear induction head', () => {
  const lm = loadModel(new URL('../../models/attend-mini', import.meta.url).pathname);
  const c = lm.config;
  // Short blocks of common ids (the paper's 2500 ids from 10000 are rare tokens for a 16k vocabulary, and long).
  const { echo, induction } = echoInductionScores(lm, { length: 64, low: 1000, chunkSize: 100 });
  for (const s of [echo, induction]) {
    assert.equal(s.layers, c.numLayers);
    assert.equal(s.heads, c.numHeads);
    assert.equal(s.scores.length, c.numLayers);
    assert.ok(s.scores.every((row) => row.length === c.numHeads && row.every((x) => Number.isFinite(x) && x >= 0 && x <= 1)));
    assert.equal(s.samples, 1);
  }
  const ranked = induction.scores.flat().sort((a, b) => b - a);
  const median = ranked[ranked.length >> 1];
  assert.ok(ranked[0] > 0.25 && ranked[0] > 10 * median, `top induction ${ranked[0]}, median ${median}`);
  // Streaming: chunks of another size give the same scores.
  const again = echoInductionScores(lm, { length: 64, low: 1000, chunkSize: 37 });
  again.induction.scores.forEach((row, l) => row.forEach((x, h) => assert.ok(Math.abs(x - induction.scores[l][h]) < 1e-5)));
  // 16 KV heads: round(16 · 0.14) = 2 induction units, round(0.16) = 0 echo units; the top head's KV head is one.
  const heads = retrievalHeads(echo.scores, induction.scores, c.numHeads / c.numKvHeads);
  assert.equal(heads.length, 2);
  assert.ok(heads.every((h) => h.induction && !h.echo));
  const top = induction.scores.flatMap((row, layer) => row.map((x, head) => ({ x, layer, head }))).sort((a, b) => b.x - a.x)[0];
  assert.ok(heads.some((h) => h.layer === top.layer && h.kvHead === Math.floor(top.head / (c.numHeads / c.numKvHeads))));
  // The threshold is the best KV head left out: the query heads above it are in the two chosen KV heads.
  const group = c.numHeads / c.numKvHeads;
  const above = induction.scores.flatMap((row, layer) => row.flatMap((x, head) => (x > induction.threshold! ? [{ layer, kvHead: Math.floor(head / group) }] : [])));
  assert.ok(above.length >= 2 && above.every((a) => heads.some((h) => h.layer === a.layer && h.kvHead === a.kvHead)));
  // No echo KV head is chosen (k = 0): the echo threshold is the top score, no head above it.
  assert.equal(echo.threshold, Math.max(...echo.scores.flat()));
  assert.deepEqual((induction.details as { retrievalHeads: unknown }).retrievalHeads, heads);
});

test('the registry blocks: echo and induction by `lengths`, `samples`, `seed`; one-line errors', () => {
  const lm = loadModel(new URL('../../models/attend-mini', import.meta.url).pathname);
  const seen: number[] = [];
  const s = PROBES.induction.run(lm, { lengths: [16], samples: 2, seed: 5, progress: (done) => seen.push(done) });
  assert.equal(s.probe, 'induction');
  assert.equal(s.samples, 2);
  assert.deepEqual(seen, [1, 2]);
  assert.deepEqual((s.details as { length: number; seed: number }).length, 16);
  assert.equal(PROBES.echo.run(lm, { lengths: [16] }).probe, 'echo');
  assert.throws(() => PROBES.echo.run(lm, { depths: [0.5] }), /no needle depths/);
  assert.throws(() => PROBES.echo.run(lm, { lengths: [16, 32] }), /one length/);
});
