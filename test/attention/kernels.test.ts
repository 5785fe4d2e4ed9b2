/**
 * The CPU attention against the plain-loop reference (src/attention/reference.ts) for every kernel and every kind
 * of visibility: causal, sliding window, per-head entry lists, tree masks; f32 and 16-bit caches; grouped queries.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AttentionBlock } from '../../src/backend/backend.js';
import { attention } from '../../src/backend/cpu/attention.js';
import { LayerCache } from '../../src/cache/kv-cache.js';
import { referenceAttention, type ReferenceOptions } from '../../src/attention/reference.js';
import { parseKernel } from '../../src/attention/kernels/index.js';
import { sees } from '../../src/attention/visibility.js';
import { uniformArray } from '../../src/generate/random.js';
import type { DType } from '../../src/tensor/dtype.js';

interface Case {
  heads: number;
  kvHeads: number;
  tokens: number;
  rows: number;
  dtype?: DType;
  drop?: boolean;
}

function layerFor(c: Case, d: number): { layer: LayerCache; qPos: Int32Array } {
  const layer = LayerCache.empty(c.kvHeads, d, c.dtype ?? 'f32');
  const k = uniformArray(c.tokens * c.kvHeads * d, 11);
  const v = uniformArray(c.tokens * c.kvHeads * d, 12);
  const positions = Int32Array.from({ length: c.tokens }, (_, i) => 3 * i); // gaps, as after an earlier compression
  layer.heads.forEach((h, i) => h.append(k, v, positions, i * d, c.kvHeads * d));
  if (c.drop) layer.heads.forEach((h, i) => h.keep(Array.from({ length: c.tokens }, (_, j) => j).filter((j) => j % (3 + i) !== 1 || j >= c.tokens - c.rows)));
  return { layer, qPos: positions.subarray(c.tokens - c.rows) };
}

function compare(c: Case, opts: ReferenceOptions, tol = 2e-5): { blocks: AttentionBlock[]; weights: Float64Array[][] } {
  const d = 8;
  const { layer, qPos } = layerFor(c, d);
  const q = uniformArray(c.rows * c.heads * d, 13).map((x) => 2 * x);
  const out = new Float32Array(q.length);
  const blocks: AttentionBlock[] = [];
  const probs = (opts.kernel?.name ?? 'softmax') === 'softmax';
  attention(q, c.rows, c.heads, layer, qPos, { layer: 0, ...opts, observer: probs ? { observe: (b) => blocks.push(b) } : undefined }, out);
  const ref = referenceAttention(q, c.heads, layer, qPos, opts);
  let worst = 0;
  for (let i = 0; i < out.length; i++) worst = Math.max(worst, Math.abs(out[i] - ref.out[i]));
  assert.ok(worst < tol, `max |CPU − reference| = ${worst}`);
  return { blocks, weights: ref.weights };
}

const softmax = { name: 'softmax' } as const;
const sigmoid = parseKernel('sigmoid', { maxPositions: 64 });

test('reference and CPU agree: causal, window, ragged heads, GQA, f32 and bf16', () => {
  for (const kernel of [softmax, sigmoid]) {
    for (const dtype of ['f32', 'bf16'] as const) {
      compare({ heads: 4, kvHeads: 2, tokens: 40, rows: 7, dtype, drop: true }, { scale: 0.35, window: null, kernel });
      compare({ heads: 4, kvHeads: 2, tokens: 40, rows: 7, dtype }, { scale: 0.35, window: 12, kernel });
      compare({ heads: 2, kvHeads: 2, tokens: 1, rows: 1, dtype }, { scale: 0.35, window: null, kernel });
    }
  }
});

test('per-head entry lists: each head reads only its listed entries', () => {
  const entries = [Int32Array.from([0, 2, 5, 9, 20, 38, 39]), null, Int32Array.from([1, 39])];
  for (const kernel of [softmax, sigmoid]) {
    for (const dtype of ['f32', 'f16'] as const) {
      compare({ heads: 6, kvHeads: 3, tokens: 40, rows: 1, dtype }, { scale: 0.35, window: null, entries, kernel });
      compare({ heads: 6, kvHeads: 3, tokens: 40, rows: 3, dtype }, { scale: 0.35, window: 30, entries, kernel });
    }
  }
  // Observed probabilities sit at the head's own entry indices: zero off the list, a distribution over it.
  const { blocks, weights } = compare({ heads: 6, kvHeads: 3, tokens: 40, rows: 1 }, { scale: 0.35, window: null, entries, kernel: softmax });
  const b0 = blocks.find((b) => b.kvHead === 0)!;
  const listed = new Set(entries[0]);
  for (let i = 0; i < b0.cols; i++) {
    if (!listed.has(i)) assert.equal(b0.probs[i], 0, `entry ${i} is not listed`);
    assert.ok(Math.abs(b0.probs[i] - weights[0][0][i]) < 1e-6);
  }
});

test('per-query-head entry lists: the query heads of one KV head read different entries', () => {
  // Six query heads over three KV heads: heads 0 and 1 share KV head 0 but read different entries.
  const queryEntries = [Int32Array.from([0, 5, 39]), Int32Array.from([1, 2, 3, 38, 39]), null, Int32Array.from([39]), Int32Array.from([10, 20, 30, 39]), null];
  for (const kernel of [softmax, sigmoid]) {
    for (const dtype of ['f32', 'bf16'] as const) {
      compare({ heads: 6, kvHeads: 3, tokens: 40, rows: 1, dtype }, { scale: 0.35, window: null, queryEntries, kernel });
      compare({ heads: 6, kvHeads: 3, tokens: 40, rows: 2, dtype, drop: true }, { scale: 0.35, window: 25, queryEntries: queryEntries.map((l) => l && l.filter((i) => i < 30)), kernel });
    }
  }
  // Observers get one block per query head (groupSize 1), its probabilities on its own entries only.
  const { blocks } = compare({ heads: 6, kvHeads: 3, tokens: 40, rows: 1 }, { scale: 0.35, window: null, queryEntries, kernel: softmax });
  const head1 = blocks.filter((b) => b.kvHead === 0)[1];
  assert.equal(head1.groupSize, 1);
  for (let i = 0; i < head1.cols; i++) if (![1, 2, 3, 38, 39].includes(i)) assert.equal(head1.probs[i], 0);
  assert.throws(() => compare({ heads: 6, kvHeads: 3, tokens: 4, rows: 1 }, { scale: 1, window: null, queryEntries: [null] }), /queryEntries has 1 lists for 6 query heads/);
});

test('tree mask: a row sees the trunk and its own ancestors, not its siblings', () => {
  // Rows of the call (the last 6 tokens): 0 is the trunk's last token, 1 and 2 its children, 3 under 1, 4 under 2, 5 under 3.
  const parents = Int32Array.from([-1, 0, 0, 1, 2, 3]);
  for (const kernel of [softmax, sigmoid]) {
    compare({ heads: 4, kvHeads: 2, tokens: 30, rows: 6 }, { scale: 0.35, window: null, tree: { parents }, kernel });
    compare({ heads: 4, kvHeads: 2, tokens: 30, rows: 6, dtype: 'bf16', drop: true }, { scale: 0.35, window: 8, tree: { parents }, kernel });
  }
  // The rule itself, worked by hand: row 4 (under 2) sees rows 0, 2 and itself, not 1, 3 or 5.
  const qPos = Int32Array.from([50, 51, 52, 53, 54, 55]);
  const seen = [50, 51, 52, 53, 54, 55].filter((p, i) => sees({ window: null, tree: { parents } }, 0, i, p, 4, qPos));
  assert.deepEqual(seen, [50, 52, 54]);
});

test('sigmoid weights are σ(s + b) without normalisation; softmax rows sum to 1', () => {
  const { weights } = compare({ heads: 2, kvHeads: 1, tokens: 10, rows: 2 }, { scale: 0.35, window: null, kernel: sigmoid });
  const sum = weights[0][1].reduce((a, x) => a + x, 0);
  assert.ok(Math.abs(sum - 1) > 1e-3, 'sigmoid weights do not sum to 1');
  const soft = compare({ heads: 2, kvHeads: 1, tokens: 10, rows: 2 }, { scale: 0.35, window: null, kernel: softmax });
  assert.ok(Math.abs(soft.weights[0][1].reduce((a, x) => a + x, 0) - 1) < 1e-9);
  assert.equal(parseKernel('sigmoid', { maxPositions: 8192 }).name, 'sigmoid');
  assert.deepEqual(parseKernel('sigmoid', { maxPositions: 8192 }), { name: 'sigmoid', bias: -Math.log(8192) });
  assert.deepEqual(parseKernel('sigmoid:bias=-3', { maxPositions: 8192 }), { name: 'sigmoid', bias: -3 });
  assert.throws(() => parseKernel('sigmoid:b=1', { maxPositions: 1 }), /no option 'b'/);
  assert.throws(() => parseKernel('cosine', { maxPositions: 1 }), /unknown attention kernel/);
});

test('an observer cannot read a kernel without probabilities', () => {
  const { layer, qPos } = layerFor({ heads: 2, kvHeads: 1, tokens: 4, rows: 1 }, 8);
  const q = uniformArray(16, 1);
  assert.throws(() => attention(q, 1, 2, layer, qPos, { layer: 0, scale: 1, window: null, kernel: sigmoid, observer: { observe() {} } }, new Float32Array(16)),
    /no probabilities/);
});
