/** The Markdown tables of `attend bench --markdown`, on hand-made results. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { depthMarkdown, resultsMarkdown, taskAccuracyMarkdown } from '../../src/eval/markdown.js';
import { summarise } from '../../src/eval/summary.js';
import type { CellResult } from '../../src/eval/types.js';

function cell(task: string, contextLength: number, depth: number | null, method: string, accuracy: number): CellResult {
  const compressed = method !== 'full';
  return {
    model: 'm', task, contextLength, depth, seed: 1, method, options: {},
    budget: compressed ? { ratio: 0.5 } : null, during: compressed ? 'prefill' : null, queryAware: false, prefillChunk: 512,
    commit: 'c', date: 'd',
    metrics: { accuracy, kvBytes: 2 ** 20, peakKvBytes: 2 ** 21, peakRssBytes: 0, promptTokens: contextLength, ttftMs: 1000, prefillTokensPerS: 1, decodeTokensPerS: 10 },
  };
}

const results = [
  cell('passkey', 1024, 0, 'full', 1), cell('passkey', 1024, 1, 'full', 1),
  cell('passkey', 1024, 0, 'snapkv', 0), cell('passkey', 1024, 1, 'snapkv', 1),
  cell('vt', 1024, null, 'full', 0.5), cell('vt', 1024, null, 'snapkv', 0),
];

test('accuracy per task: one row per method and budget, one column per task, and the mean', () => {
  const md = taskAccuracyMarkdown(results);
  assert.match(md, /\*\*1024 tokens\*\*/);
  assert.match(md, /\| method, budget \| passkey \| vt \| all \|/);
  assert.match(md, /\| full \| 100% \| 50% \| 83% \|/);
  assert.match(md, /\| snapkv, ratio 0.5 \| 50% \| 0% \| 33% \|/);
});

test('depth tables only for tasks with a depth, per method', () => {
  const md = depthMarkdown(results);
  assert.match(md, /\*\*snapkv, ratio 0.5\*\*\n\n\| depth \| 1024 \|\n\| --- \| ---: \|\n\| 0 \| 0% \|\n\| 1 \| 100% \|/);
  assert.equal(depthMarkdown(results.filter((r) => r.depth !== 1)), '');
});

test('the whole output starts with the summary table', () => {
  const md = resultsMarkdown(results, summarise(results));
  assert.ok(md.startsWith('| context | method | budget | cells | accuracy | KV MiB | peak KV MiB | TTFT s | decode tok/s |'));
  assert.match(md, /\| 1024 \| full \| full \| 3 \| 83.3% \| 1.0 \| 2.0 \| 1.0 \| 10 \|/);
});

test('rows whose prefill was shared mark their TTFT and explain the mark', () => {
  const shared = results.map((r) => ({ ...r, metrics: { ...r.metrics, sharedPrefill: true as const } }));
  const md = resultsMarkdown(shared, summarise(shared));
  assert.match(md, /\| 1024 \| full \| full \| 3 \| 83.3% \| 1.0 \| 2.0 \| 1.0\* \| 10 \|/);
  assert.match(md, /\n\* TTFT of a prefill shared/);
  assert.doesNotMatch(resultsMarkdown(results, summarise(results)), /\* TTFT/);
});
