/**
 * ACT against the official code: the sinks it detects and the logits it gives on attend-mini, recorded by
 * tools/fixtures/make_act_oracle.py (GATECH-EIC/ACT's atten_process_eval on transformers' float32 forward; the commit
 * is in the fixture) in test/fixtures/act-oracle/. Skipped when that fixture is absent (it is made on the GPU machine).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { prefill } from '../../src/generate/prefill.js';
import { withActCalibration } from '../../src/heads/act-calibration.js';
import { loadModel } from '../../src/models/load.js';

const DIR = new URL('../fixtures/act-oracle/', import.meta.url);
const FILE = new URL('oracle.json', DIR);

interface Oracle {
  official_commit: string;
  beta: number;
  threshold: number;
  heads: { layer: number; head: number }[];
  prompts: { text: string; ids: number[]; sinks: Record<string, number[]>; full: string; act: string; max_logit_change: number }[];
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

test('ACT on attend-mini against the official code: the same sinks, the same calibrated logits', { skip: !existsSync(FILE) && 'no fixture (tools/fixtures/make_act_oracle.py on the GPU machine)' }, () => {
  const oracle = JSON.parse(readFileSync(FILE, 'utf8')) as Oracle;
  const lm = loadModel(new URL('../../models/attend-mini', import.meta.url).pathname);
  const detected = new Map<string, number[]>();
  const act = withActCalibration(lm.model, { method: 'act', beta: oracle.beta, threshold: oracle.threshold, heads: oracle.heads }, {
    onSinks: (layer, head, sinks) => detected.set(`${layer}.${head}`, sinks),
  });
  for (const [i, p] of oracle.prompts.entries()) {
    // The whole prompt in one forward, as the official code runs it.
    const full = prefill(lm.model, lm.model.makeCache(), p.ids, { chunkSize: p.ids.length });
    const wantFull = f32(p.full);
    assert.ok(maxDiff(full, wantFull) < 2e-3, `prompt ${i}: uncalibrated logits differ by ${maxDiff(full, wantFull)} (the model itself)`);
    detected.clear();
    const got = prefill(act, act.makeCache(), p.ids, { chunkSize: p.ids.length });
    for (const [head, sinks] of Object.entries(p.sinks)) assert.deepEqual(detected.get(head), sinks, `prompt ${i}, head ${head}: sinks`);
    const wantAct = f32(p.act);
    const diff = maxDiff(got, wantAct);
    assert.ok(diff < 2e-3, `prompt ${i}: calibrated logits differ by ${diff} (official change ${p.max_logit_change})`);
    // The comparison means something: the calibration moves the logits far more than the tolerance.
    assert.ok(p.max_logit_change > 10 * 2e-3 || Object.values(p.sinks).every((s) => s.length === 0), `prompt ${i}: the calibration hardly changes the logits`);
  }
});
