/**
 * ACT (heads/act-calibration.ts, heads/act-search.ts): the calibration rule worked by hand on a constructed head,
 * the same as a line-by-line transcription of the official torch rule on a random map, the model wrapper (β = 1 is
 * the model itself, batches as single sequences, decoding, the sinks it detects are the sinks probe's), calibration
 * files, and a small head search on attend-mini.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LayerCache } from '../../src/cache/kv-cache.js';
import { uniformArray } from '../../src/generate/random.js';
import { prefill } from '../../src/generate/prefill.js';
import { calibratedHead, readActCalibration, withActCalibration } from '../../src/heads/act-calibration.js';
import { actSearch, officialLayers } from '../../src/heads/act-search.js';
import { promptSinks } from '../../src/heads/sinks.js';
import { loadModel } from '../../src/models/load.js';
import { PARITY_DIR } from '../helpers/fixtures.js';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) => {
  assert.equal(a.length, b.length, `${what}: lengths`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  assert.ok(worst <= tol, `${what}: max |Δ| ${worst} > ${tol}`);
};

/** One KV head of d = 1: keys 0 (q = 0 makes every row uniform), values 1, 10, 100 at positions 0, 1, 2. */
function uniformHead() {
  const layer = LayerCache.empty(1, 1, 'f32');
  layer.heads[0].append(Float32Array.from([0, 0, 0]), Float32Array.from([1, 10, 100]), Int32Array.from([0, 1, 2]), 0, 1);
  return layer.heads[0];
}

test('the rule by hand: uniform rows over 3 keys, β = 0.4', () => {
  // Rows [1], [½, ½], [⅓, ⅓, ⅓]: mean received 0.611, 0.417, 0.333, all above 0.1; key 0 passes first and is left out.
  const q = Float32Array.from([0, 0, 0]);
  const a = calibratedHead(q, [0, 1, 2], uniformHead(), 1, null, 0.4, 0.1);
  assert.deepEqual(a.sinks, [1, 2]);
  // Row 1: key 1 keeps 0.4·½ = 0.2, key 0 gets ½ + 0.6·½ = 0.8 → 0.8 + 2 = 2.8. Row 2: keys 1, 2 keep 0.4/3 each, key 0
  // gets ⅓ + 0.6·⅔ = 0.7333 → 0.7333 + 1.3333 + 13.333 = 15.4. Row 0 sees only key 0.
  close(a.out, [1, 2.8, 15.4], 1e-6, 'threshold 0.1');
  // Threshold 0.4: keys 0 and 1 pass, only 1 is a sink. Row 2: key 1 keeps 0.4/3, keys 0 and 2 get ⅓ + 0.6·⅓·½ = 0.4333 each.
  const b = calibratedHead(q, [0, 1, 2], uniformHead(), 1, null, 0.4, 0.4);
  assert.deepEqual(b.sinks, [1]);
  close(b.out, [1, 2.8, 0.4333333 + 1.3333333 + 43.333333], 1e-5, 'threshold 0.4');
  // β = 1 leaves the rows as they are: plain attention.
  close(calibratedHead(q, [0, 1, 2], uniformHead(), 1, null, 1, 0.1).out, [1, 5.5, 37], 1e-6, 'β = 1');
  // A sliding window of 2: row 2 sees keys 1 and 2 only; each is seen by 2 and 1 rows.
  const w = calibratedHead(q, [0, 1, 2], uniformHead(), 1, 2, 1, 0.1);
  close(w.out, [1, 5.5, 55], 1e-6, 'window');
});

/**
 * The official atten_process_eval on one head's prefill map a [N × N] (rows sum to 1, causal), transcribed step by
 * step in plain loops: column sums / arange(N, 0, -1) > thres, indices[1:]; available = a[:, idx].sum(1)·(1 − β);
 * a[:, idx] *= β; copy with rows 1: of idx zeroed, ratios = copy / copy.sum(1); a += available·ratios; a[0][0] = 1.
 */
function officialRule(a: number[][], beta: number, thres: number): number[][] {
  const n = a.length;
  const col = Array.from({ length: n }, (_, k) => a.reduce((s, row) => s + row[k], 0) / (n - k));
  const idx = col.flatMap((m, k) => (m > thres ? [k] : [])).slice(1);
  const copy = a.map((row) => [...row]);
  const available = a.map((row) => idx.reduce((s, k) => s + row[k], 0) * (1 - beta));
  const out = a.map((row) => row.map((x, k) => (idx.includes(k) ? x * beta : x)));
  for (let r = 1; r < n; r++) for (const k of idx) copy[r][k] = 0;
  for (let r = 0; r < n; r++) {
    const sum = copy[r].reduce((s, x) => s + x, 0);
    for (let k = 0; k < n; k++) out[r][k] += available[r] * (copy[r][k] / sum);
  }
  out[0][0] = 1;
  return out;
}

test('the same as the official rule transcribed, on a random head of 12 tokens (prefill from position 0)', () => {
  const n = 12;
  const d = 4;
  const keys = uniformArray(n * d, 3).map((x) => 4 * x - 2);
  const values = uniformArray(n * d, 4);
  const q = uniformArray(n * d, 5).map((x) => 4 * x - 2);
  const layer = LayerCache.empty(1, d, 'f32');
  layer.heads[0].append(keys, values, Int32Array.from({ length: n }, (_, i) => i), 0, d);
  const scale = 0.5;
  for (const [beta, thres] of [[0.4, 0.1], [0.4, 0.15], [0, 0.2]]) {
    // The map itself, as softmax(q·k·scale) under the causal mask.
    const map = Array.from({ length: n }, (_, r) => {
      const s = Array.from({ length: n }, (_, k) => (k <= r ? Array.from({ length: d }, (_, x) => q[r * d + x] * keys[k * d + x]).reduce((a, b) => a + b) * scale : -Infinity));
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const z = e.reduce((a, b) => a + b);
      return e.map((x) => x / z);
    });
    const want = officialRule(map, beta, thres).map((row) => Array.from({ length: d }, (_, x) => row.reduce((s, w, k) => s + w * values[k * d + x], 0))).flat();
    const got = calibratedHead(q, Int32Array.from({ length: n }, (_, i) => i), layer.heads[0], scale, null, beta, thres);
    close(got.out, want, 1e-5, `β ${beta}, threshold ${thres}`);
  }
});

test('the wrapper on llama-gqa-tied: β = 1 is the model, batches are single sequences, decoding runs, errors', () => {
  const lm = loadModel(join(PARITY_DIR, 'llama-gqa-tied'));
  const ids = Array.from({ length: 20 }, (_, i) => (i * 37 + 3) % lm.config.vocabSize);
  const heads = [{ layer: 0, head: 1 }, { layer: 1, head: 2 }];
  const plain = lm.model.forward(ids, lm.model.makeCache()).f32;
  const identity = withActCalibration(lm.model, { method: 'act', beta: 1, threshold: 0.1, heads });
  close(identity.forward(ids, identity.makeCache()).f32, plain, 1e-4, 'β = 1');
  const seen: string[] = [];
  const act = withActCalibration(lm.model, { method: 'act', beta: 0.4, threshold: 0.1, heads }, { onSinks: (l, h, s) => seen.push(`${l}.${h}:${s.length}`) });
  const one = act.forward(ids, act.makeCache()).f32;
  assert.ok(one.some((x, i) => Math.abs(x - plain[i]) > 1e-3), 'calibration changes the logits');
  assert.deepEqual(seen.map((s) => s.split(':')[0]), ['0.1', '1.2']);
  // Two sequences in one batch give what each gives alone.
  const other = ids.slice(0, 13).reverse();
  const alone = act.forward(other, act.makeCache()).f32;
  const [a, b] = act.forwardBatch([{ ids, cache: act.makeCache() }, { ids: other, cache: act.makeCache() }]);
  close(lm.model.backend.read(a), one, 1e-5, 'batch, first');
  close(lm.model.backend.read(b), alone, 1e-5, 'batch, second');
  // Decoding: one row per step, detected on that row.
  const cache = act.makeCache();
  prefill(act, cache, ids);
  assert.ok(act.forward([5], cache, { lastOnly: true }).f32.every(Number.isFinite));
  assert.throws(() => withActCalibration(lm.model, { method: 'act', beta: 0.4, threshold: 0.1, heads: [{ layer: 2, head: 0 }] }), /not one of the model's 2 layers × 4/);
  assert.throws(() => withActCalibration(lm.model, { method: 'act', beta: 1.5, threshold: 0.1, heads }), /beta must be in \[0, 1\]/);
  assert.throws(() => act.forward(ids, act.makeCache(), { select: () => undefined }), /selector/);
  const dir = mkdtempSync(join(tmpdir(), 'act-'));
  const file = join(dir, 'act.json');
  writeFileSync(file, JSON.stringify({ method: 'act', beta: 0.4, threshold: 0.1, heads }));
  assert.deepEqual(readActCalibration(file).heads, heads);
  writeFileSync(file, JSON.stringify({ heads }));
  assert.throws(() => readActCalibration(file), /not an ACT calibration/);
  assert.throws(() => readActCalibration(join(dir, 'none.json')), /does not exist/);
});

test('attend-mini: the calibration detects the sinks probe\'s sinks, and a small search returns a calibration', () => {
  const lm = loadModel(new URL('../../models/attend-mini', import.meta.url).pathname);
  const ids = lm.tokenizer.encode('Question: Which planet is closest to the sun?\nA. Venus\nB. Mercury\nC. Mars\nD. Earth\nAnswer:');
  const probe = promptSinks(lm, ids);
  // A head with hidden sinks, and one without (if any): the calibration's detection over the same prompt agrees.
  const flat = probe.sinks.flatMap((layer, l) => layer.map((s, h) => ({ layer: l, head: h, sinks: s.map((x) => x.position) })));
  const picked = [flat.find((x) => x.sinks.length > 0)!, ...flat.filter((x) => x.sinks.length === 0).slice(0, 1)];
  const detected = new Map<string, number[]>();
  const act = withActCalibration(lm.model, { method: 'act', beta: 0.4, threshold: 0.1, heads: picked }, { onSinks: (l, h, s) => detected.set(`${l}.${h}`, s) });
  const logits = prefill(act, act.makeCache(), ids, { chunkSize: ids.length });
  for (const h of picked) assert.deepEqual(detected.get(`${h.layer}.${h.head}`), h.sinks, `${h.layer}.${h.head}`);
  assert.ok(logits.every(Number.isFinite));

  assert.deepEqual(officialLayers(32), Array.from({ length: 29 }, (_, i) => i + 2), 'Llama-2-7B: layers 2 … 30');
  assert.deepEqual(officialLayers(8), [2, 3, 4, 5, 6]);
  const found = actSearch(lm, { task: 'niah_single', length: 128, samples: 2, layers: [3], evalSamples: 1 });
  assert.equal(found.method, 'act');
  assert.equal(found.search.candidates.length, 8);
  assert.deepEqual(found.heads, found.search.candidates.filter((c) => c.kept).map(({ layer, head }) => ({ layer, head })));
  for (const c of found.search.candidates) if (c.kept) assert.ok(c.accuracy > found.search.baseline.accuracy);
  assert.equal(found.search.evaluation?.full.n, 1);
});
