/**
 * SpecKV (src/presses/speckv.ts) against the official code on attend-mini with attend-mini-draft, as recorded by
 * tools/fixtures/make_speckv_oracle.py (furiosa-ai/draft-based-approx-llm's speckv_generate_from_lookahead_ids and
 * compress_kv on transformers' float32 forward; commit, shims and cases in the fixture and the script's docstring)
 * in test/fixtures/speckv-oracle/. Skipped while that fixture is absent.
 *
 * Compared: the draft's greedy tokens (Attend's own lookahead; a divergence is allowed only after a step whose
 * official top-2 margin is a near-tie, < 1e-3); then, with the draft teacher-forced to the official tokens, per layer
 * and KV head the pooled scores (|Δ| ≤ 1e-4·|official|; 3e-5 relative seen) and the kept positions (exact: the fixture's are the official run with
 * ties of equal pooled scores broken toward the earlier entry, Attend's rule; the script checks that the as-is run
 * differs from it only inside such ties), and the target's logits after compression (|Δ| < 1e-3; 1e-5 seen). The official cap C
 * is Attend's budget C + 1; the official code crops the last prompt token and its first generate step runs it again
 * over the compressed cache, so here the cache is trimmed to n − 1 and that token run once more.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { prefill } from '../../src/generate/prefill.js';
import { loadModel } from '../../src/models/load.js';
import type { LayerView } from '../../src/presses/press.js';
import { CompressionSession } from '../../src/presses/runner.js';
import { SpecKVPress, type SpecKVOptions } from '../../src/presses/speckv.js';
import { greedyLookahead } from '../../src/prompt/lookahead.js';
import { assertDraftAgrees, teacherForcedDraft } from '../helpers/teacher-forced-draft.js';

const DIR = new URL('../fixtures/speckv-oracle/', import.meta.url);
const FILE = new URL('oracle.json', DIR);
const SKIP = !existsSync(FILE) && 'fixture absent: run tools/fixtures/make_speckv_oracle.py (its docstring gives the command) into test/fixtures/speckv-oracle';

interface Case {
  prompt: number;
  options: SpecKVOptions;
  draft_tokens: number[];
  draft_margins: number[];
  pooled: string;
  pooled_shape: [number, number, number];
  budgets: { max_capacity_prompt: number; attend_budget: number; kept: number[][][]; logits: string }[];
  error?: string;
}

interface Oracle {
  official_commit: string;
  prompts: { ids: number[] }[];
  speckv: Case[];
  failures: string[];
}

const f32 = (name: string) => {
  const b = readFileSync(new URL(name, DIR));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

/** The largest |a − b| beyond tol·|b| (+ 1e-12): 0 when every entry is within the relative tolerance. */
const beyond = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number) => {
  let worst = 0;
  for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) - tol * Math.abs(b[i]) - 1e-12);
  return worst;
};

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
};

/** SpecKV that keeps each layer's scores (the pooled scores, the window's entries above them). */
class RecordingSpecKV extends SpecKVPress {
  readonly scores = new Map<number, Float32Array[]>();
  override score(view: LayerView): Float32Array[] {
    const s = super.score(view);
    this.scores.set(view.layer, s.map((x) => x.slice()));
    return s;
  }
}

const oracle: Oracle | undefined = existsSync(FILE) ? JSON.parse(readFileSync(FILE, 'utf8')) : undefined;
const models = () => ({
  lm: loadModel(new URL('../../models/attend-mini', import.meta.url).pathname),
  draft: loadModel(new URL('../../models/attend-mini-draft', import.meta.url).pathname),
});

test('speckv oracle: the fixture ran every case', { skip: SKIP }, () => {
  assert.deepEqual(oracle!.failures, [], 'the oracle script reported failures');
  for (const c of oracle!.speckv) assert.equal(c.error, undefined, `case on prompt ${c.prompt}: ${c.error}`);
});

test("speckv oracle: attend-mini-draft's greedy lookahead is the official draft.generate's", { skip: SKIP }, () => {
  const { draft } = models();
  for (const [i, c] of oracle!.speckv.entries()) {
    const ids = oracle!.prompts[c.prompt].ids;
    const got = greedyLookahead(draft.model, ids, { tokens: c.options.lookahead, eos: draft.generation.eosTokenIds });
    assertDraftAgrees(got, c.draft_tokens, c.draft_margins, `case ${i}`);
  }
});

test('speckv oracle: the same pooled scores, kept entries and logits after compression as the official code', { skip: SKIP }, () => {
  const { lm, draft } = models();
  for (const [i, c] of oracle!.speckv.entries()) {
    const ids = oracle!.prompts[c.prompt].ids;
    const n = ids.length;
    const scored = n - c.options.window - 1;
    const [layers, heads, entries] = c.pooled_shape;
    assert.equal(entries, scored, `case ${i}: the official scored ${entries} entries`);
    const pooled = f32(c.pooled);
    for (const b of c.budgets) {
      const what = `case ${i} (prompt ${c.prompt}, ${n} tokens, pool ${c.options.pool}, reduction ${c.options.reduction}), C = ${b.max_capacity_prompt}`;
      const press = new RecordingSpecKV(teacherForcedDraft(draft, n, c.draft_tokens), c.options);
      const cache = lm.model.makeCache();
      const session = new CompressionSession({ press, budget: { tokens: b.attend_budget } }, lm.model, cache);
      // The whole prompt in one forward, as the official prefill runs it.
      prefill(lm.model, cache, ids, { chunkSize: n, observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, n) });
      assert.equal(session.stats.compressions, 1, `${what}: compressions`);
      for (let l = 0; l < layers; l++) {
        const got = press.scores.get(l);
        assert.ok(got, `${what}: layer ${l} was not scored`);
        for (let h = 0; h < heads; h++) {
          const want = pooled.subarray((l * heads + h) * entries, (l * heads + h + 1) * entries);
          const over = beyond(got[h].subarray(0, entries), want, 1e-4);
          assert.ok(over <= 0, `${what}: layer ${l} head ${h}: pooled scores differ by ${over} beyond 1e-4 relative`);
          assert.deepEqual(Array.from(cache.layers[l].heads[h].positions), b.kept[l][h], `${what}: layer ${l} head ${h}: kept positions`);
        }
      }
      // The official first generate step: the last prompt token again, at n − 1, over the compressed cache.
      cache.trim(n - 1);
      const logits = lm.model.backend.read(lm.model.forward([ids[n - 1]], cache, { lastOnly: true }));
      const diff = maxDiff(logits, f32(b.logits));
      assert.ok(diff < 1e-3, `${what}: logits after compression differ by ${diff}`);
    }
  }
});
