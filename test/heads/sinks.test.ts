/**
 * Hidden attention sinks (heads/sinks.ts, ACT): the official rule worked by hand on constructed attention blocks
 * (mean received attention over the rows that see a key, above 0.1, the first key that passes left out), and a short
 * attend-mini run whose scores are finite, of the right shape, and show a hidden sink.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AttentionBlock } from '../../src/backend/backend.js';
import { PROBES } from '../../src/heads/registry.js';
import { SINK_PROMPTS, SinkRecorder, sinkIndices, sinkScores } from '../../src/heads/sinks.js';
import { loadModel } from '../../src/models/load.js';

/** One KV head with two query heads: `rows[t][g]` is query head g's row at position positions[t], `cols` wide. */
function block(positions: number[], rows: number[][][], cols: number): AttentionBlock {
  const probs = new Float32Array(positions.length * 2 * cols);
  rows.forEach((perHead, t) => perHead.forEach((r, g) => probs.set(r, (t * 2 + g) * cols)));
  return { layer: 0, kvHead: 0, groupSize: 2, queryPositions: Int32Array.from(positions), probs, cols };
}

function recorded(): SinkRecorder {
  const rec = new SinkRecorder({ numLayers: 1, numHeads: 2, numKvHeads: 1 }, 4);
  // Head 0: keys receive 2.0, 1.6, 0.15, 0.25 in all; seen by 4, 3, 2, 1 rows → means 0.5, 0.533, 0.075, 0.25.
  // Head 1: a first-token sink only: keys 1–3 receive 0.17, 0.07, 0.02 → means 0.0567, 0.035, 0.02.
  // Two blocks, as attention streams them; the first is only as wide as its rows see (2 columns).
  rec.observe(block([0, 1], [[[1, 0], [1, 0]], [[0.5, 0.5], [0.9, 0.1]]], 2));
  rec.observe(block([2, 3], [[[0.3, 0.6, 0.1, 0], [0.9, 0.05, 0.05, 0]], [[0.2, 0.5, 0.05, 0.25], [0.94, 0.02, 0.02, 0.02]]], 4));
  return rec;
}

test('sinks by hand: mean received over the rows that see the key, above 0.1, the first key that passes left out', () => {
  const found = recorded().sinks();
  const near = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-6, `${a} ≠ ${b}`);
  assert.equal(found.threshold, 0.1);
  // Head 0: keys 0 (0.5), 1 (0.533) and 3 (0.25) pass; key 2 (0.075) does not; key 0, the first to pass, is left out.
  assert.deepEqual(found.sinks[0][0].map((s) => s.position), [1, 3]);
  near(found.sinks[0][0][0].mean, 1.6 / 3);
  near(found.sinks[0][0][1].mean, 0.25);
  // Their share of the head's attention mass: (1.6 + 0.25) / 4 rows.
  near(found.share[0][0], (1.6 + 0.25) / 4);
  near(found.strongest[0][0], 1.6 / 3);
  // Head 1: no hidden sink; its strongest key but the first token (the one that passes) is key 1.
  assert.deepEqual(found.sinks[0][1], []);
  near(found.share[0][1], 0);
  near(found.strongest[0][1], 0.17 / 3);
  // Another threshold, strictly exceeded: at 0.3 only keys 0 and 1 pass, and 0 is left out.
  assert.deepEqual(recorded().sinks({ threshold: 0.3 }).sinks[0][0].map((s) => s.position), [1]);
  // At 0.52 only key 1 passes, and as the first that passes it is left out (the official indices[1:]): no sink.
  assert.deepEqual(recorded().sinks({ threshold: 0.52 }).sinks[0][0], []);
  near(recorded().sinks({ threshold: 0.52 }).strongest[0][0], 0.5);
  assert.deepEqual(sinkIndices([0.05, 0.2, 0.01, 0.3, 0.1], 0.1), [3], 'the first passing key (1) left out, 0.1 itself not above');
  assert.throws(() => recorded().observe({ ...block([3], [[[0], [0]]], 1), groupSize: 1 }), /whole KV groups/);
});

test('attend-mini: finite sink scores of the right shape, a hidden sink, the same whatever the chunk', () => {
  const lm = loadModel(new URL('../../models/attend-mini', import.meta.url).pathname);
  const c = lm.config;
  const s = sinkScores(lm, SINK_PROMPTS.slice(0, 2), { chunkSize: 11 });
  assert.equal(s.probe, 'sinks');
  assert.equal(s.layers, c.numLayers);
  assert.equal(s.heads, c.numHeads);
  assert.equal(s.samples, 2);
  assert.equal(s.threshold, 0.1);
  assert.ok(s.scores.length === c.numLayers && s.scores.every((row) => row.length === c.numHeads && row.every((x) => Number.isFinite(x) && x >= 0 && x <= 1)));
  // A trained model has hidden sinks: some head gives a key after the first over half its viewers' attention.
  assert.ok(Math.max(...s.scores.flat()) > 0.5, `strongest ${Math.max(...s.scores.flat())}`);
  const prompts = (s.details as { prompts: { tokens: number; heads: { layer: number; head: number; share: number; sinks: { position: number; mean: number; token: number }[] }[] }[] }).prompts;
  assert.equal(prompts.length, 2);
  for (const p of prompts) {
    assert.ok(p.heads.length > 0);
    for (const h of p.heads) {
      assert.ok(h.share > 0 && h.share <= 1 + 1e-6);
      assert.ok(h.sinks.every((x) => x.position >= 1 && x.position < p.tokens && x.mean > 0.1));
    }
  }
  // Streaming: one chunk for the whole prompt gives the same scores.
  const whole = sinkScores(lm, SINK_PROMPTS.slice(0, 2), { chunkSize: 512 });
  whole.scores.forEach((row, l) => row.forEach((x, h) => assert.ok(Math.abs(x - s.scores[l][h]) < 1e-5)));
  // The registry block: `samples` built-in prompts; no grid.
  const one = PROBES.sinks.run(lm, { samples: 1 });
  assert.equal(one.samples, 1);
  one.scores.forEach((row, l) => row.forEach((x) => assert.ok(Number.isFinite(x))));
  assert.throws(() => PROBES.sinks.run(lm, { lengths: [100] }), /no lengths or depths/);
  assert.throws(() => PROBES.sinks.run(lm, { samples: 9 }), /samples must be 1…3/);
});
