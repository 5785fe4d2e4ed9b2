/** Selectors as sweep methods: {"selector": "quest", "budgets": [...]} expands, runs, reports what it read. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { summaryMarkdown } from '../../src/eval/markdown.js';
import { summarise } from '../../src/eval/summary.js';
import { expandSweep, parseSweepConfig, validateSweep } from '../../src/eval/sweep-config.js';
import { runSweep } from '../../src/eval/sweep.js';
import { loadModel } from '../../src/models/load.js';

const tmp = mkdtempSync(join(tmpdir(), 'attend-selector-sweep-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const config = parseSweepConfig({
  tasks: ['passkey'],
  contextLengths: [640],
  depths: [0.5],
  samples: 1,
  queryAware: [false, true],
  methods: [{ press: 'full' }, { selector: 'quest', budgets: [4096, 48] }],
}, 'test config');

test('a selector method expands to one cell per budget, query-agnostic, no compression schedule', () => {
  const cells = expandSweep(config, 'attend-mini');
  assert.deepEqual(cells.map((c) => [c.method, c.budget, c.during, c.queryAware]), [
    ['full', null, null, false],
    ['quest', { tokens: 4096 }, null, false],
    ['quest', { tokens: 48 }, null, false],
  ]);
  validateSweep(config, 8192, 'test config');
  assert.throws(() => parseSweepConfig({ ...config, methods: [{ selector: 'nope', budgets: [1] }] }, 'c'), /"selector" must be a selector name \(quest, [a-z, -]+\), got "nope"/);
  assert.throws(() => parseSweepConfig({ ...config, methods: [{ selector: 'quest', ratios: [0.5], budgets: [8] }] }, 'c'), /takes no "ratios"/);
  assert.throws(() => parseSweepConfig({ ...config, methods: [{ selector: 'quest' }] }, 'c'), /"budgets"/);
  const bad = parseSweepConfig({ ...config, methods: [{ selector: 'quest', budgets: [8], options: { pages: 2 } }] }, 'c');
  assert.throws(() => validateSweep(bad, 8192, 'c'), /no option 'pages'/);
});

test('a selector cell runs: full budget answers as full attention, a small one reads less; the tables say so', async () => {
  const lm = loadModel(new URL('../../models/attend-mini', import.meta.url).pathname);
  const results = await runSweep(lm, expandSweep(config, 'attend-mini'), join(tmp, 'results.jsonl'));
  const [full, all, small] = results;
  // The same with one prefill shared by the three cells: the selector still runs.
  const shared = await runSweep(lm, expandSweep(config, 'attend-mini'), join(tmp, 'shared.jsonl'), { sharedPrefill: true });
  assert.equal(shared[2].metrics.sharedPrefill, true);
  assert.equal(shared[2].metrics.prediction, small.metrics.prediction);
  assert.equal(shared[2].metrics.readShare, small.metrics.readShare);
  assert.equal(all.metrics.prediction, full.metrics.prediction);
  assert.equal(all.metrics.readShare, 1);
  assert.ok(small.metrics.readShare! < 1, `read share ${small.metrics.readShare}`);
  assert.ok(small.metrics.entriesReadPerStep! > 0);
  const md = summaryMarkdown(summarise(results));
  assert.match(md, /100% kept, 48 tokens read per step/);
  assert.match(md, /KV read per step/);
});

const withinConfig = parseSweepConfig({
  tasks: ['passkey'],
  contextLengths: [640],
  depths: [0.5],
  samples: 1,
  queryAware: [false],
  methods: [
    { selector: 'quest', budgets: [48] },
    { press: 'snapkv', ratios: [0.5] },
    { selector: 'quest', budgets: [48, 4096], within: { press: 'snapkv', ratio: 0.5 } },
  ],
}, 'test config');

test('"within": a selector over a press expands in the sweep\'s query modes; bad ones are one-line errors', () => {
  const both = parseSweepConfig({ ...withinConfig, queryAware: [false, true] }, 'c');
  const cells = expandSweep(both, 'attend-mini').filter((c) => c.within);
  assert.deepEqual(cells.map((c) => [c.budget, c.queryAware, c.within]), [
    [{ tokens: 48 }, false, { press: 'snapkv', ratio: 0.5 }],
    [{ tokens: 48 }, true, { press: 'snapkv', ratio: 0.5 }],
    [{ tokens: 4096 }, false, { press: 'snapkv', ratio: 0.5 }],
    [{ tokens: 4096 }, true, { press: 'snapkv', ratio: 0.5 }],
  ]);
  const m = (within: unknown) => ({ ...withinConfig, methods: [{ selector: 'quest', budgets: [8], within }] });
  assert.throws(() => parseSweepConfig(m({ press: 'nope', ratio: 0.5 }), 'c'), /"within" needs "press", a press name/);
  assert.throws(() => parseSweepConfig(m({ press: 'snapkv', ratio: 1 }), 'c'), /"within" needs "ratio", a number in \(0, 1\)/);
  assert.throws(() => parseSweepConfig(m({ press: 'snapkv', ratio: 0.5, budget: 3 }), 'c'), /unknown key "budget"/);
  assert.throws(() => parseSweepConfig({ ...withinConfig, methods: [{ press: 'snapkv', ratios: [0.5], within: { press: 'knorm', ratio: 0.5 } }] }, 'c'),
    /"within" belongs to a selector method/);
  const badOption = parseSweepConfig(m({ press: 'snapkv', ratio: 0.5, options: { nope: 1 } }), 'c');
  assert.throws(() => validateSweep(badOption, 8192, 'c'), /nope/);
});

test('"within": the selector reads from what the press kept: the press\'s cache and answer when its budget covers it, less read when not', async () => {
  const lm = loadModel(new URL('../../models/attend-mini', import.meta.url).pathname);
  const [bare, press, small, whole] = await runSweep(lm, expandSweep(withinConfig, 'attend-mini'), join(tmp, 'within.jsonl'), { sharedPrefill: true });
  // Same cache as the press alone: the selector drops nothing.
  assert.equal(small.metrics.kvBytes, press.metrics.kvBytes);
  assert.ok(small.metrics.kvBytes < bare.metrics.kvBytes, `${small.metrics.kvBytes} vs ${bare.metrics.kvBytes}`);
  assert.equal(whole.metrics.prediction, press.metrics.prediction);
  assert.equal(whole.metrics.readShare, 1);
  // Read share is of what the press kept: 48 tokens of ~320 kept entries, not of the 640-token prompt.
  assert.ok(small.metrics.readShare! > bare.metrics.readShare!, `${small.metrics.readShare} vs ${bare.metrics.readShare}`);
  const md = summaryMarkdown(summarise([bare, press, small, whole]));
  assert.match(md, /50% kept by snapkv, query-agnostic, 48 tokens read per step/);
  assert.match(md, /100% kept, 48 tokens read per step/);
});
