/**
 * Attend's presses keep the same entries as the reference implementations: NVIDIA kvpress for every press case
 * listed in tools/fixtures/press_cases/ (applied once after the prefill as kvpress's pipeline does, or while the
 * question is decoded for its decoding presses), and the official FMInference/H2O real-drop cache for H2O (after
 * the prefill and after every decoded token) — on the bundled attend-mini and on a small random Qwen3 checkpoint.
 * Per layer and KV head the kept positions must be equal, except where two entries score exactly the same (key
 * norms of a repeated token in layer 0, attention that underflows to 0): torch.topk breaks such ties its own way,
 * Attend keeps the earlier entry. So a difference passes only if every entry it involves has the same Attend score
 * as the others of its layer's difference (within TIE). Where kvpress only masks keys (head-wise presses), the
 * masked entries count as dropped: Attend removes them. Where the entries are equal, the last row of logits on the
 * compressed cache must match within 1e-3; where a tie was broken differently the caches differ, so logits are not
 * compared. Cases where kvpress draws random numbers that Attend cannot be handed are compared by kept counts only.
 * Oracle and adaptations: tools/fixtures/make_press_oracle.py; fixtures: test/fixtures/press-oracle/<model>/.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { KVCache } from '../../src/cache/kv-cache.js';
import { prefill } from '../../src/generate/prefill.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import type { Budget } from '../../src/presses/budget.js';
import type { Press } from '../../src/presses/press.js';
import { createPress } from '../../src/presses/registry.js';
import { type CompressionPlan, CompressionSession } from '../../src/presses/runner.js';
import { maxAbsDiff, readF32 } from '../helpers/fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const FIXTURES = join(ROOT, 'test', 'fixtures', 'press-oracle');
const TIE = 1e-6;

/**
 * Cases whose disagreement is understood and not yet resolved: they still run and report, as TODO (never silently
 * skipped); each reason says what differs. Keys are `fixture/case`.
 */
const KNOWN: Record<string, string> = {
  'qwen3-random/chunkkv-knorm-0.75':
    'Qwen3 normalises keys (k_norm), so every key norm is ≈ √d·w and the chunk means tie; torch.topk and Attend break the chunk ties differently',
  'attend-mini/dms-knorm-decoding':
    'the oracle could not map one kept row back to a logged row (its key was never seen appended) on the sixth- and seventh-stage weights; on the fourth-stage weights it was mapped and Attend agreed',
};

interface OracleCase {
  name: string;
  press: string;
  /** Older fixtures: a ratio instead of a budget. */
  ratio?: number;
  budget?: Budget | null;
  options: Record<string, number | string>;
  decode?: CompressionPlan['decode'] | null;
  rerotated?: boolean;
  random?: boolean;
  /** Relative score difference that counts as a tie for this case (default TIE). */
  tie?: number;
  oracle: string;
  kept: number[][][];
  kept_after_decode?: number[][][];
  decode_ids?: number[];
  logits?: string;
}

interface OracleFixture {
  model: string;
  model_dir?: string | null;
  weights_sha256: string;
  context_ids: number[];
  question_ids: number[];
  cases: OracleCase[];
  failures?: string[];
}

/** Per layer and KV head, the original positions of the entries held (a re-rotated cache renumbers its heads). */
function keptPositions(cache: KVCache): number[][][] {
  return cache.layers.map((layer, l) => layer.heads.map((_, h) => Array.from(cache.originalPositions(l, h)).sort((a, b) => a - b)));
}

/**
 * Asserts that the kept entries equal the oracle's up to ties, and returns whether they are exactly equal.
 * `scores[l][h]` are Attend's scores of layer l's entries before compression (indexed by position then). A head may
 * differ only by swapping entries of equal score: its entries only Attend keeps and those only the oracle keeps,
 * each sorted by score, must pair up with equal scores (within TIE). Without scores, entries must be equal.
 */
function assertSameEntries(actual: number[][][], expected: number[][][], scores: Float32Array[][] | undefined, what: string, tie = TIE): boolean {
  let exact = true;
  expected.forEach((heads, l) => {
    heads.forEach((want, h) => {
      const got = actual[l][h];
      const onlyAttend = got.filter((p) => !want.includes(p));
      const onlyOracle = want.filter((p) => !got.includes(p));
      if (onlyAttend.length === 0 && onlyOracle.length === 0) return;
      exact = false;
      const s = scores?.[l]?.[h];
      assert.ok(s, `${what}: layer ${l} head ${h} keeps different entries (Attend only: ${onlyAttend.slice(0, 8)}; oracle only: ${onlyOracle.slice(0, 8)})`);
      const a = onlyAttend.map((p) => s[p]).sort((x, y) => x - y);
      const o = onlyOracle.map((p) => s[p]).sort((x, y) => x - y);
      const ties = a.length === o.length && a.every((x, i) => Math.abs(x - o[i]) <= tie * Math.max(1, Math.abs(x)));
      assert.ok(ties, `${what}: layer ${l} head ${h} keeps ${a.length} entries the oracle drops (${onlyAttend.slice(0, 6)}: scores ${a.slice(0, 6)}) and drops ${o.length} it keeps (${onlyOracle.slice(0, 6)}: scores ${o.slice(0, 6)}), not ties`);
    });
  });
  return exact;
}

/**
 * Wraps a press so that the scores it gives each layer are kept, indexed by original position: per entry, the
 * score of the last compression that scored it (while decoding, a later compression scores the survivors again).
 */
function recordScores(press: Press, cache: KVCache): Float32Array[][] {
  const byLayer: Float32Array[][] = [];
  const score = press.score.bind(press);
  press.score = (view) => {
    const s = score(view);
    byLayer[view.layer] = view.cache.heads.map((head, h) => {
      const byPosition = new Float32Array(cache.seenTokens).fill(NaN);
      byPosition.set(byLayer[view.layer]?.[h]?.subarray(0, byPosition.length) ?? []);
      const origin = cache.originalPositions(view.layer, h);
      for (let i = 0; i < head.length; i++) byPosition[origin[i]] = s[h][i];
      return byPosition;
    });
    return s;
  };
  return byLayer;
}

const fixtures = existsSync(FIXTURES)
  ? readdirSync(FIXTURES).filter((d) => existsSync(join(FIXTURES, d, 'oracle.json'))).sort()
  : [];

test('there are press oracle fixtures', () => assert.ok(fixtures.length > 0, `no oracle.json under ${FIXTURES}`));

for (const fixture of fixtures) {
  const dir = join(FIXTURES, fixture);
  const ref = JSON.parse(readFileSync(join(dir, 'oracle.json'), 'utf8')) as OracleFixture;
  const modelDir = ref.model_dir ? join(dir, ref.model_dir) : join(ROOT, 'models', ref.model);
  const lm = loadModel(modelDir);

  test(`${fixture}: the oracle fixture was made from these weights, and every case ran`, () => {
    const hash = createHash('sha256');
    for (const f of readdirSync(modelDir).filter((f) => f.endsWith('.safetensors')).sort()) hash.update(readFileSync(join(modelDir, f)));
    assert.equal(hash.digest('hex'), ref.weights_sha256, `${modelDir} changed: run tools/fixtures/make_press_oracle.py again`);
    const unknown = (ref.failures ?? []).filter((f) => !KNOWN[`${fixture}/${f.slice(0, f.indexOf(':'))}`]);
    assert.deepEqual(unknown, [], 'cases the oracle could not run');
  });

  /** Option values starting with "@" name files of the fixture (e.g. a random sketch kvpress drew). */
  const resolve = (options: Record<string, number | string>) =>
    Object.fromEntries(Object.entries(options).map(([k, v]) => [k, typeof v === 'string' && v.startsWith('@') ? join(dir, v.slice(1)) : v]));

  for (const c of ref.cases) {
    test(`${fixture} ${c.name}: same entries as ${c.oracle}`, { todo: KNOWN[`${fixture}/${c.name}`] }, () => {
      const cache = newCache(lm.config, 'f32');
      const press = createPress(c.press, resolve(c.options));
      const scores = recordScores(press, cache);
      const decode = c.decode ?? (c.decode_ids ? { every: 1 } : undefined);
      // Scores an f32 oracle computes through ill-conditioned steps (a Cholesky solve) tie within a looser bound.
      const tie = c.tie ?? TIE;
      const budget = (c.budget === undefined ? { ratio: c.ratio! } : c.budget) as Budget;
      const session = new CompressionSession({ press, budget, during: 'prefill', decode }, lm.model, cache);
      prefill(lm.model, cache, ref.context_ids, { observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, ref.context_ids.length) });
      if (c.random) {
        // kvpress drew random numbers Attend was not handed: only the numbers kept can agree.
        assert.deepEqual(keptPositions(cache).map((l) => l.map((h) => h.length)), c.kept.map((l) => l.map((h) => h.length)), 'entries kept per head');
        return;
      }
      let exact = assertSameEntries(keptPositions(cache), c.kept, scores, 'after the prefill', tie);
      if (c.rerotated) {
        const kept = c.kept[0][0].length;
        assert.equal(cache.nextPosition, kept, 'a re-rotated cache continues at its compressed length');
      }

      let last: Float32Array;
      if (c.decode_ids) {
        let logits: Float32Array = new Float32Array();
        for (const id of c.decode_ids) {
          logits = lm.model.forward([id], cache, { observer: session.observer }).f32;
          session.afterDecodeStep();
        }
        exact = assertSameEntries(keptPositions(cache), c.kept_after_decode!, scores, 'after decoding', tie) && exact;
        last = logits;
      } else {
        const logits = lm.model.forward(ref.question_ids, cache).f32;
        last = logits.subarray(logits.length - lm.config.vocabSize);
      }
      if (c.logits && exact) {
        const want = readF32(join(dir, c.logits));
        assert.ok(maxAbsDiff(last, want) < 1e-3, `logits on the compressed cache: max |Δ| ${maxAbsDiff(last, want)}`);
      }
    });
  }
}
