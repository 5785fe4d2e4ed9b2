/** The Markdown tables of `attend bench --markdown` and the console summary, on hand-made results. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { depthMarkdown, resultsMarkdown, taskAccuracyMarkdown } from '../../src/eval/markdown.js';
import { budgetLabel, closingText, formatSummary, keptLabel, summarise } from '../../src/eval/summary.js';
import type { CellResult } from '../../src/eval/types.js';

function cell(task: string, contextLength: number, depth: number | null, method: string, accuracy: number, seed = 1): CellResult {
  const compressed = method !== 'full';
  return {
    model: 'm', task, contextLength, depth, seed, method, options: {},
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

test('budgets are worded as the share of the KV kept, everywhere', () => {
  assert.equal(keptLabel({ ratio: 0.75 }), '25% kept');
  assert.equal(keptLabel({ ratio: 0.5 }), '50% kept');
  assert.equal(keptLabel({ tokens: 512 }), '512 tokens kept');
  assert.equal(keptLabel(null), '100% kept');
  assert.equal(budgetLabel({ budget: { ratio: 0.25 }, during: 'chunks', queryAware: true }), '75% kept, per chunk, query-aware');
  assert.equal(budgetLabel({ budget: { ratio: 0.25 }, during: 'prefill', queryAware: false }), '75% kept, query-agnostic');
  const text = formatSummary(summarise(results)) + resultsMarkdown(results, summarise(results));
  assert.doesNotMatch(text, /ratio/);
});

test('accuracy per task: one row per method and budget, one column per task, and the mean', () => {
  const md = taskAccuracyMarkdown(results);
  assert.match(md, /\*\*1024 tokens\*\*/);
  assert.match(md, /\| method, budget \| passkey \| vt \| all \|/);
  assert.match(md, /\| full \| 100% \| 50% \| 83% \|/);
  assert.match(md, /\| snapkv, 50% kept, query-agnostic \| 50% \| 0% \| 33% \|/);
});

test('depth tables only for tasks with a depth, per method', () => {
  const md = depthMarkdown(results);
  assert.match(md, /\*\*snapkv, 50% kept, query-agnostic\*\*\n\n\| depth \| 1024 \|\n\| --- \| ---: \|\n\| 0 \| 0% \|\n\| 1 \| 100% \|/);
  assert.equal(depthMarkdown(results.filter((r) => r.depth !== 1)), '');
});

test('the summary: pooled accuracy with n and the Wilson interval, then cost per context length', () => {
  const md = resultsMarkdown(results, summarise(results));
  assert.ok(md.startsWith('Accuracy per method, pooled over passkey and vt at 1024 tokens, needle depths 0% and 100%'), md.slice(0, 200));
  // full: 2.5 of 3 → 83.3%, Wilson [0.310, 0.982] (worked by hand)
  assert.match(md, /\| full \| 100% kept \| 3 \| 83\.3% \| 31\.0–98\.2% \|/);
  assert.match(md, /\| context \| method \| KV kept \| cells \| KV MiB \| peak KV MiB \| TTFT s \| decode tok\/s \|/);
  assert.match(md, /\| 1024 \| full \| 100% kept \| 3 \| 1\.0 \| 2\.0 \| 1\.0 \| 10 \|/);
  assert.match(md, /query-agnostic: the context was compressed before the question arrived/);
});

test('rows whose prefill was shared mark their TTFT and explain the mark', () => {
  const shared = results.map((r) => ({ ...r, metrics: { ...r.metrics, sharedPrefill: true as const } }));
  const md = resultsMarkdown(shared, summarise(shared));
  assert.match(md, /\| 1024 \| full \| 100% kept \| 3 \| 1\.0 \| 2\.0 \| 1\.0\* \| 10 \|/);
  assert.match(md, /\n\* TTFT of a prefill shared/);
  assert.doesNotMatch(resultsMarkdown(results, summarise(results)), /\* TTFT/);
});

test('the closing sentence: what the table shows and cannot, from the results alone', () => {
  const many = [...Array(40).keys()].flatMap((i) => [
    cell('niah_single', i % 2 ? 1024 : 2048, (i % 5) / 4, 'full', 1, i),
    cell('niah_single', i % 2 ? 1024 : 2048, (i % 5) / 4, 'snapkv', i % 4 === 0 ? 1 : 0, i),
    cell('niah_single', i % 2 ? 1024 : 2048, (i % 5) / 4, 'h2o', i % 10 === 0 ? 0 : 1, i),
  ]);
  const text = closingText(summarise(many));
  assert.match(text, /one model \(m\) on one task \(niah_single\)/);
  assert.match(text, /n = 40 independent prompts over 2 context lengths and 5 needle depths/);
  assert.match(text, /95% Wilson intervals \(the widest ±\d+\.\d points, half its width\)/);
  assert.match(text, /snapkv \(50% kept\) is clearly below it/);
  assert.match(text, /h2o \(50% kept\) cannot be told apart from it/);
  assert.match(text, /cannot show differences smaller than the intervals/);
  assert.ok(formatSummary(summarise(many)).trimEnd().endsWith('budgets.'));
  // Full KV alone: nothing to compare it with, so no comparison sentence.
  const alone = closingText(summarise(many.filter((c) => c.method === 'full')));
  assert.doesNotMatch(alone, /Against full KV/);
  assert.match(alone, /n = 40 independent prompts/);
  assert.doesNotMatch(alone, /not independent/);
  // The same 8 seeds at every length and depth: said, and the prompts not called independent.
  const reused = [...Array(40).keys()].map((i) => cell('niah_single', i % 2 ? 1024 : 2048, (i % 5) / 4, 'full', 1, i % 8));
  const said = closingText(summarise(reused));
  assert.match(said, /n = 40 prompts/);
  assert.match(said, /only 8 seeds per row .* not independent samples/);
  // A pooled task draws other instances at other lengths and depths from the same seeds: independent.
  const pooled = reused.map((c) => ({ ...c, task: 'wording_single' }));
  assert.match(closingText(summarise(pooled)), /n = 40 independent prompts/);
});

test('one method run with two option sets gets a row each, named by its options; a ratio of heads says so', () => {
  const withPattern = (pattern: string, accuracy: number, seed: number): CellResult =>
    ({ ...cell('passkey', 1024, 0, 'duo-attention', accuracy, seed), options: { pattern } });
  const s = summarise([cell('passkey', 1024, 0, 'full', 1), withPattern('a', 1, 1), withPattern('a', 1, 2), withPattern('b', 0, 1)]);
  const rows = s.accuracy.map((r) => [r.method, r.variant, r.budget, r.n, r.accuracy]);
  assert.deepEqual(rows, [
    ['full', '', '100% kept', 1, 1],
    ['duo-attention', 'pattern=a', '50% of KV heads made streaming, query-agnostic', 2, 1],
    ['duo-attention', 'pattern=b', '50% of KV heads made streaming, query-agnostic', 1, 0],
  ]);
  assert.match(formatSummary(s), /duo-attention \(pattern=b\)/);
  // One option set: the method's name alone.
  assert.equal(summarise([withPattern('a', 1, 1)]).accuracy[0]!.variant, '');
});
