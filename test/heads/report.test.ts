/** attend heads --html: a head's attention map read through the observer, and the page of grids that shows it. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { prefill } from '../../src/generate/prefill.js';
import { SinkRecorder } from '../../src/heads/sinks.js';
import { headAttention, MAX_ATTENTION_TOKENS, renderHeadsReport } from '../../src/heads/report.js';
import type { HeadScores } from '../../src/heads/probe.js';
import { loadModel } from '../../src/models/load.js';

const lm = loadModel(new URL('../fixtures/parity/llama-gqa-tied', import.meta.url).pathname);
const ids = lm.tokenizer.encode('The cat sat on the mat. The cat sat on the mat again.');

test('a head\'s attention map: causal rows that sum to 1, and the same mass per key as the sink recorder sees for that head', () => {
  const { numLayers, numHeads } = lm.config;
  const n = ids.length;
  const recorder = new SinkRecorder(lm.config, n);
  prefill(lm.model, lm.model.makeCache(), ids, { chunkSize: n, observer: recorder });
  for (const [layer, head] of [[0, 0], [numLayers - 1, numHeads - 1], [1 % numLayers, 1]] as const) {
    const a = headAttention(lm, ids, layer, head);
    assert.equal(a.tokens.length, n);
    for (let q = 0; q < n; q++) {
      let sum = 0;
      for (let k = 0; k < n; k++) {
        const p = a.probs[q * n + k]!;
        if (k > q) assert.equal(p, 0, `future key ${k} of query ${q}`);
        sum += p;
      }
      assert.ok(Math.abs(sum - 1) < 1e-5, `row ${q} sums to ${sum}`);
    }
    assert.equal(a.probs[0], 1);
    // Column sums = the attention each key received in this head (the recorder's own indexing of the blocks).
    for (let k = 0; k < n; k++) {
      let col = 0;
      for (let q = 0; q < n; q++) col += a.probs[q * n + k]!;
      assert.ok(Math.abs(col - recorder.received[layer]![head]![k]!) < 1e-5, `layer ${layer} head ${head} key ${k}`);
    }
  }
});

test('bad heads and prompts are one-line errors', () => {
  assert.throws(() => headAttention(lm, ids, lm.config.numLayers, 0), /layer \d+ out of range/);
  assert.throws(() => headAttention(lm, ids, 0, -1), /head -1 out of range/);
  assert.throws(() => headAttention(lm, new Array(MAX_ATTENTION_TOKENS + 1).fill(5), 0, 0), /takes 2…160/);
});

test('the page: one grid per probe with its threshold heads ringed, the attention map, escaped text, no script', async () => {
  const scores: HeadScores = { probe: 'retrieval', model: 'models/<mini>', layers: 2, heads: 4, samples: 3, threshold: 0.5,
    scores: [[0.1, 0.9, 0, 0], [0.6, 0, 0.2, 0]] };
  const html = await renderHeadsReport([scores, { ...scores, probe: 'sinks', threshold: undefined }], headAttention(lm, ids, 0, 1));
  assert.equal(html.match(/<svg/g)?.length, 3);
  assert.match(html, /the 2 heads above the threshold 0.5/);
  assert.match(html, /Attention of layer 0, head 1/);
  assert.match(html, /models\/&lt;mini&gt;/);
  assert.doesNotMatch(html, /<script/);
});

test('attend heads --html writes the page; a head map without --html or a bad LAYER.HEAD is a one-line error', async () => {
  const { execFileSync, spawnSync } = await import('node:child_process');
  const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'attend-heads-html-'));
  try {
    const cli = ['--import', 'tsx', new URL('../../src/cli/main.ts', import.meta.url).pathname, 'heads', '--probe', 'sinks',
      '--model', new URL('../fixtures/parity/llama-gqa-tied', import.meta.url).pathname, '--out', join(dir, 's.json')];
    execFileSync(process.execPath, [...cli, '--html', join(dir, 'h.html'), '--attention-head', '1.2', '--attention-prompt', 'one two three four'], { stdio: 'pipe' });
    const html = readFileSync(join(dir, 'h.html'), 'utf8');
    assert.equal(html.match(/<svg/g)?.length, 2);
    assert.match(html, /Attention of layer 1, head 2/);
    for (const [args, message] of [
      [['--attention-head', '1.2', '--attention-prompt', 'a b'], /--attention-head needs --html FILE/],
      [['--html', join(dir, 'x.html'), '--attention-head', '1.x', '--attention-prompt', 'a b'], /expected LAYER\.HEAD such as 6\.4, got "1\.x"/],
      [['--html', join(dir, 'x.html'), '--attention-head', '1.2'], /go together/],
    ] as const) {
      const r = spawnSync(process.execPath, [...cli, ...args], { encoding: 'utf8' });
      assert.equal(r.status, 1);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
