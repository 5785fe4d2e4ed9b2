/**
 * Speculative decoding (src/generate/speculative.ts) on the bundled attend-mini (target) and attend-mini-draft:
 * (a) greedy output is plain greedy output, token for token, for several prompts and K, also over a compressed
 *     prompt; (b) the acceptance step alone turns draws from q into draws from p (chi-square, 200k samples);
 * (c) end to end at temperature 1, the first two tokens with the draft follow the target's exact distribution;
 * (d) after a block with rejections both caches equal caches that never saw the rejected tokens;
 * (e) the CLI's flag errors are one line.
 * Each of (a)-(c) fails when the rule is changed (accepting every proposal, or resampling a rejection from p
 * instead of max(0, p − q)); this was tried on each before committing.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { KVCache } from '../../src/cache/kv-cache.js';
import { AttendError } from '../../src/errors.js';
import { generate, generateStream } from '../../src/generate/generate.js';
import { prefill } from '../../src/generate/prefill.js';
import { Random } from '../../src/generate/random.js';
import { Sampler, type SamplingOptions } from '../../src/generate/sampler.js';
import { checkDraftCompatible, drawFrom, SpeculativeDecoder, verifyProposal } from '../../src/generate/speculative.js';
import { loadModel, type LoadedModel } from '../../src/models/load.js';
import { contextLength, newCache } from '../../src/models/model.js';
import { createPress } from '../../src/presses/registry.js';
import { assertUserError, runCli } from '../helpers/cli.js';
import { PARITY_DIR } from '../helpers/fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const TARGET_DIR = join(ROOT, 'models', 'attend-mini');
const DRAFT_DIR = join(ROOT, 'models', 'attend-mini-draft');
const target = loadModel(TARGET_DIR);
const draft = loadModel(DRAFT_DIR);

/**
 * Pearson's chi-square of `counts` against probabilities `expected` (same keys) over `n` draws, with outcomes whose
 * expected count is below 5 pooled into one cell (observed outcomes of probability 0 land there too), and the
 * 0.1% critical value for its degrees of freedom (Wilson–Hilferty's cube-root approximation, within ~0.5% of
 * the exact quantile for 3 or more degrees of freedom).
 */
function chiSquare(counts: Map<string, number>, expected: Map<string, number>, n: number): { stat: number; critical: number; df: number } {
  let stat = 0;
  let cells = 0;
  let pooledObserved = 0;
  let pooledExpected = 0;
  for (const [key, p] of expected) {
    const e = p * n;
    const o = counts.get(key) ?? 0;
    if (e < 5) {
      pooledObserved += o;
      pooledExpected += e;
      continue;
    }
    stat += (o - e) ** 2 / e;
    cells++;
  }
  for (const [key, o] of counts) if (!expected.has(key)) pooledObserved += o;
  if (pooledExpected > 0 || pooledObserved > 0) {
    // An outcome the target gives probability 0 must never be drawn: with nothing expected the cell alone fails.
    stat += pooledExpected > 0 ? (pooledObserved - pooledExpected) ** 2 / pooledExpected : Infinity;
    cells++;
  }
  const df = cells - 1;
  const z = 3.0902; // the standard normal's 99.9% quantile
  const critical = df * (1 - 2 / (9 * df) + z * Math.sqrt(2 / (9 * df))) ** 3;
  return { stat, critical, df };
}

// (a) ------------------------------------------------------------------------------------------------------------

const PROMPTS = [
  'Once upon a time',
  'The SQL statement SELECT',
  'And the LORD said unto Moses,',
  'The pass key is 71234. Remember it. 71234 is the pass key. The grass is green. The sky is blue.\n\nWhat is the pass key?\nAnswer:',
];

test('(a) greedy speculative decoding gives exactly the tokens of plain greedy decoding (K = 1, 3, 5)', async () => {
  for (const prompt of PROMPTS) {
    const ids = target.tokenizer.encode(prompt);
    const opts = { temperature: 0, maxNewTokens: 16, eosTokenIds: [] };
    const plain = await generate(target, ids, opts);
    for (const tokens of [1, 3, 5]) {
      const spec = await generate(target, ids, { ...opts, draft: { model: draft, tokens } });
      assert.deepEqual(spec.tokens, plain.tokens, `${JSON.stringify(prompt)}, K = ${tokens}`);
      assert.equal(spec.text, plain.text);
      assert.equal(spec.finishReason, plain.finishReason);
      const s = spec.speculative!;
      assert.ok(s.accepted <= s.proposed && s.proposed > 0, JSON.stringify(s));
      // Every accepted proposal saved a target forward: new tokens = forwards (prefill included) + accepted.
      assert.equal(spec.newTokens, s.targetForwards + 1 + s.accepted, JSON.stringify(s));
      // The cache is left as plain decoding leaves it: every token but the last one in it.
      assert.equal(spec.cache.nextPosition, plain.cache.nextPosition);
      assert.equal(spec.cache.entries(), plain.cache.entries());
      assert.equal(spec.cache.liveBytes(), plain.cache.liveBytes());
    }
  }
});

test('(a) greedy with repetition penalty, a stop string, EOS and prefill compression ends where plain decoding ends', async () => {
  const ids = target.tokenizer.encode(PROMPTS[2]);
  const base = { temperature: 0, maxNewTokens: 40, repetitionPenalty: 1.3 };
  const plain = await generate(target, ids, base);
  const spec = await generate(target, ids, { ...base, draft: { model: draft, tokens: 5 } });
  assert.deepEqual(spec.tokens, plain.tokens);
  // A stop string inside the text: the text ends before it, on the same token, whatever the block decided after it.
  const stop = plain.text.slice(10, 14);
  const plainStop = await generate(target, ids, { ...base, stop: [stop] });
  const specStop = await generate(target, ids, { ...base, stop: [stop], draft: { model: draft, tokens: 5 } });
  assert.equal(plainStop.finishReason, 'stop');
  assert.deepEqual([specStop.text, specStop.tokens, specStop.finishReason], [plainStop.text, plainStop.tokens, plainStop.finishReason]);
  assert.equal(specStop.cache.nextPosition, plainStop.cache.nextPosition);
  // An EOS id in the middle of the greedy continuation: generation ends there, the EOS not emitted.
  const eos = plain.tokens[7];
  const plainEos = await generate(target, ids, { ...base, eosTokenIds: [eos] });
  const specEos = await generate(target, ids, { ...base, eosTokenIds: [eos], draft: { model: draft, tokens: 5 } });
  assert.equal(plainEos.finishReason, 'eos');
  assert.deepEqual([specEos.tokens, specEos.finishReason, specEos.newTokens], [plainEos.tokens, plainEos.finishReason, plainEos.newTokens]);
  // SnapKV halves the target's prompt cache (per-head ragged); the draft keeps its full cache.
  const compression = () => ({ press: createPress('snapkv', {}), budget: { ratio: 0.5 } });
  const long = target.tokenizer.encode(PROMPTS[3].repeat(3));
  const plainPress = await generate(target, long, { ...base, maxNewTokens: 16, compression: compression() });
  const specPress = await generate(target, long, { ...base, maxNewTokens: 16, compression: compression(), draft: { model: draft } });
  assert.deepEqual(specPress.tokens, plainPress.tokens);
  assert.ok(plainPress.compression!.dropped > 0);
  assert.deepEqual(specPress.compression, plainPress.compression);
  const positions = (c: KVCache) => c.layers.map((l) => l.heads.map((h) => Array.from(h.positions)));
  assert.deepEqual(positions(specPress.cache), positions(plainPress.cache));
  // Decoding-time compression is refused with a draft, in one line.
  await assert.rejects(
    generate(target, long, { ...base, compression: { ...compression(), decode: { every: 8 } }, draft: { model: draft } }),
    (e: unknown) => e instanceof AttendError && /cannot be combined with compression while decoding/.test(e.message) && !e.message.includes('\n'),
  );
});

test('(a) near the end of the context, blocks shrink and generation stops where plain decoding stops', async () => {
  // The target's context is 8192; a cache that already holds 8180 positions leaves room for 12 tokens.
  const context = contextLength(target.config);
  const filler = Array.from({ length: 8 }, (_, i) => 100 + i);
  const ids = target.tokenizer.encode(PROMPTS[0]);
  const run = async (withDraft: boolean) => {
    const cache = newCache(target.config);
    const draftCache = newCache(draft.config);
    prefill(target.model, cache, filler);
    prefill(draft.model, draftCache, filler);
    // Skip positions without computing them, as a compressed cache does: the numbering is all that matters here.
    cache.nextPosition = draftCache.nextPosition = context - 8 - ids.length - 4;
    return generate(target, ids, {
      temperature: 0,
      maxNewTokens: 64,
      eosTokenIds: [],
      cache,
      ...(withDraft ? { draft: { model: draft, tokens: 5, cache: draftCache } } : {}),
    });
  };
  const plain = await run(false);
  const spec = await run(true);
  assert.equal(plain.finishReason, 'context');
  assert.deepEqual([spec.tokens, spec.finishReason], [plain.tokens, plain.finishReason]);
  assert.equal(spec.cache.nextPosition, context);
});

// (b) ------------------------------------------------------------------------------------------------------------

test('(b) the acceptance step turns draws from q into draws from p (200k samples, chi-square)', () => {
  // q puts mass where p has none (token 5) and too little where p has much (token 0); p's token 4 is missing
  // from q altogether, so only the residual draw can produce it.
  const cases: [number[], number[]][] = [
    [
      [0.4, 0.25, 0.15, 0.1, 0.1, 0],
      [0.1, 0.3, 0.3, 0.1, 0, 0.2],
    ],
    // Nearly equal distributions: almost every proposal is accepted.
    [
      [0.3, 0.3, 0.2, 0.2],
      [0.28, 0.32, 0.2, 0.2],
    ],
    // A top-k-truncated target against a broad draft.
    [
      [0.7, 0.3, 0, 0, 0],
      [0.2, 0.2, 0.2, 0.2, 0.2],
    ],
  ];
  const n = 200_000;
  const random = new Random(20230522);
  const uniform = () => random.next();
  for (const [pa, qa] of cases) {
    const p = Float64Array.from(pa);
    const q = Float64Array.from(qa);
    const counts = new Map<string, number>();
    let accepted = 0;
    for (let i = 0; i < n; i++) {
      const x = drawFrom(q, uniform());
      const verdict = verifyProposal(p, q, x, uniform);
      if (verdict.accepted) accepted++;
      counts.set(String(verdict.token), (counts.get(String(verdict.token)) ?? 0) + 1);
    }
    const expected = new Map(pa.flatMap((v, i) => (v > 0 ? [[String(i), v] as [string, number]] : [])));
    const { stat, critical, df } = chiSquare(counts, expected, n);
    assert.ok(stat < critical, `p = ${pa}, q = ${qa}: chi-square ${stat.toFixed(1)} ≥ ${critical.toFixed(1)} (df ${df}); counts ${[...counts]}`);
    // The acceptance rate is Σ min(p, q) (Leviathan et al., Definition 3.1): within 4.5 standard errors.
    const beta = pa.reduce((s, v, i) => s + Math.min(v, qa[i]), 0);
    assert.ok(Math.abs(accepted / n - beta) < 4.5 * Math.sqrt((beta * (1 - beta)) / n) + 1e-9, `acceptance ${accepted / n} vs ${beta}`);
  }
});

// (c) ------------------------------------------------------------------------------------------------------------

test('(c) at temperature 1 the first two tokens with the draft follow the target distribution exactly', async () => {
  /**
   * Top-k 3 keeps each step to 3 outcomes, so the first two tokens have at most 9 joint outcomes, whose exact
   * probabilities under plain sampling come from the target (the processed p of token 1, then of token 2 after
   * each token 1; the repetition penalty sees token 1 in both). 240 runs put ≥ 5 expected draws on 5 of them
   * (the rarer ones are pooled into one cell), and the chi-square's 0.1% critical value (20.8 at 5 degrees of
   * freedom) bounds a correct implementation, which scores 3.2; the seeds are fixed, so that is the same every
   * run. The prompt is
   * one where the draft's top 3 differ from the target's: accepting every proposal puts draws on outcomes of
   * probability 0, and resampling rejections from p instead of max(0, p − q) shifts the joint distribution by a
   * chi-square noncentrality of 0.23 per run (computed from the exact p and q), ~55 at 240 runs (the two
   * mutations, tried, score 777 and 46). K = 1 with room for 3 tokens: token 2 is the first block's verdict on its one proposal.
   */
  const sampling: SamplingOptions = { temperature: 1, topK: 3, repetitionPenalty: 1.2 };
  const ids = target.tokenizer.encode('Once upon a time, in a land far away,');
  const targetCache = newCache(target.config);
  const logits = prefill(target.model, targetCache, ids);
  const draftCache = newCache(draft.config);
  prefill(draft.model, draftCache, ids);

  const exact = new Map<string, number>();
  const reference = new Sampler({ ...sampling, seed: 0 });
  const p1 = reference.distribution(logits, ids);
  p1.forEach((v1, t1) => {
    if (!(v1 > 0)) return;
    const next = target.model.forward([t1], targetCache.clone(), { lastOnly: true }).f32;
    reference.distribution(next, [...ids, t1]).forEach((v2, t2) => {
      if (v2 > 0) exact.set(`${t1},${t2}`, v1 * v2);
    });
  });

  const runs = 240;
  const counts = new Map<string, number>();
  for (let seed = 0; seed < runs; seed++) {
    const stream = generateStream(target, ids, {
      ...sampling,
      seed,
      maxNewTokens: 3,
      eosTokenIds: [],
      cache: targetCache.clone(),
      prefilledLogits: logits,
      draft: { model: draft, tokens: 1, cache: draftCache.clone() },
    });
    const tokens: number[] = [];
    while (tokens.length < 2) {
      const step = await stream.next();
      assert.ok(!step.done);
      if (step.value.token >= 0) tokens.push(step.value.token);
    }
    await stream.return(undefined as never);
    counts.set(tokens.join(','), (counts.get(tokens.join(',')) ?? 0) + 1);
  }
  const { stat, critical, df } = chiSquare(counts, exact, runs);
  assert.ok(stat < critical, `chi-square ${stat.toFixed(1)} ≥ ${critical.toFixed(1)} (df ${df}); counts ${[...counts]}; exact ${[...exact].map(([k, v]) => `${k}:${v.toFixed(3)}`)}`);
});

// (d) ------------------------------------------------------------------------------------------------------------

test('(d) after a block with rejections both caches equal caches built without the rejected tokens', () => {
  const ids = target.tokenizer.encode(PROMPTS[0]);
  const sampler = new Sampler({ temperature: 0 });
  for (const kvDtype of ['f32', 'bf16'] as const) {
    const targetCache = newCache(target.config, kvDtype);
    const draftCache = newCache(draft.config, kvDtype);
    const first = sampler.sample(prefill(target.model, targetCache, ids), ids);
    prefill(draft.model, draftCache, ids);
    const limits = { targetContext: contextLength(target.config), draftContext: contextLength(draft.config) };
    const decoder = new SpeculativeDecoder(target, draft, targetCache, draftCache, sampler, 0, limits, 6);
    const history = [...ids, first];
    // Blocks of 6 until one rejects a proposal (the draft disagrees with the target within a few tokens here).
    let out: number[];
    do {
      const before = decoder.stats.accepted;
      out = decoder.block(history, 6);
      history.push(...out);
      if (decoder.stats.accepted - before < 6) break;
    } while (history.length < 60);
    assert.ok(out.length <= 6, 'no block rejected a proposal');
    // Both hold the sequence up to, not including, its last token (the draft may not be ahead of the target).
    const rebuilt = (lm: LoadedModel) => {
      const c = newCache(lm.config, kvDtype);
      prefill(lm.model, c, history.slice(0, -1));
      return c;
    };
    for (const [name, cache, lm] of [['target', targetCache, target], ['draft', draftCache, draft]] as const) {
      const reference = rebuilt(lm);
      assert.equal(cache.nextPosition, history.length - 1, name);
      assert.equal(cache.entries(), reference.entries(), name);
      assert.equal(cache.liveBytes(), reference.liveBytes(), name);
      cache.layers.forEach((layer, l) =>
        layer.heads.forEach((h, i) => {
          const r = reference.layers[l].heads[i];
          assert.deepEqual(Array.from(h.positions), Array.from(r.positions), `${name} layer ${l} head ${i}`);
          // Same values up to rounding: the reference ran the tokens in one chunk, the decoder in blocks.
          const a = h.keys(0, h.length);
          const b = r.keys(0, r.length);
          let worst = 0;
          for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(a[j] - b[j]) / (1 + Math.abs(b[j])));
          assert.ok(worst < (kvDtype === 'f32' ? 1e-3 : 2e-2), `${name} layer ${l} head ${i} (${kvDtype}): keys differ by ${worst}`);
        }),
      );
    }
  }
});

test('(d) the draft must share the tokenizer: vocabulary size and the ids of a probe text', () => {
  const fake = (vocabSize: number, encode: (s: string) => number[]) =>
    ({ dir: `fake-${vocabSize}`, config: { vocabSize }, tokenizer: { encode } }) as unknown as LoadedModel;
  checkDraftCompatible(target, draft);
  const one = (f: () => void, pattern: RegExp) =>
    assert.throws(f, (e: unknown) => e instanceof AttendError && pattern.test(e.message) && !e.message.includes('\n'));
  one(() => checkDraftCompatible(target, fake(32000, (s) => target.tokenizer.encode(s))), /vocabulary of 32000 tokens and the target .* 16384/);
  one(() => checkDraftCompatible(target, fake(16384, (s) => target.tokenizer.encode(s).reverse())), /tokenizer .* encodes text differently/);
});

// (e) ------------------------------------------------------------------------------------------------------------

test('(e) the CLI: bad --draft-tokens, a missing --draft directory and decoding-time compression are one-line errors', () => {
  const args = ['generate', '--prompt', 'Once upon a time', '--max-tokens', '4'];
  assertUserError(runCli([...args, '--draft', DRAFT_DIR, '--draft-tokens', '0']), /^attend: --draft-tokens: "0" is not a whole number ≥ 1$/);
  assertUserError(runCli([...args, '--draft-tokens', '3']), /^attend: --draft-tokens needs --draft DIR$/);
  assertUserError(runCli([...args, '--draft', join(ROOT, 'models', 'no-such-draft')]), /^attend: --draft: model directory not found: .*no-such-draft$/);
  assertUserError(runCli([...args, '--draft', DRAFT_DIR, '--press', 'h2o', '--ratio', '0.5']), /^attend: a draft model \(--draft\) cannot be combined with compression while decoding/);
  // A draft with another tokenizer (a parity fixture, vocabulary 256) is refused after loading, naming the problem.
  assertUserError(runCli([...args, '--draft', join(PARITY_DIR, 'llama-gqa-tied')]), /^attend: the draft model .* has a vocabulary of \d+ tokens and the target .* 16384/);
});

test('(e) the CLI: --draft prints what plain decoding prints, and --stats reports the acceptance rate', () => {
  const args = ['generate', '--prompt', 'And the LORD said unto Moses,', '--max-tokens', '12'];
  const plain = runCli(args);
  const spec = runCli([...args, '--draft', DRAFT_DIR, '--draft-tokens', '3', '--stats']);
  assert.equal(spec.status, 0, spec.stderr);
  assert.equal(spec.stdout, plain.stdout);
  const m = spec.stderr.match(/draft: K=3, (\d+)\/(\d+) proposals accepted \(([\d.]+)%\), ([\d.]+) tokens per target forward \((\d+) decode forwards \+ the prefill\)/);
  assert.ok(m, spec.stderr);
  const [accepted, proposed, , perForward, forwards] = m.slice(1).map(Number);
  assert.ok(accepted <= proposed && proposed > 0);
  assert.equal(perForward.toFixed(2), (12 / (forwards + 1)).toFixed(2));
  assert.equal(12, forwards + 1 + accepted);
});
