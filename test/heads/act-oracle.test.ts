/**
 * ACT against the official code: the sinks it detects and the logits it gives on attend-mini and on the parity
 * checkpoint llama-gqa-tied, recorded by tools/fixtures/make_act_oracle.py (GATECH-EIC/ACT's atten_process_eval on
 * transformers' float32 forward; the commit is in the fixture) in test/fixtures/act-oracle/ and
 * test/fixtures/act-oracle-parity/. The parity checkpoint has 2 layers, below the official forward's range(2, 31), so
 * its fixture runs the official calibration on its layers 0 and 1 (the script's --first-layer 0) with THRES 0.05 (a
 * random model's attention is too flat for 0.1 to find sinks); the fixture records its threshold and heads, which
 * the test reads. Each case is skipped when its fixture is absent.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { test } from 'node:test';
import { prefill } from '../../src/generate/prefill.js';
import { withActCalibration } from '../../src/heads/act-calibration.js';
import { loadModel } from '../../src/models/load.js';

interface Oracle {
  model: string;
  official_commit: string;
  beta: number;
  threshold: number;
  heads: { layer: number; head: number }[];
  prompts: { text: string; ids: number[]; sinks: Record<string, number[]>; full: string; act: string; max_logit_change: number }[];
}

const f32 = (dir: URL, name: string) => {
  const b = readFileSync(new URL(name, dir));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
};

/** The fixtures and the models they were made on. */
const CASES = [
  { fixture: 'act-oracle', model: '../../models/attend-mini', label: 'attend-mini' },
  { fixture: 'act-oracle-parity', model: '../fixtures/parity/llama-gqa-tied', label: 'the parity checkpoint llama-gqa-tied' },
];

for (const c of CASES) {
  const DIR = new URL(`../fixtures/${c.fixture}/`, import.meta.url);
  const FILE = new URL('oracle.json', DIR);
  test(`ACT on ${c.label} against the official code: the same sinks, the same calibrated logits`, { skip: !existsSync(FILE) && `no fixture ${c.fixture} (tools/fixtures/make_act_oracle.py)` }, () => {
    const oracle = JSON.parse(readFileSync(FILE, 'utf8')) as Oracle;
    const modelDir = new URL(c.model, import.meta.url).pathname;
    assert.equal(oracle.model, basename(modelDir), `${c.fixture} was made on ${oracle.model}`);
    const lm = loadModel(modelDir);
    const detected = new Map<string, number[]>();
    const act = withActCalibration(lm.model, { method: 'act', beta: oracle.beta, threshold: oracle.threshold, heads: oracle.heads }, {
      onSinks: (layer, head, sinks) => detected.set(`${layer}.${head}`, sinks),
    });
    assert.ok(oracle.prompts.some((p) => Object.values(p.sinks).some((s) => s.length > 0)), `${c.fixture}: no head found a sink`);
    for (const [i, p] of oracle.prompts.entries()) {
      // The whole prompt in one forward, as the official code runs it.
      const full = prefill(lm.model, lm.model.makeCache(), p.ids, { chunkSize: p.ids.length });
      const wantFull = f32(DIR, p.full);
      assert.ok(maxDiff(full, wantFull) < 2e-3, `prompt ${i}: uncalibrated logits differ by ${maxDiff(full, wantFull)} (the model itself)`);
      detected.clear();
      const got = prefill(act, act.makeCache(), p.ids, { chunkSize: p.ids.length });
      for (const [head, sinks] of Object.entries(p.sinks)) assert.deepEqual(detected.get(head), sinks, `prompt ${i}, head ${head}: sinks`);
      const wantAct = f32(DIR, p.act);
      const diff = maxDiff(got, wantAct);
      assert.ok(diff < 2e-3, `prompt ${i}: calibrated logits differ by ${diff} (official change ${p.max_logit_change})`);
      // The comparison means something: the calibration moves the logits far more than the tolerance.
      assert.ok(p.max_logit_change > 10 * 2e-3 || Object.values(p.sinks).every((s) => s.length === 0), `prompt ${i}: the calibration hardly changes the logits`);
    }
  });
}
