/**
 * ACT attention calibration in `attend bench` (eval/act-method.ts): a method's "act" file parses into cells that carry
 * the calibration, refuses bad input in one line naming the file, is labelled in the tables and the report, never
 * joins a shared prefill, and on the bundled model runs exactly as the plain cell does on the calibrated model: the
 * cache of every layer up to the calibrated one is the plain cell's, the layers after it are not.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BUNDLED_MODEL } from '../../src/cli/options.js';
import { AttendError } from '../../src/errors.js';
import { withActCalibration } from '../../src/heads/act-calibration.js';
import { resultsMarkdown } from '../../src/eval/markdown.js';
import { toRows } from '../../src/eval/report/rows.js';
import { runGeneration } from '../../src/eval/run-cell.js';
import { groupBySharedPrefill } from '../../src/eval/shared-prefill.js';
import { summarise } from '../../src/eval/summary.js';
import { expandSweep, parseSweepConfig, SWEEP_DEFAULTS, type SweepConfig, validateSweep } from '../../src/eval/sweep-config.js';
import { runSweep } from '../../src/eval/sweep.js';
import { taskByName } from '../../src/eval/tasks/index.js';
import { cellId, type TaskInstance } from '../../src/eval/types.js';
import { loadModel } from '../../src/models/load.js';

const SHIPPED = 'models/attend-mini/act-calibration.json';
const tmp = mkdtempSync(join(tmpdir(), 'attend-act-sweep-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(tmp, name);
  writeFileSync(path, text);
  return path;
}

function refuses(methods: unknown[], pattern: RegExp): void {
  assert.throws(() => validateSweep(parseSweepConfig({ methods }, 'sweep.json'), 8192, 'sweep.json'), (e: unknown) => {
    assert.ok(e instanceof AttendError, String(e));
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes('\n'), e.message);
    return true;
  });
}

test('an "act" method parses into cells that carry the calibration, with ids of their own', () => {
  const config = parseSweepConfig({ methods: [{ press: 'full' }, { press: 'full', act: SHIPPED }, { press: 'snapkv', ratios: [0.5], act: SHIPPED }],
    contextLengths: [512], queryAware: [true] }, 'sweep.json');
  validateSweep(config, 8192, 'sweep.json');
  const cells = expandSweep(config, 'attend-mini');
  assert.deepEqual(cells.map((c) => [c.method, c.act?.heads]), [
    ['full', undefined],
    ['full', [{ layer: 6, head: 5 }, { layer: 6, head: 4 }]],
    ['snapkv', [{ layer: 6, head: 5 }, { layer: 6, head: 4 }]],
  ]);
  assert.deepEqual(cells[1].act, { path: SHIPPED, beta: 0.4, threshold: 0.1, heads: [{ layer: 6, head: 5 }, { layer: 6, head: 4 }] });
  assert.notEqual(cellId(cells[0]), cellId(cells[1]));
  // The id holds the calibration, not the path: the same file elsewhere resumes the same cells.
  assert.equal(cellId(cells[1]), cellId({ ...cells[1], act: { ...cells[1].act!, path: 'elsewhere.json' } }));
  assert.notEqual(cellId(cells[1]), cellId({ ...cells[1], act: { ...cells[1].act!, beta: 0.5 } }));
  // Parsed again (a resumed sweep's config), the method is the same.
  assert.deepEqual(parseSweepConfig(JSON.parse(JSON.stringify(config)), 'again').methods, config.methods);
});

test('"act" refuses bad input in one line naming the problem', () => {
  refuses([{ press: 'full', act: 3 }], /methods item 1: "act" must be the path of an ACT calibration file/);
  refuses([{ press: 'full', act: '' }], /"act" must be the path of an ACT calibration file/);
  refuses([{ selector: 'quest', budgets: [64], act: SHIPPED }], /"act" recomputes the calibrated heads .* cannot run under a selector/);
  refuses([{ press: 'full', act: join(tmp, 'absent.json') }], /sweep\.json: "act": .*absent\.json does not exist/);
  refuses([{ press: 'full', act: file('bad.json', '{"method": "act",\n') }], /sweep\.json: "act": .*bad\.json is not JSON/);
  refuses([{ press: 'full', act: file('other.json', '{"method": "duo"}') }], /other\.json is not an ACT calibration \(expected "method": "act"\)/);
  refuses([{ press: 'full', act: file('none.json', '{"method": "act", "heads": []}') }], /none\.json must list the heads it calibrates/);
  refuses([{ press: 'full', act: file('neg.json', '{"method": "act", "heads": [{"layer": -1, "head": 0}]}') }], /neg\.json must list the heads/);
  refuses([{ press: 'full', act: file('beta.json', '{"method": "act", "beta": 2, "heads": [{"layer": 6, "head": 5}]}') }], /beta\.json: beta must be in \[0, 1\], got 2/);
});

const lm = loadModel(BUNDLED_MODEL);
const config: SweepConfig = {
  ...SWEEP_DEFAULTS,
  tasks: ['niah_multivalue'],
  contextLengths: [512],
  samples: 1,
  seed: 3,
  prefillChunk: 512,
  queryAware: [true],
  sharedPrefill: true,
  methods: [{ press: 'full' }, { press: 'full', act: SHIPPED }],
};

test("an ACT cell runs as the plain cell on the calibrated model, and changes only the layers after the calibrated one", async () => {
  const [plain, act] = expandSweep(config, 'attend-mini');
  const instance = taskByName('niah_multivalue').generate({ seed: plain.seed, contextLength: 512, tokenizer: lm.tokenizer }) as TaskInstance;
  const a = await runGeneration(lm, act, instance);
  const p = await runGeneration(lm, plain, instance);
  const calibrated = { ...lm, model: withActCalibration(lm.model, { method: 'act', beta: 0.4, threshold: 0.1, heads: act.act!.heads }) };
  const byHand = await runGeneration(calibrated, plain, instance);
  assert.equal(a.metrics.prediction, byHand.metrics.prediction);
  assert.equal(a.metrics.kvBytes, byHand.metrics.kvBytes);
  // The prompt's entries: layers 0 … 6 see the same inputs (layer 6's keys and values come before its attention), layer 7 does not.
  const n = a.metrics.promptTokens;
  for (const [l, layer] of a.cache.layers.entries()) {
    for (const [h, head] of layer.heads.entries()) {
      const same = head.keys(0, n).every((x, i) => x === p.cache.layers[l].heads[h].keys(0, n)[i]);
      assert.equal(same, l <= 6, `layer ${l} head ${h}: keys ${same ? 'equal' : 'differ'}`);
    }
  }
  assert.deepEqual(a.cache.layers[7].heads[0].keys(0, n), byHand.cache.layers[7].heads[0].keys(0, n));
});

test('in a shared sweep the ACT cell prefills alone, and the tables and report name its calibration', async () => {
  const cells = expandSweep(config, 'attend-mini');
  assert.deepEqual(groupBySharedPrefill([...cells, { ...cells[0], method: 'snapkv', budget: { ratio: 0.5 }, during: 'prefill', queryAware: true }]).map((g) => g.map((c) => `${c.method}${c.act ? '+act' : ''}`)),
    [['full', 'snapkv'], ['full+act']]);
  const shared = await runSweep(lm, cells, join(tmp, 'shared.jsonl'), { sharedPrefill: true });
  const own = await runSweep(lm, cells, join(tmp, 'own.jsonl'), { sharedPrefill: false });
  assert.equal(shared[1].metrics.sharedPrefill, undefined);
  assert.equal(shared[1].metrics.prediction, own[1].metrics.prediction);
  const summary = summarise(own);
  assert.deepEqual(summary.accuracy.map((r) => [r.method, r.variant, r.n]), [['full', '', 1], ['full', 'ACT on 2 heads: 6.5, 6.4', 1]]);
  assert.match(resultsMarkdown(own, summary), /full \(ACT on 2 heads: 6\.5, 6\.4\)/);
  assert.deepEqual([...new Set(toRows(own).rows.map((r) => r.series))], ['full KV', 'full KV (ACT on 2 heads: 6.5, 6.4)']);
});
