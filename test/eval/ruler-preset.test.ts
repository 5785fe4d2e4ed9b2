/**
 * The ruler preset holds every registered press (or says why not), and sweeps take presses that set their own size
 * (PressEntry.sizesItself) without a budget: one cell per query mode, run with no budget, worded "own size".
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AttendError } from '../../src/errors.js';
import { planOf } from '../../src/eval/run-cell.js';
import {
  countCells, expandSweep, parseSweepConfig, PRESETS, RULER_LEFT_OUT, RULER_PRESSES, setsOwnSize, SWEEP_DEFAULTS, type SweepConfig, validateSweep,
} from '../../src/eval/sweep-config.js';
import { runSweep } from '../../src/eval/sweep.js';
import { budgetLabel, formatSummary, summarise } from '../../src/eval/summary.js';
import { loadModel } from '../../src/models/load.js';
import { PRESSES } from '../../src/presses/registry.js';
import { PARITY_DIR } from '../helpers/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'attend-ruler-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const userError = (pattern: RegExp) => (e: unknown) => e instanceof AttendError && pattern.test(e.message) && !e.message.includes('\n');

test('the ruler preset: every registered press is in it or left out with a reason, in the registry\'s order', () => {
  const names = PRESSES.map((p) => p.name);
  const inPreset = RULER_PRESSES.map((p) => p.press);
  for (const name of [...inPreset, ...Object.keys(RULER_LEFT_OUT)]) assert.ok(names.includes(name), `${name} is not a registered press`);
  assert.equal(new Set(inPreset).size, inPreset.length, 'a press listed twice');
  const missing = names.filter((n) => !inPreset.includes(n) && !(n in RULER_LEFT_OUT));
  assert.deepEqual(missing, [], 'registered presses neither in RULER_PRESSES nor in RULER_LEFT_OUT (src/eval/sweep-config.ts)');
  assert.deepEqual(inPreset.filter((n) => n in RULER_LEFT_OUT), [], 'in the preset and left out');
  assert.deepEqual(inPreset, names.filter((n) => inPreset.includes(n)), "RULER_PRESSES follows the registry's order");
  for (const why of Object.values(RULER_LEFT_OUT)) assert.ok(why.length > 20, 'a reason');
});

test('the ruler preset: full KV, the six presses of the first ruler sweep unchanged, every press at three ratios or its own size', () => {
  const ruler = PRESETS.ruler!;
  validateSweep(ruler, 8192, 'ruler');
  const own = RULER_PRESSES.filter((p) => setsOwnSize(p.press));
  assert.ok(own.length >= 5, 'decoding, compression-ratio-decoding, dms, simlayerkv, cam at least');
  for (const m of ruler.methods.slice(1)) {
    assert.deepEqual(m.ratios, setsOwnSize(m.press) ? undefined : [0.25, 0.5, 0.75], m.press);
    assert.equal(m.budgets, undefined, m.press);
  }
  // 8 tasks × 2 lengths × 4 samples, each instance: full + budgeted presses × 3 ratios × 2 modes + own-size × 2 modes.
  const perInstance = 1 + (RULER_PRESSES.length - own.length) * 3 * 2 + own.length * 2;
  assert.equal(countCells(ruler), 64 * perInstance);
  const cells = expandSweep(ruler, 'models/attend-mini');
  assert.equal(cells.length, countCells(ruler));
  // The cells of the first ruler sweep (docs/results/ruler.jsonl) are still cells of the preset, options and all.
  for (const press of ['streaming-llm', 'snapkv', 'pyramidkv', 'h2o', 'adakv', 'knorm']) {
    const mine = cells.filter((c) => c.method === press);
    assert.equal(mine.length, 64 * 6, press);
    assert.ok(mine.every((c) => Object.keys(c.options).length === 0 && c.budget && 'ratio' in c.budget && c.during === 'prefill'), press);
  }
  // Every method's press is made from its options, with a budget exactly when it takes one.
  const first = cells.filter((c) => c.seed === cells[0]!.seed && c.task === cells[0]!.task && c.contextLength === 4096);
  assert.equal(first.length, perInstance);
  for (const cell of first) {
    const plan = planOf(cell);
    if (cell.method === 'full') {
      assert.equal(plan, undefined);
      continue;
    }
    assert.ok(plan, cell.method);
    assert.equal(plan.press.sizesItself === true, cell.budget === null, `${cell.method}: a budget exactly when the press takes one`);
  }
});

test('a sweep method for a press that sets its own size has no ratios or budgets: one cell per query mode', () => {
  const config = parseSweepConfig({ methods: [{ press: 'full' }, { press: 'simlayerkv', options: { 'lazy-threshold': 0.5 } }], queryAware: [false, true] }, 'test');
  const cells = expandSweep(config, 'm');
  const own = cells.filter((c) => c.method === 'simlayerkv');
  assert.equal(own.length, 2 * 2, 'two lengths × two query modes');
  assert.ok(own.every((c) => c.budget === null && c.during === 'prefill'));
  assert.deepEqual(own.map((c) => c.queryAware), [false, true, false, true]);
  assert.equal(countCells(config), cells.length);
  assert.throws(() => parseSweepConfig({ methods: [{ press: 'dms', ratios: [0.5], options: { threshold: 0 } }] }, 'test'),
    userError(/test: methods item 1: dms sets its own size and takes no "ratios" \(give its options instead\)/));
  assert.throws(() => parseSweepConfig({ methods: [{ press: 'cam', budgets: [64] }] }, 'test'), userError(/cam sets its own size and takes no "budgets"/));
  assert.throws(() => parseSweepConfig({ methods: [{ press: 'snapkv' }] }, 'test'), userError(/method snapkv needs ratios or budgets/));
  assert.equal(budgetLabel({ method: 'dms', budget: null, during: 'prefill', queryAware: true }), 'own size, query-aware');
  assert.equal(budgetLabel({ method: 'full', budget: null, during: null, queryAware: false }), '100% kept');
});

test('own-size presses run in a sweep without a budget (shared prefill or not) and are summarised as "own size"', async () => {
  const lm = loadModel(join(PARITY_DIR, 'llama3-mqa'));
  const config: SweepConfig = {
    ...SWEEP_DEFAULTS,
    tasks: ['passkey'],
    contextLengths: [200],
    depths: [0.5],
    methods: [
      { press: 'full' },
      { press: 'simlayerkv', options: { 'lazy-threshold': 0, 'n-recent': 16 } },
      { press: 'cam', options: { 'compression-interval': 2, 'target-size': 64 } },
    ],
    queryAware: [false, true],
    prefillChunk: 64,
  };
  validateSweep(config, 256, 'test');
  const cells = expandSweep(config, 'llama3-mqa');
  assert.equal(cells.length, 5);
  for (const shared of [false, true]) {
    const results = await runSweep(lm, cells, join(tmp, `own-${shared}.jsonl`), { sharedPrefill: shared });
    const full = results.find((r) => r.method === 'full')!;
    for (const r of results.filter((x) => x.method !== 'full')) {
      assert.equal(r.budget, null);
      assert.ok(r.metrics.kvBytes < full.metrics.kvBytes, `${r.method} ${r.queryAware}: ${r.metrics.kvBytes} bytes, full KV ${full.metrics.kvBytes}`);
    }
    const text = formatSummary(summarise(results));
    assert.match(text, /simlayerkv\s+own size, query-agnostic/);
    assert.match(text, /cam\s+own size, query-aware/);
  }
});
