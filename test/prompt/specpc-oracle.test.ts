/**
 * SpecPC (src/prompt/specpc.ts) against the official code with attend-mini-draft, as recorded by
 * tools/fixtures/make_speckv_oracle.py (furiosa-ai/draft-based-approx-llm's generate_aggregated_attention and
 * specpc_select_input_token_indices on transformers' float32 forward; commit, shims and cases in the fixture and the
 * script's docstring) in test/fixtures/speckv-oracle/. Skipped while that fixture is absent.
 *
 * Compared: the draft's greedy tokens (Attend's own lookahead, up to an official near-tie); then, with the draft
 * teacher-forced to the official tokens, the aggregated attention per prompt token (|Δ| ≤ 1e-4·|official|), the selection rule
 * on the official scores themselves (exact), the selection from Attend's own scores and compressPrompt's ids
 * (exact). The fixture's selections are the official run with its two ties broken as Attend breaks them: equal
 * pooled scores toward the earlier token (torch.topk's order among them is its own) and the neighbour offsets −d
 * before +d (torch's unstable argsort of |offset|); the as-is official run is recorded beside them.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { loadModel } from '../../src/models/load.js';
import { greedyLookahead } from '../../src/prompt/lookahead.js';
import { compressPrompt, type SpecPCOptions, specpcScores, specpcSelect } from '../../src/prompt/specpc.js';
import { assertDraftAgrees, teacherForcedDraft } from '../helpers/teacher-forced-draft.js';

const DIR = new URL('../fixtures/speckv-oracle/', import.meta.url);
const FILE = new URL('oracle.json', DIR);
const SKIP = !existsSync(FILE) && 'fixture absent: run tools/fixtures/make_speckv_oracle.py (its docstring gives the command) into test/fixtures/speckv-oracle';

interface Case {
  prompt: number;
  options: { window: number; kernel: number; neighbours: number; pool: 'max' | 'mean'; reduction: 'max' | 'mean'; lookahead: number; start_layer: number; weighted_query: boolean };
  draft_tokens: number[];
  draft_margins: number[];
  scores: string;
  budgets: { max_capacity_prompt: number; kept: number[] }[];
  error?: string;
}

interface Oracle {
  prompts: { ids: number[] }[];
  specpc: Case[];
}

const oracle: Oracle | undefined = existsSync(FILE) ? JSON.parse(readFileSync(FILE, 'utf8')) : undefined;

const f32 = (name: string) => {
  const b = readFileSync(new URL(name, DIR));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

const optionsOf = (o: Case['options']): SpecPCOptions => ({
  window: o.window,
  kernel: o.kernel,
  neighbours: o.neighbours,
  pool: o.pool,
  reduction: o.reduction,
  lookahead: o.lookahead,
  startLayer: o.start_layer,
  weightedQuery: o.weighted_query,
});

const draftDir = () => new URL('../../models/attend-mini-draft', import.meta.url).pathname;

test('specpc oracle: the fixture ran every case', { skip: SKIP }, () => {
  for (const c of oracle!.specpc) assert.equal(c.error, undefined, `case on prompt ${c.prompt}: ${c.error}`);
});

test("specpc oracle: attend-mini-draft's greedy lookahead is the official generate's", { skip: SKIP }, () => {
  const draft = loadModel(draftDir());
  for (const [i, c] of oracle!.specpc.entries()) {
    const ids = oracle!.prompts[c.prompt].ids;
    const got = greedyLookahead(draft.model, ids, { tokens: c.options.lookahead, eos: draft.generation.eosTokenIds });
    assertDraftAgrees(got, c.draft_tokens, c.draft_margins, `case ${i}`);
  }
});

test('specpc oracle: the same aggregated attention and kept prompt tokens as the official code', { skip: SKIP }, () => {
  const draft = loadModel(draftDir());
  for (const [i, c] of oracle!.specpc.entries()) {
    const ids = oracle!.prompts[c.prompt].ids;
    const o = optionsOf(c.options);
    const what = `case ${i} (prompt ${c.prompt}, ${ids.length} tokens, lookahead ${o.lookahead}, pool ${o.pool}, reduction ${o.reduction})`;
    const forced = teacherForcedDraft(draft, ids.length, c.draft_tokens);
    const want = f32(c.scores);
    const got = specpcScores(forced, ids, o);
    assert.equal(got.length, want.length, `${what}: scores`);
    // Relative: the scores run from about 1 down to 1e-20.
    let over = 0;
    for (let t = 0; t < want.length; t++) over = Math.max(over, Math.abs(got[t] - want[t]) - 1e-4 * Math.abs(want[t]) - 1e-12);
    assert.ok(over <= 0, `${what}: aggregated attention differs by ${over} beyond 1e-4 relative`);
    for (const b of c.budgets) {
      const C = b.max_capacity_prompt;
      // The rule alone, on the official scores.
      assert.deepEqual(Array.from(specpcSelect(want, C, o)), b.kept, `${what}, C = ${C}: selection from the official scores`);
      // Attend end to end.
      assert.deepEqual(Array.from(specpcSelect(got, C, o)), b.kept, `${what}, C = ${C}: selection from Attend's scores`);
      assert.deepEqual(compressPrompt(ids, forced, { ...o, budget: { tokens: C } }), b.kept.map((t) => ids[t]), `${what}, C = ${C}: compressPrompt`);
    }
  }
});
