/**
 * Shared prefill is exact: on the bundled model (real GQA, a real task), every method that joins a shared prefill
 * answers, holds and keeps exactly what a run of its own does, in both query modes; presses with their own
 * observers still run alone in a shared sweep, and a resumed sweep prefills only what is missing.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { KVCache } from '../../src/cache/kv-cache.js';
import { BUNDLED_MODEL } from '../../src/cli/options.js';
import { type GenerationRun, runGeneration } from '../../src/eval/run-cell.js';
import { groupBySharedPrefill, runSharedPrefill } from '../../src/eval/shared-prefill.js';
import { expandSweep, SWEEP_DEFAULTS, type SweepConfig } from '../../src/eval/sweep-config.js';
import { runSweep } from '../../src/eval/sweep.js';
import { taskByName } from '../../src/eval/tasks/index.js';
import { type CellKey, cellId, type TaskInstance } from '../../src/eval/types.js';
import { type LoadedModel, loadModel } from '../../src/models/load.js';

const lm = loadModel(BUNDLED_MODEL);
const tmp = mkdtempSync(join(tmpdir(), 'attend-shared-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// 64-token chunks ending in a short one: heads grow past their entries, which a plain clone would not reproduce.
const config: SweepConfig = {
  ...SWEEP_DEFAULTS,
  tasks: ['passkey'],
  contextLengths: [300],
  samples: 1,
  prefillChunk: 64,
  methods: [
    { press: 'full' },
    { press: 'streaming-llm', ratios: [0.5] },
    { press: 'snapkv', ratios: [0.5], options: { window: 8 } },
    { press: 'pyramidkv', ratios: [0.25] },
    { press: 'h2o', ratios: [0.5] },
    { press: 'adakv', ratios: [0.5] },
    { press: 'knorm', ratios: [0.5] },
    { press: 'observed-attention', ratios: [0.5] },
  ],
};

function instanceOf(cell: CellKey): TaskInstance {
  const opts = { seed: cell.seed, contextLength: cell.contextLength, depth: cell.depth ?? undefined, tokenizer: lm.tokenizer };
  return taskByName(cell.task).generate(opts) as TaskInstance;
}

function keptPositions(cache: KVCache): number[][] {
  return cache.layers.flatMap((l) => l.heads.map((h) => Array.from(h.positions)));
}

function assertSameRun(shared: GenerationRun, own: GenerationRun, cell: CellKey): void {
  const what = `${cell.method} ${cell.queryAware ? 'query-aware' : 'query-agnostic'}`;
  assert.equal(shared.metrics.prediction, own.metrics.prediction, what);
  assert.equal(shared.metrics.accuracy, own.metrics.accuracy, what);
  assert.equal(shared.metrics.kvBytes, own.metrics.kvBytes, what);
  assert.equal(shared.metrics.peakKvBytes, own.metrics.peakKvBytes, what);
  assert.equal(shared.metrics.promptTokens, own.metrics.promptTokens, what);
  assert.deepEqual(keptPositions(shared.cache), keptPositions(own.cache), what);
  assert.equal(shared.cache.bytes(), own.cache.bytes(), what);
}

test('every method of a shared prefill answers, holds and keeps what its own run does, in both query modes', async () => {
  const cells = expandSweep(config, 'attend-mini');
  const groups = groupBySharedPrefill(cells);
  // Context alone (query-agnostic) and context + question (query-aware and full): two prefills.
  assert.deepEqual(groups.map((g) => g.length), [8, 7]);
  const instance = instanceOf(cells[0]);
  for (const group of groups) {
    const shared = new Map<string, GenerationRun>();
    await runSharedPrefill(lm, group, instance, (cell, run) => shared.set(cellId(cell), run));
    for (const cell of group) {
      const run = shared.get(cellId(cell))!;
      assert.equal(run.metrics.sharedPrefill, true);
      assert.ok(run.metrics.ttftMs > 0 && run.metrics.peakKvBytes >= run.metrics.kvBytes);
      assertSameRun(run, await runGeneration(lm, cell, instance), cell);
    }
  }
});

/** The model, counting prefills (forward calls on an empty cache). */
function countingPrefills(): { lm: LoadedModel; prefills: () => number } {
  let prefills = 0;
  const model = Object.create(lm.model) as LoadedModel['model'];
  model.forward = (ids, cache, opts) => {
    if (cache.nextPosition === 0) prefills++;
    return lm.model.forward(ids, cache, opts);
  };
  return { lm: { ...lm, model }, prefills: () => prefills };
}

test('a shared sweep runs presses with their own observers alone, and a resumed group prefills once', async () => {
  const mixed: SweepConfig = {
    ...config,
    methods: [
      { press: 'full' },
      { press: 'snapkv', ratios: [0.5], options: { window: 8 } },
      { press: 'h2o', ratios: [0.5] },
      { press: 'lazy-eviction', ratios: [0.5] },
      { press: 'critic', ratios: [0.5] },
    ],
    sharedPrefill: true,
  };
  const cells = expandSweep(mixed, 'attend-mini');
  const alone = cells.filter((c) => c.method === 'lazy-eviction' || c.method === 'critic');
  assert.ok(groupBySharedPrefill(cells).filter((g) => g.length === 1).every((g) => alone.includes(g[0])));
  const path = join(tmp, 'results.jsonl');
  await runSweep(lm, cells.slice(0, 1), path, { sharedPrefill: true });
  const counted = countingPrefills();
  const results = await runSweep(counted.lm, cells, path, { sharedPrefill: true });
  // Full was done: snapkv and h2o share one prefill per query mode; lazy-eviction and critic run one each.
  assert.equal(counted.prefills(), 2 + alone.length);
  const instance = instanceOf(cells[0]);
  for (const [i, result] of results.entries()) {
    const own = await runGeneration(lm, cells[i], instance);
    assert.equal(result.metrics.prediction, own.metrics.prediction, result.method);
    assert.equal(result.metrics.kvBytes, own.metrics.kvBytes, result.method);
    const sharesPrefill = i > 0 && !alone.includes(cells[i]);
    assert.equal(result.metrics.sharedPrefill, sharesPrefill || undefined, result.method);
  }
});
