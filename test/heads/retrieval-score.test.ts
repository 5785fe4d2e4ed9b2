/**
 * Retrieval score (src/heads/retrieval-score.ts): the copy rule worked by hand on constructed attention blocks, the
 * needle span, the masking hooks of the causal check, and a short run on attend-mini (one 1K-token needle) that
 * finds copying heads and loses the needle when they are masked.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AttentionBlock } from '../../src/backend/backend.js';
import { cpuBackend } from '../../src/backend/cpu/index.js';
import type { ModelConfig } from '../../src/models/config.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import { Random } from '../../src/generate/random.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { decodeIds, findNeedleSpan, overlapNeedleSpan } from '../../src/heads/needle-decode.js';
import { zeroScores } from '../../src/heads/probe.js';
import { probeEntry } from '../../src/heads/registry.js';
import { maskCheck, randomHeads, uniformAttentionHooks } from '../../src/heads/retrieval-mask.js';
import { addCopies, ArgmaxRecorder, countCopies, meanOverAnswered, RETRIEVAL_DEPTHS, RETRIEVAL_LENGTHS, retrievalHeads } from '../../src/heads/retrieval-score.js';

/** A probability row over `cols` entries: 0.5 at each peak (ties when several), the rest spread evenly. */
function row(cols: number, ...peaks: number[]): number[] {
  const rest = (1 - 0.5 * peaks.length) / (cols - peaks.length);
  return Array.from({ length: cols }, (_, c) => (peaks.includes(c) ? 0.5 : rest));
}

/** A block of one KV head's group (2 query heads) for the query rows given, each row a list of its heads' rows. */
function block(layer: number, kvHead: number, positions: number[], rows: number[][][]): AttentionBlock {
  const cols = rows[0][0].length;
  return { layer, kvHead, groupSize: 2, queryPositions: Int32Array.from(positions), probs: Float32Array.from(rows.flat(2)), cols };
}

test('the copy rule by hand: argmax in the needle span holding the generated token', () => {
  // 2 layers, 4 query heads over 2 KV heads. Prompt positions 0…5 hold tokens [0, 7, 7, 9, 9, 7]; the needle
  // (the answer) is positions [2, 4): tokens 7, 9, each also just outside it (7 at 1 and 5, 9 at 4). Decoding: the
  // query at 6 generates 7, the query at 7 generates 9.
  const config = { numLayers: 2, numHeads: 4, numKvHeads: 2 } as ModelConfig;
  const prompt = [0, 7, 7, 9, 9, 7];
  const span = { start: 2, end: 4 };
  const rec = new ArgmaxRecorder(config);
  const copies = zeroScores(2, 4);
  const step = (position: number, generated: number, blocks: AttentionBlock[]) => {
    rec.at(position);
    blocks.forEach((b) => rec.observe(b));
    addCopies(copies, rec.entries, generated, span, prompt);
  };
  // Step 1 (position 6, 7 entries), generates 7:
  //  L0H0 → 2 (7, in the span): copies.   L0H1 → 5 (7, outside the span): no.
  //  L0H2 → 3 (in the span, but 9 ≠ 7): no.   L0H3: a tie of 0 and 2, the lowest (0) wins: no.
  //  L1H0 → 2: copies.   L1H1 → 6 (itself): no.   L1H2 → 2: copies.   L1H3 → 1 (7, before the span): no.
  // Rows of position 5, before and after the step's rows, point L0H1 into the span: decoys, not this step's query.
  step(6, 7, [
    block(0, 0, [5, 6], [[row(7, 2), row(7, 2)], [row(7, 2), row(7, 5)]]),
    block(0, 0, [5], [[row(7, 2), row(7, 2)]]),
    block(0, 1, [6], [[row(7, 3), row(7, 0, 2)]]),
    block(1, 0, [6], [[row(7, 2), row(7, 6)]]),
    block(1, 1, [6], [[row(7, 2), row(7, 1)]]),
  ]);
  assert.deepEqual(Array.from(rec.entries[0]), [2, 5, 3, 0]);
  assert.deepEqual(copies, [[1, 0, 0, 0], [1, 0, 1, 0]]);
  // Step 2 (position 7, 8 entries), generates 9: L0H0 → 3 and L0H2 → 3 copy; L1H0 → 2 holds 7 ≠ 9: no; L1H2 → 4
  // holds 9 just past the span: no; the rest look elsewhere (L0H1 → 1, L0H3 → 7, L1H1 → 0, L1H3 → 5).
  step(7, 9, [
    block(0, 0, [7], [[row(8, 3), row(8, 1)]]),
    block(0, 1, [7], [[row(8, 3), row(8, 7)]]),
    block(1, 0, [7], [[row(8, 2), row(8, 0)]]),
    block(1, 1, [7], [[row(8, 4), row(8, 5)]]),
  ]);
  assert.deepEqual(copies, [[2, 0, 1, 0], [1, 0, 1, 0]]);
  // Scores: copies / 2 needle tokens; retrieval heads: above 0.1.
  const scores = copies.map((r) => r.map((c) => c / (span.end - span.start)));
  assert.deepEqual(scores, [[1, 0, 0.5, 0], [0.5, 0, 0.5, 0]]);
  assert.deepEqual(retrievalHeads({ scores, threshold: 0.1 }).map((h) => `${h.layer}.${h.head}`), ['0.0', '0.2', '1.0', '1.2']);
  // A block of one query head (a selector's per-query-head lists) cannot be attributed: refused.
  assert.throws(() => rec.observe({ ...block(0, 0, [7], [[row(8, 3), row(8, 1)]]), groupSize: 1 }), /full attention/);
});

test('the needle span: the exact token run, else the official 90% overlap window', () => {
  assert.deepEqual(findNeedleSpan([4, 5, 1, 2, 3, 1, 2, 3], [1, 2, 3]), { start: 2, end: 5 });
  // No exact run: the first 3-token window holding over 90% of {5, 6, 7} (all three), in any order.
  assert.deepEqual(findNeedleSpan([1, 7, 6, 5, 2], [5, 6, 7]), { start: 1, end: 4 });
  assert.equal(findNeedleSpan([1, 5, 6, 2], [5, 6, 7]), null);
});

test('the official find_needle_idx alone starts early on an answer that repeats its tokens; the probe takes the exact run', () => {
  // "is: 8315738." with single-digit tokens: 100 = "is", 101 = ":", 102 = the space, then the digits, 17 = ".".
  // The window from ":" holds {8, 3, 1, 5, 7}, every distinct digit of the answer (retrieval_head_detection.py 249-259).
  const ids = [100, 101, 102, 8, 3, 1, 5, 7, 3, 8, 17];
  const answer = [8, 3, 1, 5, 7, 3, 8];
  assert.deepEqual(overlapNeedleSpan(ids, answer), { start: 1, end: 8 });
  assert.deepEqual(findNeedleSpan(ids, answer), { start: 3, end: 10 });
  // Seven distinct digits: a window missing one holds 6/7 < 0.9, so only the exact run passes.
  assert.deepEqual(overlapNeedleSpan([101, 102, 4, 7, 2, 9, 6, 1, 3, 17], [4, 7, 2, 9, 6, 1, 3]), { start: 2, end: 9 });
  assert.equal(overlapNeedleSpan([1, 2], []), null);
});

test('the final score: the mean over the answered samples only (head_counter, np.mean)', () => {
  const samples = [
    { scores: [[1, 0.5]], correct: true },
    { scores: [[0.9, 0.9]], correct: false },
    { scores: [[0, 0.25]], correct: true },
  ];
  assert.deepEqual(meanOverAnswered(samples, 1, 2), { scores: [[0.5, 0.375]], answered: 2 });
  assert.deepEqual(meanOverAnswered([samples[1]], 1, 2), { scores: [[0, 0]], answered: 0 });
});

test('teacher forcing on attend-mini: the forced tokens fed past EOS, the greedy ones recorded beside them', () => {
  const lm = loadModel(new URL('../../models/attend-mini', import.meta.url).pathname);
  const ids = lm.tokenizer.encode('The code is 4417. Remember it. What is the code? The code is');
  const span = findNeedleSpan(ids, lm.tokenizer.encode('4417', { addSpecialTokens: false }))!;
  const greedy = countCopies(lm, ids, span, { maxSteps: 6 });
  // Forced on the greedy tokens: the same run. Forced through an EOS (id 0): no stop, every token fed.
  const same = countCopies(lm, ids, span, { force: greedy.tokens });
  assert.deepEqual(same.tokens, greedy.tokens);
  assert.deepEqual(same.greedy, greedy.tokens);
  assert.deepEqual(same.copies, greedy.copies);
  const force = [0, ...greedy.tokens];
  const forced = decodeIds(lm, ids, span, { force });
  assert.deepEqual(forced.tokens, force);
  assert.equal(forced.greedy.length, force.length);
  assert.throws(() => decodeIds(lm, ids, span, { force: new Array(8192).fill(0) }), /do not fit/);
});

test('the grid scaled from the official one; the masking hooks and the random heads', () => {
  assert.deepEqual(RETRIEVAL_LENGTHS, [250, 500, 750, 1000, 1250, 1500, 1750, 2000, 2250, 2500, 2750, 3000, 3250, 3500, 3750, 4000, 4250, 4500, 4750, 5000]);
  assert.deepEqual(RETRIEVAL_DEPTHS, [0, 0.11, 0.22, 0.33, 0.44, 0.56, 0.67, 0.78, 0.89, 1]);
  // Uniform attention for head 1 (KV head 0, values (1,2), (3,4), (5,9)): its output becomes their mean (3, 5).
  const config = { numLayers: 1, numHeads: 2, numKvHeads: 1, headDim: 2 } as ModelConfig;
  const cache = newCache(config);
  const v = new Tensor([3, 2], Float32Array.from([1, 2, 3, 4, 5, 9]));
  cpuBackend.appendKv(cache.layers[0], v, v, Int32Array.from([0, 1, 2]));
  const hooks = uniformAttentionHooks(cpuBackend, config, cache, [{ layer: 0, head: 1 }]);
  const out = hooks.headOutputs!(0, new Tensor([1, 4], Float32Array.from([10, 11, 12, 13])));
  assert.deepEqual(Array.from(cpuBackend.read(out as Tensor)), [10, 11, 3, 5]);
  // Random heads: distinct, never an excluded one.
  const grid = { numLayers: 2, numHeads: 2 };
  const excluded = [{ layer: 0, head: 0 }, { layer: 1, head: 1 }];
  const drawn = randomHeads(new Random(3), grid, 2, excluded).map((h) => `${h.layer}.${h.head}`).sort();
  assert.deepEqual(drawn, ['0.1', '1.0']);
  assert.throws(() => randomHeads(new Random(3), grid, 3, excluded), /cannot draw 3/);
});

test('attend-mini, one 1K-token needle: copying heads found, and masking them loses the needle', () => {
  const lm = loadModel(new URL('../../models/attend-mini', import.meta.url).pathname);
  const result = probeEntry('retrieval').run(lm, { lengths: [1024], depths: [0.5], samples: 1 });
  assert.equal(result.scores.length, lm.config.numLayers);
  assert.ok(result.scores.every((r) => r.length === lm.config.numHeads));
  assert.ok(result.scores.flat().every((s) => Number.isFinite(s) && s >= 0 && s <= 1), JSON.stringify(result.scores));
  assert.equal(result.samples, 1, 'the model answers the needle');
  const heads = retrievalHeads(result);
  assert.ok(heads.length > 0, 'some head copies the needle');
  // The best copies each of the 7 digits at the step that generates it.
  assert.equal(heads[0].score, 1, JSON.stringify(heads));
  // The causal check on another needle: masking the retrieval heads loses it, masking as many others does not.
  // (At 512 tokens: three decodes, kept short.)
  const check = maskCheck(lm, result, { lengths: [512], depths: [0.5], samples: 1 });
  assert.equal(check.k, heads.length);
  assert.deepEqual(check.accuracy, { none: 1, top: 0, random: 1 }, JSON.stringify(check.runs));
});
