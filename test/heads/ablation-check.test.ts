/**
 * The retrieval-head ablation curve (src/heads/ablation-check.ts, src/heads/ablation-plot.ts): top-k selection by
 * hand, the ablation hooks zeroing exactly the chosen heads on attend-mini, a shared prefill decoding as a fresh
 * one, a short curve's bookkeeping (n, pooled draws, Wilson intervals), the plot, and the one-line errors.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ablationCheck, ablationHooksFor, ablationPoint, ablationSettings, parseScoresJson, topHeads } from '../../src/heads/ablation-check.js';
import { ablationSpec, writeAblationSvg } from '../../src/heads/ablation-plot.js';
import { decodeIds, findNeedleSpan, needlePrompt } from '../../src/heads/needle-decode.js';
import { zeroScores } from '../../src/heads/probe.js';
import { needleInstance } from '../../src/heads/retrieval-score.js';
import { prefill } from '../../src/generate/prefill.js';
import { loadModel } from '../../src/models/load.js';
import { chainHooks, type ForwardHooks } from '../../src/models/model.js';
import { checkAblationFlags } from '../../src/cli/ablation-check.js';

const lm = loadModel('models/attend-mini');
const { numLayers, numHeads, headDim } = lm.config;

test('top k: highest scores first, ties to the lower layer then head', () => {
  const scores = [
    [0.1, 0.5, 0.0],
    [0.5, 0.9, 0.2],
  ];
  const pick = (k: number) => topHeads(scores, k).map((h) => `${h.layer}.${h.head}`);
  assert.deepEqual(pick(0), []);
  assert.deepEqual(pick(1), ['1.1']);
  // 0.5 twice: layer 0's head 1 before layer 1's head 0.
  assert.deepEqual(pick(3), ['1.1', '0.1', '1.0']);
  assert.deepEqual(pick(6), ['1.1', '0.1', '1.0', '1.2', '0.0', '0.2']);
  assert.throws(() => topHeads(scores, 7), /k must be a whole number in 0…6/);
  assert.throws(() => topHeads(scores, -1), /k must be a whole number/);
});

test('a point: mean score and the 95% Wilson interval', () => {
  const p = ablationPoint(4, 10, 20);
  assert.equal(p.accuracy, 0.5);
  assert.equal(p.n, 20);
  assert.ok(Math.abs(p.lo - 0.2993) < 1e-3 && Math.abs(p.hi - 0.7007) < 1e-3, `${p.lo} ${p.hi}`);
  const all = ablationPoint(0, 20, 20);
  assert.equal(all.hi, 1);
  assert.ok(Math.abs(all.lo - 0.8389) < 1e-3, `${all.lo}`);
});

/** Each layer's head outputs (before the output projection) of one forward, after `hooks`. */
function headOutputsOf(ids: number[], hooks?: ForwardHooks): Float32Array[] {
  const seen: Float32Array[] = [];
  const capture: ForwardHooks = { headOutputs: (layer, out) => void (seen[layer] = lm.model.backend.read(out).slice()) };
  lm.model.forward(ids, lm.model.makeCache(), { hooks: hooks ? chainHooks(hooks, capture) : capture });
  return seen;
}

test('zero ablation: exactly the chosen heads output 0, the rest of their layer as before', () => {
  const ids = lm.tokenizer.encode('The code is 4417. Remember it. What is the code?');
  const chosen = [{ layer: 1, head: 3 }, { layer: 1, head: 6 }, { layer: 4, head: 0 }];
  const base = headOutputsOf(ids);
  const cache = lm.model.makeCache();
  const ablated = headOutputsOf(ids, ablationHooksFor(lm, 'zero', chosen)!(cache));
  const width = numHeads * headDim;
  for (const layer of [0, 1, 4]) {
    for (let head = 0; head < numHeads; head++) {
      const isChosen = chosen.some((h) => h.layer === layer && h.head === head);
      for (let r = 0; r < ids.length; r++) {
        const a = ablated[layer].subarray(r * width + head * headDim, r * width + (head + 1) * headDim);
        const b = base[layer].subarray(r * width + head * headDim, r * width + (head + 1) * headDim);
        if (isChosen) assert.ok(a.every((x) => x === 0), `${layer}.${head} row ${r} not zeroed`);
        // Layers 0 and 1 see the unablated residual: their other heads are untouched. Layer 4's input changed.
        else if (layer <= 1) assert.deepEqual(a, b, `${layer}.${head} row ${r} changed`);
      }
    }
  }
  assert.ok(base[1].subarray(3 * headDim, 4 * headDim).some((x) => x !== 0), 'an unablated head outputs something');
  assert.equal(ablationHooksFor(lm, 'zero', []), undefined);
});

test('a shared prefill decodes as a fresh one, with and without ablation', () => {
  const instance = needleInstance(lm, { seed: 7, contextLength: 400, depth: 0.5 });
  const ids = needlePrompt(lm, instance);
  const span = findNeedleSpan(ids, lm.tokenizer.encode(instance.answers[0], { addSpecialTokens: false }))!;
  const cache = lm.model.makeCache();
  prefill(lm.model, cache, ids.slice(0, -1));
  for (const heads of [[], [{ layer: 6, head: 4 }, { layer: 6, head: 5 }]]) {
    const hooks = ablationHooksFor(lm, 'zero', heads);
    const fresh = decodeIds(lm, ids, span, { hooks, maxSteps: 8 });
    const shared = decodeIds(lm, ids, span, { hooks, maxSteps: 8, prefilled: cache });
    assert.deepEqual(shared.tokens, fresh.tokens);
  }
  // The shared cache itself is left as prefilled.
  assert.equal(cache.nextPosition, ids.length - 1);
  assert.throws(() => decodeIds(lm, ids.slice(1), span, { prefilled: cache }), /does not hold the/);
});

test('a short curve on attend-mini: n per point, pooled random draws, the plot', async () => {
  // Scores that put layer 6's heads 4 and 5 on top (two of attend-mini's retrieval heads).
  const scores = zeroScores(numLayers, numHeads);
  scores[6][4] = 1;
  scores[6][5] = 0.9;
  scores[0][0] = 0.5;
  const result = ablationCheck(lm, { scores, layers: numLayers, heads: numHeads }, { ks: [2, 0], length: 300, samples: 2, draws: 2, seed: 11 });
  assert.deepEqual(result.topHeads.map((h) => `${h.layer}.${h.head}`), ['6.4', '6.5']);
  assert.deepEqual(result.top.map((p) => [p.k, p.n]), [[0, 2], [2, 2]]);
  assert.deepEqual(result.random.map((p) => [p.k, p.n]), [[0, 2], [2, 4]]);
  assert.deepEqual(result.top[0], result.random[0]);
  assert.deepEqual(result.seeds, [11, 12]);
  assert.equal(result.randomDraws.length, 2);
  // Random heads never among the top max(k, 6) of the ranking.
  const banned = new Set(topHeads(scores, 6).map((h) => `${h.layer}.${h.head}`));
  for (const d of result.randomDraws) for (const h of d.heads) assert.ok(!banned.has(`${h.layer}.${h.head}`));
  for (const p of [...result.top, ...result.random]) assert.ok(p.lo <= p.accuracy && p.accuracy <= p.hi);
  assert.equal(result.runs.length, 2);
  assert.equal(result.runs[0].random['2'].length, 2);

  const spec = ablationSpec(result) as { data: { values: { heads: string }[] } };
  assert.equal(spec.data.values.length, 4);
  const file = join(mkdtempSync(join(tmpdir(), 'ablation-')), 'plot.svg');
  assert.equal(await writeAblationSvg(file, result), null);
  const svg = readFileSync(file, 'utf8');
  assert.match(svg, /<svg[^>]*xmlns/);
  assert.match(svg, /top-k retrieval heads/);
});

test('one-line errors for bad input', () => {
  const bad = (options: Parameters<typeof ablationSettings>[1], message: RegExp) => assert.throws(() => ablationSettings(lm, options), message);
  bad({ ks: [] }, /at least one k/);
  bad({ ks: [0, 65] }, /whole number in 0…64/);
  bad({ ks: [1.5] }, /whole number in 0…64/);
  bad({ ks: [2, 2] }, /must be distinct/);
  bad({ ks: [40] }, /cannot be drawn from the 24 heads outside the top 40/);
  bad({ length: 8192 }, /length must be a whole number of tokens in 1…8191/);
  bad({ samples: 0 }, /samples must be a whole number > 0/);
  bad({ draws: 0 }, /draws must be a whole number > 0/);
  bad({ depths: [1.5] }, /depths must lie in \[0, 1\]/);
  bad({ mode: 'mean' as never }, /mode must be zero or uniform/);
  assert.throws(() => ablationCheck(lm, { scores: zeroScores(2, 2), layers: 2, heads: 2 }), /the scores are for 2 × 2 heads, the model has 8 × 8/);
  const rows = zeroScores(numLayers, numHeads);
  rows[3][1] = NaN;
  assert.throws(() => ablationCheck(lm, { scores: rows, layers: numLayers, heads: numHeads }), /finite numbers/);
  assert.throws(() => parseScoresJson('{', 'x.json'), /^AttendError: x.json: not JSON/);
  assert.throws(() => parseScoresJson('[]', 'x.json'), /expected the JSON object/);
  assert.throws(() => parseScoresJson('{"layers": 2, "heads": 2, "scores": [[0, 1]]}', 'x.json'), /"scores" must be 2 rows of 2 finite numbers/);
  assert.equal(parseScoresJson('{"probe": "retrieval", "layers": 1, "heads": 2, "scores": [[0, 1]], "threshold": 0.1}', 'x.json').threshold, 0.1);
  assert.throws(() => checkAblationFlags('retrieval', { ablationSamples: 3 }), /--ablation-\* flags need --ablation-check/);
  assert.throws(() => checkAblationFlags('sinks', { ablationCheck: true, ablationOut: 'a.json' }), /applies to --probe retrieval/);
  assert.throws(() => checkAblationFlags('retrieval', { ablationCheck: true }), /needs --ablation-out FILE/);
  assert.throws(() => checkAblationFlags('retrieval', { ablationCheck: true, ablationOut: 'a.json', ablationMode: 'x' }), /--ablation-mode: expected zero or uniform/);
  assert.throws(() => checkAblationFlags('retrieval', { scores: '/no/such/file.json' }), /--scores: file not found/);
});
