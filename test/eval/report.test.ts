/**
 * The bench HTML report: one self-contained document whose plots are inline SVG drawn by Vega-Lite, no external
 * URL, unique SVG ids; and degenerate sweeps (only full KV, one context length, no depth, perplexity only, token
 * budgets, no cells, unmeasured metrics) give notes in place of the plots they cannot draw, never an error.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { renderReport, writeReport } from '../../src/eval/report/index.js';
import { syntheticCells } from '../../src/eval/report/synthetic.js';
import type { CellResult } from '../../src/eval/types.js';

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-report-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const count = (html: string, what: string | RegExp) =>
  (html.match(typeof what === 'string' ? new RegExp(what.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'g') : what) ?? []).length;

/** The ids of the drawn plots and of the plots replaced by a note. */
function plots(html: string): { drawn: string[]; notes: string[] } {
  return {
    drawn: [...html.matchAll(/<figure class="plot" id="plot-[^"]+" data-plot="([^"]+)"/g)].map((m) => m[1]!),
    notes: [...html.matchAll(/data-note="([^"]+)"/g)].map((m) => m[1]!),
  };
}

/** One well-formed, self-contained document: nothing fetched, no script, SVG ids unique across plots. */
function assertSelfContained(html: string): void {
  assert.match(html, /^<!doctype html>\n<html lang="en">/);
  assert.equal(count(html, '<html'), 1);
  assert.equal(count(html, '</html>'), 1);
  assert.equal(count(html, '<body'), 1);
  assert.equal(count(html, '<svg'), count(html, '</svg>'));
  assert.doesNotMatch(html, /\b(?:src|href)\s*=\s*["']?\s*(?:[a-z]+:)?\/\//i, 'no external src/href');
  assert.doesNotMatch(html, /url\(\s*["']?\s*(?:https?:)?\/\//i, 'no external CSS url()');
  assert.doesNotMatch(html, /@import|<script|<link|<iframe/i);
  const ids = [...html.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]!);
  assert.equal(new Set(ids).size, ids.length, 'ids are unique');
  for (const ref of html.matchAll(/url\(#([^)]+)\)/g)) assert.ok(ids.includes(ref[1]!), `url(#${ref[1]}) points at an element`);
}

test('a full sweep: four plot groups drawn as inline SVG with their marks, tables and metadata', async () => {
  const cells = syntheticCells({ seeds: [0] });
  assert.ok(cells.length > 150);
  const html = await renderReport(cells, { title: 'Bench <attend-mini>', command: 'attend bench --model m & co' });
  assertSelfContained(html);
  assert.deepEqual(plots(html), { drawn: ['accuracy-budget', 'needle-heatmap', 'memory', 'speed'], notes: [] });
  assert.equal(count(html, '<svg'), 4);
  assert.ok(count(html, 'class="mark-line') >= 3, 'accuracy and memory lines');
  assert.ok(count(html, 'class="mark-rule role-mark') >= 1, 'full KV reference line');
  assert.ok(count(html, 'class="mark-rect') >= 1, 'heatmap squares');
  assert.ok(count(html, /<path[^>]*d="M[^"]+"/g) > 100, 'many drawn paths');
  for (const method of ['full KV', 'snapkv', 'streaming-llm', 'knorm', 'random']) assert.ok(html.includes(method), method);
  assert.ok(html.includes('<title>Bench &lt;attend-mini&gt;</title>'));
  assert.ok(html.includes('attend bench --model m &amp; co'));
  assert.ok(html.includes('a1b2c3d4e5f6'));
  assert.ok(html.includes('<table class="summary" data-table="accuracy">'));
  assert.ok(html.includes('<table class="predictions">'));
  assert.ok(!html.includes('undefined') && !html.includes('NaN'));
  // Summary: accuracy per (method, budget) = 1 + 4 × 3, cost per (method, budget, context length) = 13 × 3.
  assert.equal(count(html, /<tr><td><span class="swatch"/g), 13 + 39);
  // Budgets worded as the share of the KV kept; one accuracy panel per budgeted method, intervals drawn.
  assert.ok(html.includes('% of the KV kept') && html.includes('25% kept') && !/ratio 0\.\d/.test(html));
  const accuracy = html.slice(html.indexOf('data-plot="accuracy-budget"'), html.indexOf('</figure>'));
  for (const m of ['snapkv', 'streaming-llm', 'knorm', 'random']) assert.ok(accuracy.includes(`>${m}</text>`), `panel ${m}`);
  assert.ok(count(accuracy, 'class="mark-rule role-mark') >= 2, 'full KV reference and the interval bars');
  assert.ok(html.length < 1_500_000, `${html.length} bytes`);
});

test('only full KV cells: the budget plot is a note, the rest is drawn', async () => {
  const html = await renderReport(syntheticCells({ methods: ['full'] }), { title: 'full only' });
  assertSelfContained(html);
  const { drawn, notes } = plots(html);
  assert.deepEqual(notes, ['accuracy-budget']);
  assert.deepEqual(drawn, ['needle-heatmap', 'memory', 'speed']);
  assert.match(html, /No accuracy cell has a KV budget/);
  assert.match(html, />[\d.]+\/1</, 'the heatmap squares are counts (one cell each here)');
});

test('a single context length and a single depth: every plot but the depth map, which needs several depths', async () => {
  const html = await renderReport(syntheticCells({ contextLengths: [2048], depths: [0.5] }), { title: 'one point' });
  assertSelfContained(html);
  assert.deepEqual(plots(html), { drawn: ['accuracy-budget', 'memory', 'speed'], notes: [] });
  assert.doesNotMatch(html, /<section id="needle"/);
});

test('no depth: no depth map', async () => {
  const html = await renderReport(syntheticCells({ depths: [] }), { title: 'no depth' });
  assertSelfContained(html);
  assert.deepEqual(plots(html).notes, []);
  assert.doesNotMatch(html, /<section id="needle"/);
});

test('perplexity-only cells: a perplexity plot, notes for accuracy and the heatmap', async () => {
  const html = await renderReport(syntheticCells({ perplexity: true }), { title: 'ppl' });
  assertSelfContained(html);
  const { drawn, notes } = plots(html);
  assert.deepEqual(notes.sort(), ['accuracy-budget']);
  assert.deepEqual(drawn, ['perplexity-budget', 'memory', 'speed']);
  assert.match(html, /No accuracy cells in this run/);
  assert.match(html, /<th>perplexity<\/th>/);
});

test('token budgets, and ratio and token budgets together (one plot each)', async () => {
  const tokens = syntheticCells({ budgetTokens: [128, 256, 512], depths: [0.5] });
  let html = await renderReport(tokens, { title: 'tokens' });
  assertSelfContained(html);
  assert.ok(plots(html).drawn.includes('accuracy-budget'));
  assert.match(html, /tokens of KV kept/);
  assert.match(html, /128 tokens kept/);
  const ratios = syntheticCells({ methods: ['snapkv'], depths: [0.5] });
  html = await renderReport([...tokens, ...ratios], { title: 'both' });
  assertSelfContained(html);
  assert.deepEqual(plots(html).drawn.slice(0, 2), ['accuracy-budget-ratio', 'accuracy-budget-tokens']);
});

test('one panel per budgeted method, full KV as the reference in each, no panel of its own', async () => {
  const full = syntheticCells({ methods: ['full'], contextLengths: [1024, 4096], depths: [0.5] });
  const tova = syntheticCells({ methods: ['tova'], budgetTokens: [256, 512], contextLengths: [4096], depths: [0.5] });
  const html = await renderReport([...full, ...tova], { title: 'sparse' });
  const figure = html.slice(html.indexOf('data-plot="accuracy-budget"'), html.indexOf('</figure>'));
  assert.ok(figure.includes('>tova</text>'));
  assert.equal(count(figure, 'role-title-text'), 1, 'one panel');
  assert.ok(figure.includes('>full KV</text>'), 'full KV in the legend');
});

test('no cells at all: a valid page of notes', async () => {
  const html = await renderReport([], { title: 'empty' });
  assertSelfContained(html);
  assert.equal(count(html, '<svg'), 0);
  assert.deepEqual(plots(html).notes, ['accuracy-budget', 'memory', 'speed']);
  assert.match(html, /No cells yet/);
});

test('unmeasured metrics (null from JSON, NaN, Infinity) and odd names do not break it', async () => {
  const cells = syntheticCells({ methods: ['full', 'snapkv'], contextLengths: [1024], depths: [0, 1] });
  const broken = JSON.parse(JSON.stringify(cells)) as CellResult[];
  for (const c of broken) {
    c.metrics.decodeTokensPerS = null as unknown as number;
    c.metrics.ttftMs = Number.NaN;
  }
  broken[0]!.metrics.prefillTokensPerS = Number.POSITIVE_INFINITY;
  broken[1]!.model = '<b>"weird" & model</b>';
  broken[1]!.commit = '';
  broken[1]!.date = 'not a date';
  const html = await renderReport(broken, { title: 'broken' });
  assertSelfContained(html);
  assert.ok(html.includes('&lt;b&gt;&quot;weird&quot; &amp; model&lt;/b&gt;'));
  assert.ok(!html.includes('<b>"weird"'));
  assert.ok(plots(html).drawn.includes('speed'));
});

test('series: a method run with different options is told apart by them; several tasks get a row each', async () => {
  const a = syntheticCells({ methods: ['snapkv'], contextLengths: [1024], depths: [0.5], task: 'niah_single' });
  const b = a.map((c) => ({ ...c, options: { window: 16 }, task: 'niah_multikey' }));
  const html = await renderReport([...a, ...b], { title: 'variants' });
  assertSelfContained(html);
  assert.ok(html.includes('snapkv (window=16)') && html.includes('snapkv (window=64)'));
  assert.ok(html.includes('niah_multikey'));
});

test('writeReport writes the document atomically', async () => {
  const file = path.join(dir, 'report.html');
  await writeReport(file, syntheticCells({ methods: ['full', 'knorm'], contextLengths: [1024] }), { title: 'written' });
  const html = fs.readFileSync(file, 'utf8');
  assertSelfContained(html);
  assert.deepEqual(fs.readdirSync(dir), ['report.html']);
});
