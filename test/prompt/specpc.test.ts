/**
 * SpecPC (src/prompt/specpc.ts) and the draft's greedy lookahead (src/prompt/lookahead.ts): the centred pool and
 * the selection (top tokens in score order, their neighbours nearest first, the window first, the cut) worked by
 * hand; the draft's aggregated attention on a parity checkpoint against a direct f64 re-computation of the official
 * AttentionCache (one forward of prompt + fed-back tokens); compressPrompt's budget, the bundled draft on a 512-token
 * prompt at ratio 0.5, and the errors; `attend generate --spec-pc`.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AttentionObserver } from '../../src/backend/backend.js';
import { AttendError } from '../../src/errors.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import { greedyLookahead } from '../../src/prompt/lookahead.js';
import { centredPool, compressPrompt, SPECPC_DEFAULTS, specpcScores, specpcSelect } from '../../src/prompt/specpc.js';
import { assertUserError, runCli } from '../helpers/cli.js';
import { PARITY_DIR } from '../helpers/fixtures.js';
import { greedyByHand } from '../helpers/greedy.js';

const ROOT = join(import.meta.dirname, '..', '..');
const arr = (x: ArrayLike<number>) => Array.from(x);
const round = (x: ArrayLike<number>) => arr(x).map((v) => +v.toFixed(4));

// ---------------------------------------------------------------- by hand

test('specpc pool: centred, (kernel − 1)//2 zeros before and the rest after, an even kernel too', () => {
  const x = [0, 1, 0, 0, 0, 2, 0];
  // Kernel 4: 1 before, 2 after: out[i] covers x[i−1 … i+2].
  assert.deepEqual(round(centredPool(x, 4, 'max')), [1, 1, 1, 2, 2, 2, 2]);
  assert.deepEqual(round(centredPool(x, 4, 'mean')), [0.25, 0.25, 0.25, 0.5, 0.5, 0.5, 0.5]);
  // Kernel 3: 1 each side (PyTorch's max_pool1d with padding 1).
  assert.deepEqual(round(centredPool(x, 3, 'max')), [1, 1, 1, 0, 2, 2, 2]);
  assert.deepEqual(round(centredPool(x, 3, 'none')), x);
});

/** 20 prompt tokens: 5 scores 0.9, 12 0.8, 0 0.7, the rest 0.1. */
const SCORES = Array.from({ length: 20 }, (_, i) => ({ 5: 0.9, 12: 0.8, 0: 0.7 })[i] ?? 0.1);
const HAND = { window: 3, kernel: 1, pool: 'none' as const };

test('specpc selection by hand: the window, then each top token with its neighbours nearest first, cut to the budget', () => {
  // Window 17, 18, 19; then 5 with 4, 6; 12 with 11, 13; 0 with 0 (clamped −1) and 1: 11 positions, the cut at 10
  // drops 1, the last added.
  assert.deepEqual(arr(specpcSelect(SCORES, 10, { ...HAND, neighbours: 3 })), [0, 4, 5, 6, 11, 12, 13, 17, 18, 19]);
  // The cut inside 12's neighbours: −1 comes before +1, so 11 is kept and 13 is not.
  assert.deepEqual(arr(specpcSelect(SCORES, 8, { ...HAND, neighbours: 3 })), [4, 5, 6, 11, 12, 17, 18, 19]);
  // Four neighbours: offsets −1 … 2 (the official arange(−((n − 1)//2), n − (n − 1)//2)), nearest first: 0, −1, 1, 2.
  assert.deepEqual(arr(specpcSelect(SCORES, 9, { ...HAND, neighbours: 4 })), [4, 5, 6, 7, 11, 12, 17, 18, 19]);
  // No neighbours: the top tokens alone.
  assert.deepEqual(arr(specpcSelect(SCORES, 6, { ...HAND, neighbours: 0 })), [0, 5, 12, 17, 18, 19]);
  // A budget within the window keeps the window's first tokens, as the official cut does.
  assert.deepEqual(arr(specpcSelect(SCORES, 2, { ...HAND, neighbours: 3 })), [17, 18]);
});

test('specpc selection by hand: the pooled scores rank the tokens', () => {
  // Max pool of 3 spreads 0.9 to 4 and 6 and 0.8 to 11 and 13; the earliest of equal scores first: 4, 5, 6.
  assert.deepEqual(arr(specpcSelect(SCORES, 6, { window: 3, kernel: 3, pool: 'max', neighbours: 0 })), [4, 5, 6, 17, 18, 19]);
});

// ---------------------------------------------------------------- against the official aggregation

const draft = loadModel(join(PARITY_DIR, 'llama3-mqa'));
const ids = Array.from({ length: 40 }, (_, i) => (i * 53 + 7) % draft.config.vocabSize);

/**
 * specpc_utils.py's AttentionCache with reduction max: in layers from `start`, the last `window` prompt queries
 * (weights linspace(0, 1)) and every fed-back token's query, f64 softmax 1/√d over the keys each sees; the max over
 * heads, rows and layers of each prompt key's weighted probability.
 */
function officialScores(prompt: number[], fed: number[], window: number, start: number): number[] {
  const c = draft.config;
  const d = c.headDim;
  const group = c.numHeads / c.numKvHeads;
  const width = c.numHeads * d;
  const all = [...prompt, ...fed];
  const queries = Array.from({ length: c.numLayers }, () => new Float32Array(all.length * width));
  const observer: AttentionObserver = { queries: (layer, q, positions) => queries[layer].set(q.subarray(0, positions.length * width), positions[0] * width) };
  const cache = newCache(c);
  draft.model.forward(all, cache, { observer });
  const n = prompt.length;
  const out = new Array<number>(n).fill(0);
  for (let l = start; l < c.numLayers; l++) {
    for (let t = n - window; t < all.length; t++) {
      const w = t < n ? (t - (n - window)) / (window - 1) : 1;
      for (let h = 0; h < c.numHeads; h++) {
        const keys = cache.layers[l].heads[Math.floor(h / group)].keys(0, all.length);
        const q = queries[l].subarray(t * width + h * d, t * width + (h + 1) * d);
        const logits = Array.from({ length: t + 1 }, (_, i) => {
          let s = 0;
          for (let x = 0; x < d; x++) s += q[x] * keys[i * d + x];
          return s / Math.sqrt(d);
        });
        const m = Math.max(...logits);
        const e = logits.map((v) => Math.exp(v - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let i = 0; i < Math.min(n, t + 1); i++) out[i] = Math.max(out[i], (w * e[i]) / z);
      }
    }
  }
  return out;
}

test("specpc scores on a parity checkpoint: the official aggregation of the draft's attention", () => {
  const lookahead = 3;
  const tokens = greedyByHand(draft, ids, lookahead);
  assert.equal(tokens.length, lookahead, 'the draft did not stop early here');
  assert.deepEqual(greedyLookahead(draft.model, ids, { tokens: lookahead, eos: draft.generation.eosTokenIds }), tokens);
  // Default start layer: min(8, ⌊2/2⌋) = 1 for this 2-layer draft. Only tokens 1 and 2 are fed back.
  const got = specpcScores(draft, ids, { ...SPECPC_DEFAULTS, window: 8, lookahead });
  const want = officialScores(ids, tokens.slice(0, lookahead - 1), 8, 1);
  const diff = Math.max(...arr(got).map((v, i) => Math.abs(v - want[i])));
  assert.ok(diff < 1e-5, `max |diff| ${diff}`);
  // Layer 0 counts too from startLayer 0; the prompt forward alone with lookahead 1.
  const all = officialScores(ids, [], 8, 0);
  const one = specpcScores(draft, ids, { ...SPECPC_DEFAULTS, window: 8, lookahead: 1, startLayer: 0 });
  assert.ok(Math.max(...arr(one).map((v, i) => Math.abs(v - all[i]))) < 1e-5);
});

test('greedy lookahead: the argmax of each step, ending right after an eos id, which it keeps', () => {
  const tokens = greedyByHand(draft, ids, 3);
  const eos = tokens[1];
  assert.deepEqual(greedyLookahead(draft.model, ids, { tokens: 3, eos: [eos] }), tokens.slice(0, tokens.indexOf(eos) + 1));
  assert.deepEqual(greedyLookahead(draft.model, ids, { tokens: 1 }), tokens.slice(0, 1));
  assert.throws(() => greedyLookahead(draft.model, ids, { tokens: 0 }), /whole number ≥ 1/);
});

// ---------------------------------------------------------------- compressPrompt

test('compressPrompt keeps the budget: the window and the selected tokens, in prompt order', () => {
  const options = { window: 8, kernel: 4, lookahead: 2 };
  const out = compressPrompt(ids, draft, { ...options, budget: { ratio: 0.5 } });
  assert.equal(out.length, 20);
  const kept = specpcSelect(specpcScores(draft, ids, { ...SPECPC_DEFAULTS, ...options, neighbours: 4 }), 20, { ...options, neighbours: 4, pool: 'max' });
  assert.deepEqual(out, arr(kept).map((i) => ids[i]));
  assert.deepEqual(out.slice(-8), ids.slice(-8));
  assert.equal(compressPrompt(ids, draft, { ...options, budget: { tokens: 12 } }).length, 12);
  // Within the budget: unchanged.
  assert.deepEqual(compressPrompt(ids, draft, { ...options, budget: { tokens: 40 } }), ids);
});

test('compressPrompt with attend-mini-draft: a 512-token prompt at ratio 0.5 keeps 256 tokens, the last 64 with them', () => {
  const mini = loadModel(join(ROOT, 'models', 'attend-mini-draft'));
  const text = 'In the beginning God created the heaven and the earth. And the earth was without form, and void; and darkness was upon the face of the deep. ';
  const prompt = mini.tokenizer.encode(text.repeat(20)).slice(0, 512);
  assert.equal(prompt.length, 512);
  const out = compressPrompt(prompt, mini, { budget: { ratio: 0.5 } });
  assert.equal(out.length, 256);
  assert.deepEqual(out.slice(-64), prompt.slice(-64));
});

test('compressPrompt refuses bad options and a window longer than the prompt', () => {
  const bad = (o: object, pattern: RegExp) => assert.throws(() => compressPrompt(ids, draft, { budget: { ratio: 0.5 }, ...o }), (e: Error) => e instanceof AttendError && pattern.test(e.message));
  bad({}, /window \(64 tokens\) is longer than the prompt \(40\)/);
  bad({ window: 0 }, /window must be a whole number ≥ 1/);
  bad({ window: 8, pool: 'sum' }, /pool must be max, mean or none/);
  bad({ window: 8, startLayer: 2 }, /start layer 2 is not a layer of the draft \(2 layers/);
  bad({ window: 8, budget: { ratio: 1 } }, /--ratio must be in \(0, 1\)/);
});

// ---------------------------------------------------------------- the CLI

test('attend generate --spec-pc 0.5 prefills half the prompt (the bundled draft with the bundled model)', () => {
  const text = 'In the beginning God created the heaven and the earth. And the earth was without form, and void. '.repeat(8);
  const n = loadModel(join(ROOT, 'models', 'attend-mini-draft')).tokenizer.encode(text, { addSpecialTokens: true }).length;
  assert.ok(n > 128, `${n} tokens`);
  const r = runCli(['generate', '--prompt', text, '--spec-pc', '0.5', '--max-tokens', '2', '--stats']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`^prompt ${Math.floor(n * 0.5)} tokens in`));
  assertUserError(runCli(['generate', '--prompt', 'x', '--spec-pc', '1']), /--spec-pc must be in \(0, 1\)/);
  assertUserError(runCli(['generate', '--model', join(PARITY_DIR, 'llama-gqa-tied'), '--prompt', 'x', '--spec-pc', '0.5']), /--spec-pc needs --spec-pc-draft DIR/);
});
