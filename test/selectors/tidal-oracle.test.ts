/**
 * TidalDecode against the official code: the positions each selection layer keeps per query head and the logits of
 * each decoding step on attend-mini, recorded by tools/fixtures/make_tidal_oracle.py (DerrickYLJ/TidalDecode's
 * llama_tidal_attention_forward on transformers' float32 forward; the commit is in the fixture) in
 * test/fixtures/tidal-oracle/. Attend runs the same prompt with the same budget and layers, teacher-forced on the
 * oracle's greedy tokens. Tolerances: selections exact, except at a head whose k-th and (k+1)-th official scores are
 * within NEAR of each other (a near-tie that float rounding may order either way: one swap allowed there, and the
 * logits of that step and after are then not compared); logits within 1e-3. Skipped when the fixture is absent (it is
 * made on the GPU machine).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { prefill } from '../../src/generate/prefill.js';
import { loadModel } from '../../src/models/load.js';
import type { SelectEntries } from '../../src/models/batch.js';
import { TidalDecodeSelector } from '../../src/selectors/tidal-decode.js';
import { SelectionSession } from '../../src/selectors/selector.js';

const DIR = new URL('../fixtures/tidal-oracle/', import.meta.url);
const FILE = new URL('oracle.json', DIR);
const LOGITS = 1e-3;
const NEAR = 1e-3;

interface Selection {
  step: number;
  layer: number;
  position: number;
  heads: number[][];
  gaps: (number | null)[];
}

interface Case {
  name: string;
  top_k: number;
  sparse_layer_start: number;
  correction_layer: number;
  tokens: number[];
  logits: string;
  selections: Selection[];
  recomputed_topk_mismatches: unknown[];
  max_logit_change_vs_full: number[];
  error?: string;
}

interface Oracle {
  official_commit: string;
  vocab: number;
  steps: number;
  ids: number[];
  full_tokens: number[];
  cases: Case[];
}

const f32 = (name: string) => {
  const b = readFileSync(new URL(name, DIR));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
};

/** Entries in one sorted list and not the other, both ways. */
const symmetricDifference = (a: number[], b: number[]) => {
  const sa = new Set(a);
  const sb = new Set(b);
  return a.filter((x) => !sb.has(x)).length + b.filter((x) => !sa.has(x)).length;
};

const skip = !existsSync(FILE) && 'no fixture (tools/fixtures/make_tidal_oracle.py on the GPU machine)';
const oracle = skip ? undefined : (JSON.parse(readFileSync(FILE, 'utf8')) as Oracle);
const lm = skip ? undefined : loadModel(new URL('../../models/attend-mini', import.meta.url).pathname);

for (const c of oracle?.cases ?? [{ name: 'each case' } as Case]) {
  test(`TidalDecode ${c.name} on attend-mini against the official code: the same positions, the same logits`, { skip }, (t) => {
    const { model, config } = lm!;
    const { ids } = oracle!;
    assert.equal(c.error, undefined, `the oracle failed on this case: ${c.error}`);
    assert.deepEqual(c.recomputed_topk_mismatches, [], 'the oracle\'s recomputed top-k differs from its own mask');
    const td = new TidalDecodeSelector({ budget: c.top_k, denseLayers: c.sparse_layer_start, reselectLayer: c.correction_layer });
    const selectionLayers = [c.sparse_layer_start, c.correction_layer];
    // The layer after each selection layer reads its choice: there Attend's lists (entry indices per query head)
    // name the chosen positions.
    for (const l of selectionLayers) assert.ok(l + 1 < config.numLayers && !selectionLayers.includes(l + 1), `layer ${l + 1} must read layer ${l}'s choice`);
    const session = new SelectionSession(td, config);
    const chosen = new Map<string, number[][]>();
    let step = -1;
    const select: SelectEntries = (layer, queries, positions, cache) => {
      const lists = session.select(layer, queries, positions, cache);
      if (positions.length === 1 && selectionLayers.includes(layer - 1)) {
        assert.ok(Array.isArray(lists) && lists.length === config.numHeads, `step ${step}, layer ${layer}: one list per query head`);
        const group = config.numHeads / config.numKvHeads;
        chosen.set(`${step}.${layer - 1}`, (lists as (Int32Array | null)[]).map((list, h) => {
          const head = cache.heads[Math.floor(h / group)];
          return list ? Array.from(list, (e) => head.positions[e]) : Array.from(head.positions);
        }));
      }
      return lists;
    };

    const cache = model.makeCache();
    prefill(model, cache, ids, { chunkSize: ids.length }); // the whole prompt in one forward, as the oracle runs it
    const want = f32(c.logits);
    const vocab = oracle!.vocab;
    assert.equal(want.length, oracle!.steps * vocab);
    let tied = false;
    let compared = 0;
    let worst = 0;
    for (const [i, token] of c.tokens.entries()) {
      step = i;
      const got = model.backend.read(model.forward([token], cache, { select, lastOnly: true })).slice();
      for (const s of c.selections.filter((s) => s.step === i)) {
        assert.equal(s.position, ids.length + i, `step ${i}: the oracle's query position`);
        const mine = chosen.get(`${i}.${s.layer}`);
        assert.ok(mine, `step ${i}, layer ${s.layer}: Attend made no selection`);
        s.heads.forEach((theirs, h) => {
          const differ = symmetricDifference(mine[h], theirs);
          const gap = s.gaps[h];
          if (gap !== null && gap < NEAR) {
            assert.ok(differ <= 2, `step ${i}, layer ${s.layer}, head ${h}: ${differ} positions differ at a near-tie (gap ${gap})`);
            if (differ) tied = true;
          } else {
            assert.deepEqual(mine[h], theirs, `step ${i}, layer ${s.layer}, head ${h}: positions (gap at the cut ${gap})`);
          }
        });
      }
      if (tied) continue; // a near-tie ordered the other way: the steps from here read another entry
      const diff = maxDiff(got, want.subarray(i * vocab, (i + 1) * vocab));
      assert.ok(diff < LOGITS, `step ${i}: logits differ by ${diff} (full attention would change them by ${c.max_logit_change_vs_full[i]})`);
      compared++;
      worst = Math.max(worst, diff);
    }
    t.diagnostic(`${compared} of ${c.tokens.length} steps' logits compared, largest difference ${worst.toExponential(2)}${tied ? '; a near-tie swapped' : ''}`);
    assert.ok(compared >= 1, 'no step\'s logits were compared');
    // The comparison means something: the budget moves the official logits far beyond the tolerance, and Attend
    // made every selection the oracle did.
    assert.ok(Math.max(...c.max_logit_change_vs_full) > 100 * LOGITS, `${c.name}: the budget hardly changes the logits`);
    assert.equal(chosen.size, c.selections.length);
  });
}
