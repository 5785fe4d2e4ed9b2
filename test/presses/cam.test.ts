/**
 * CaM (kvpress's CAMPress, src/presses/cam.ts): hand-worked merges, the candidate and window rules, and sessions
 * on the parity checkpoint checked against a direct f64 re-computation of the whole rule (per-step attention from
 * the recorded queries and the cached keys, the schedule, the mean key-norm scores, the candidates, the windows,
 * the merge probabilities with the same uniform draws, the merged values).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AttentionObserver } from '../../src/backend/backend.js';
import type { KVCache } from '../../src/cache/kv-cache.js';
import { AttendError } from '../../src/errors.js';
import { prefill } from '../../src/generate/prefill.js';
import { Random } from '../../src/generate/random.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import { CAM_ATTENTION, CAM_DEFAULTS, camMergeHead, CamPress, mergeCandidates, windowStarts } from '../../src/presses/cam.js';
import { KnormPress } from '../../src/presses/knorm.js';
import type { Press } from '../../src/presses/press.js';
import { createPress, pressEntry, resolveOptions } from '../../src/presses/registry.js';
import { type CompressionPlan, CompressionSession } from '../../src/presses/runner.js';
import { argmax } from '../helpers/argmax.js';
import { PARITY_DIR } from '../helpers/fixtures.js';

const lm = loadModel(join(PARITY_DIR, 'llama-gqa-tied'));
const { numHeads, numKvHeads, headDim: d, numLayers } = lm.config;
const group = numHeads / numKvHeads;
const ids = Array.from({ length: 40 }, (_, i) => (i * 53 + 7) % lm.config.vocabSize);
const PROMPT = ids.length;
const userError = (pattern: RegExp) => (e: unknown) => e instanceof AttendError && pattern.test(e.message) && !e.message.includes('\n');
const TMP = mkdtempSync(join(tmpdir(), 'attend-cam-'));

/** A file of `n` uniform draws (f32 LE) from `seed`, the layout cam.ts reads; returns its path and the draws. */
function drawsFile(name: string, n: number, seed: number): { path: string; draws: Float32Array } {
  const rng = new Random(seed);
  const draws = Float32Array.from({ length: n }, () => rng.next());
  const path = join(TMP, name);
  writeFileSync(path, Buffer.from(draws.buffer));
  return { path, draws };
}

// ---------------------------------------------------------------- the pieces, by hand

test('cam: merge candidates are the evicted entries with the highest mean scores, ties to the later entry', () => {
  const mean = Float32Array.from([5, 1, 3, 3, 9, 2, 3, 8]);
  const kept = Int32Array.from([0, 4, 7]);
  // Evicted 1 (1), 2 (3), 3 (3), 5 (2), 6 (3): the three 3s tie, the later first.
  assert.deepEqual(Array.from(mergeCandidates(mean, kept, 1)), [6]);
  assert.deepEqual(Array.from(mergeCandidates(mean, kept, 2)), [3, 6]);
  assert.deepEqual(Array.from(mergeCandidates(mean, kept, 4)), [2, 3, 5, 6]);
  assert.deepEqual(Array.from(mergeCandidates(mean, kept, 9)), [1, 2, 3, 5, 6], 'k beyond the evicted: all of them');
});

test('cam: a window starts at the first kept entry after the evicted one (searchsorted, right)', () => {
  const kept = Int32Array.from([0, 2, 3, 7]);
  assert.deepEqual(Array.from(windowStarts(kept, Int32Array.from([1, 4, 5, 6, 8]))), [1, 3, 3, 3, 4]);
});

test('cam: the hand-worked merge (probabilities, windows cut at the end, 0/0 and x/0)', () => {
  // 8 entries, d = 2; kept 0, 2, 3, 5, 7; merging 1, 4, 6; merge budget 2.
  const values = Float32Array.from([1, 1, 10, 20, 2, 2, 3, 3, 40, 80, 5, 5, 60, 60, 7, 7]);
  const attention = Float32Array.from([1, 0.5, 1, 3, 2, 1, 4, 2]);
  const kept = Int32Array.from([0, 2, 3, 5, 7]);
  const merges = Int32Array.from([1, 4, 6]);
  // Entry 1: window 2, 3 (A 1, 3: mean 2) → p = 0.25. Entry 4: window 5, 7 (A 1, 2: mean 1.5) → p = 1 (clamped).
  // Entry 6: window 7 alone (b = 1, A 2) → p = 1 (clamped from 2).
  const at = (u: number[]) => camMergeHead(values, 2, attention, kept, merges, 2, u);
  assert.equal(at([0.25, 1, 1]), null, 'u = p does not merge; u = 1 never does');
  const one = at([0.2499, 1, 1])!;
  assert.deepEqual(Array.from(one.indices), [2, 3]);
  assert.deepEqual(Array.from(one.values), [2 + 5, 2 + 10, 3 + 5, 3 + 10], 'v₁ / 2 added to both');
  const all = at([0, 0.999, 0.999])!;
  assert.deepEqual(Array.from(all.indices), [2, 3, 5, 7]);
  // 5 gets v₄/2; 7 gets v₄/2 and then v₆/1 (b = 1: only 7 follows 6).
  assert.deepEqual(Array.from(all.values), [7, 12, 8, 13, 25, 45, 7 + 20 + 60, 7 + 40 + 60]);

  // x/0 → 1 but b = 0 (nothing kept after it): no merge; 0/0 → 0: never merges, not even with u = 0.
  const tail = camMergeHead(values, 2, attention, Int32Array.from([0, 2]), Int32Array.from([5]), 4, [0]);
  assert.equal(tail, null, 'an entry after the last kept one has no window');
  const zeros = new Float32Array(8);
  assert.equal(camMergeHead(values, 2, zeros, kept, merges, 2, [0, 0, 0]), null, '0 / 0 is probability 0');
  // A window whose attention is all 0 under an entry with attention: x / 0 → probability 1.
  const lone = Float32Array.from([0, 1, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(Array.from(camMergeHead(values, 2, lone, kept, Int32Array.from([1]), 2, [0.9999])!.indices), [2, 3]);
});

test('cam: the registry entry has kvpress\'s defaults and takes no budget', () => {
  const entry = pressEntry('cam');
  const o = resolveOptions(entry, {});
  assert.deepEqual(
    [o.scorer, o['compression-interval'], o['target-size'], o['hidden-states-buffer-size'], o['merge-budget'], o.seed, o.draws],
    ['knorm', 512, 2048, 256, 32, 0, ''],
  );
  assert.deepEqual(CAM_DEFAULTS, { interval: 512, targetSize: 2048, bufferSize: 256, mergeBudget: 32, seed: 0, draws: '' });
  assert.equal(entry.sizesItself, true);
  assert.deepEqual(entry.decode?.(o), { every: 1 }, 'the press keeps its own count: offered every step');
  const press = createPress('cam', {});
  assert.equal(press.name, 'cam(knorm)');
  assert.throws(() => new CompressionSession({ press, budget: { ratio: 0.5 } }, lm.model, newCache(lm.config)), userError(/sets its own size/));
});

test('cam: bad options are one-line errors', () => {
  assert.throws(() => createPress('cam', { 'merge-budget': 0 }), userError(/cam: merge-budget must be a whole number ≥ 1/));
  assert.throws(() => createPress('cam', { 'compression-interval': 0 }), userError(/cam: compression-interval/));
  assert.throws(() => createPress('cam', { 'target-size': 0 }), userError(/cam: target-size/));
  assert.throws(() => createPress('cam', { scorer: 'adakv' }), userError(/cam: scorer .* selects its own entries/));
  assert.throws(() => createPress('cam', { scorer: 'decoding' }), userError(/cam: scorer decoding\(knorm\) selects its own entries/));
  assert.throws(() => createPress('cam', { scorer: 'merging' }), userError(/cam: scorer .* changes the cache/));
  assert.throws(() => createPress('cam', { draws: join(TMP, 'missing.f32') }), userError(/cam: cannot read the draws file/));
  const odd = join(TMP, 'odd.f32');
  writeFileSync(odd, Buffer.from([1, 2, 3]));
  assert.throws(() => createPress('cam', { draws: odd }), userError(/not f32 values/));
});

// ---------------------------------------------------------------- sessions on the model, against a re-computation

interface Run {
  cache: KVCache;
  session: CompressionSession;
  /** Per decoding step: every layer's query row, and the cache at its fullest (before the step's compression). */
  steps: { queries: Float32Array[]; keys: Float32Array[][]; values: Float32Array[][]; positions: Int32Array[][] }[];
  /** After each step's compression: positions and values per layer and head. */
  after: { positions: Int32Array[][]; values: Float32Array[][] }[];
  /** The scores the press gave each layer at each step (press.score's output). */
  scores: Float32Array[][][];
}

function run(press: Press, steps: number, decode: CompressionPlan['decode'], chunk?: number): Run {
  const cache = newCache(lm.config);
  const session = new CompressionSession({ press, decode, during: chunk ? 'chunks' : 'prefill' }, lm.model, cache);
  const out: Run = { cache, session, steps: [], after: [], scores: [] };
  const score = press.score.bind(press);
  press.score = (view) => {
    const s = score(view);
    if (out.steps.length > 0) (out.scores[out.steps.length - 1] ??= [])[view.layer] = s.map((x) => x.slice());
    return s;
  };
  let queries: Float32Array[] = [];
  const inner = session.observer;
  const tee: AttentionObserver = {
    accumulate: inner.accumulate,
    tokens: inner.tokens?.bind(inner),
    observe: inner.observe?.bind(inner),
    queries(layer, q, pos) {
      inner.queries?.(layer, q, pos);
      queries[layer] = q.slice((pos.length - 1) * numHeads * d);
    },
  };
  let logits = prefill(lm.model, cache, ids, { chunkSize: chunk, observer: tee, afterChunk: (_, end) => session.afterChunk(end, PROMPT) });
  for (let s = 0; s < steps; s++) {
    queries = [];
    logits = lm.model.forward([argmax(logits)], cache, { lastOnly: true, observer: tee }).f32;
    out.steps.push({
      queries,
      keys: cache.layers.map((l) => l.heads.map((h) => h.keys(0, h.length).slice())),
      values: cache.layers.map((l) => l.heads.map((h) => h.values(0, h.length).slice())),
      positions: cache.layers.map((l) => l.heads.map((h) => h.positions.slice())),
    });
    session.afterDecodeStep();
    out.after.push({
      positions: cache.layers.map((l) => l.heads.map((h) => h.positions.slice())),
      values: cache.layers.map((l) => l.heads.map((h) => h.values(0, h.length).slice())),
    });
  }
  return out;
}

interface Reference {
  /** Steps (1-based) at which each layer was compressed. */
  compressed: number[][];
  positions: number[][][][];
  values: Float64Array[][][][];
  merged: number;
  declined: number;
  /** The running attention sums at the end, by layer, head and position. */
  attention?: Map<number, number>[][];
}

/**
 * The rule recomputed in f64 from the run's queries and cached keys: per-step attention (softmax of q·k/√d, mean
 * over the group) summed per entry from the first decoding step; the compression when `interval` tokens came and
 * the layer holds more than `target`; the kept entries by the mean over heads of −‖k‖ (f64) — the order taken from
 * the press's own f32 scores, which must equal these within 1e-5; k candidates; windows of `budget` kept entries;
 * p = A_e / mean A; the merge when the draw is below p; v_e / b added. Values start from the run's (the model's).
 */
function reference(r: Run, o: { interval: number; target: number; budget: number }, draws: Float32Array): Reference {
  const ref: Reference = { compressed: [], positions: [], values: [], merged: 0, declined: 0 };
  let drawAt = 0;
  const A = Array.from({ length: numLayers }, () => Array.from({ length: numKvHeads }, () => new Map<number, number>()));
  const V = Array.from({ length: numLayers }, () => Array.from({ length: numKvHeads }, () => new Map<number, Float64Array>()));
  const fresh = new Array(numLayers).fill(0);
  for (let l = 0; l < numLayers; l++) ref.compressed[l] = [];
  ref.attention = A;
  r.steps.forEach((step, s) => {
    ref.positions[s] = [];
    ref.values[s] = [];
    for (let l = 0; l < numLayers; l++) {
      const q = step.queries[l];
      const positions = step.positions[l][0];
      const n = positions.length;
      for (let g = 0; g < numKvHeads; g++) {
        assert.deepEqual(step.positions[l][g], positions, 'every head holds the same entries');
        const keys = step.keys[l][g];
        // Values: the newest entry's as the model made it, the others the reference's own.
        const newest = positions[n - 1];
        V[l][g].set(newest, Float64Array.from(step.values[l][g].subarray((n - 1) * d, n * d)));
        if (s === 0) positions.forEach((p, i) => V[l][g].set(p, Float64Array.from(step.values[l][g].subarray(i * d, (i + 1) * d))));
        const mean = new Float64Array(n);
        for (let j = 0; j < group; j++) {
          const h = g * group + j;
          const logit = Array.from({ length: n }, (_, i) => {
            let x = 0;
            for (let c = 0; c < d; c++) x += q[h * d + c] * keys[i * d + c];
            return x / Math.sqrt(d);
          });
          const m = Math.max(...logit);
          const e = logit.map((x) => Math.exp(x - m));
          const z = e.reduce((a, b) => a + b);
          e.forEach((x, i) => (mean[i] += x / z / group));
        }
        positions.forEach((p, i) => A[l][g].set(p, (A[l][g].get(p) ?? 0) + mean[i]));
      }
      fresh[l]++;
      // kvpress also compresses at every step when target_size is 1 (a forward of q_len ≥ target_size).
      if ((fresh[l] >= o.interval && n > o.target) || (o.target === 1 && n > 1)) {
        const k = fresh[l];
        fresh[l] = 0;
        ref.compressed[l].push(s + 1);
        // −‖k‖ averaged over the heads, in f64, checked against the press's scores.
        const score = Array.from({ length: n }, (_, i) => {
          let total = 0;
          for (let g = 0; g < numKvHeads; g++) {
            let sq = 0;
            for (let c = 0; c < d; c++) sq += step.keys[l][g][i * d + c] ** 2;
            total -= Math.sqrt(sq);
          }
          return total / numKvHeads;
        });
        const given = r.scores[s][l];
        for (const row of given) score.forEach((x, i) => assert.ok(Math.abs(row[i] - x) < 1e-5, `step ${s + 1} layer ${l}: score ${row[i]} vs ${x}`));
        const f32 = given[0];
        const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => f32[b] - f32[a] || a - b);
        const kept = order.slice(0, o.target).sort((a, b) => a - b);
        const evicted = order.slice(o.target);
        // The k = tokens since the last compression highest-scored evicted entries, ties to the later one.
        const merges = [...evicted].sort((a, b) => f32[b] - f32[a] || b - a).slice(0, k).sort((a, b) => a - b);
        for (let g = 0; g < numKvHeads; g++) {
          const add = new Map<number, Float64Array>();
          for (const e of merges) {
            const start = kept.findIndex((k) => k > e);
            const window = start < 0 ? [] : kept.slice(start, start + o.budget);
            const u = draws[drawAt++];
            if (window.length === 0) continue;
            const avg = window.reduce((a, k) => a + A[l][g].get(positions[k])!, 0) / window.length;
            const p = Math.min(1, A[l][g].get(positions[e])! / avg);
            if (!(u < p)) {
              ref.declined++;
              continue;
            }
            ref.merged++;
            const ve = V[l][g].get(positions[e])!;
            for (const k of window) {
              const row = add.get(k) ?? new Float64Array(d);
              for (let c = 0; c < d; c++) row[c] += ve[c] / window.length;
              add.set(k, row);
            }
          }
          for (const [k, row] of add) {
            const v = V[l][g].get(positions[k])!;
            for (let c = 0; c < d; c++) v[c] += row[c];
          }
          const keepSet = new Set(kept.map((k) => positions[k]));
          for (const p of [...A[l][g].keys()]) if (!keepSet.has(p)) (A[l][g].delete(p), V[l][g].delete(p));
        }
        // The draws: per layer compression, KV head major (the loop above takes them head by head).
      }
      ref.positions[s][l] = Array.from({ length: numKvHeads }, (_, g) => [...V[l][g].keys()].sort((a, b) => a - b));
      ref.values[s][l] = Array.from({ length: numKvHeads }, (_, g) => ref.positions[s][l][g].map((p) => V[l][g].get(p)!.slice()));
    }
  });
  return ref;
}

function checkAgainstReference(r: Run, ref: Reference, what: string): void {
  r.cache.layers.forEach((layer, l) =>
    layer.heads.forEach((head, g) => {
      const sums = head.stat(CAM_ATTENTION);
      head.positions.forEach((p, i) => {
        const want = ref.attention![l][g].get(p)!;
        assert.ok(Math.abs(sums[i] - want) < 1e-5, `${what}: layer ${l} head ${g} position ${p}: running attention ${sums[i]} vs ${want}`);
      });
    }),
  );
  r.after.forEach((after, s) => {
    for (let l = 0; l < numLayers; l++) {
      for (let g = 0; g < numKvHeads; g++) {
        assert.deepEqual(Array.from(after.positions[l][g]), ref.positions[s][l][g], `${what}: step ${s + 1} layer ${l} head ${g}: kept positions`);
        const got = after.values[l][g];
        ref.values[s][l][g].forEach((row, i) => {
          for (let c = 0; c < d; c++) {
            assert.ok(Math.abs(got[i * d + c] - row[c]) < 1e-5 * Math.max(1, Math.abs(row[c])),
              `${what}: step ${s + 1} layer ${l} head ${g} entry ${i}: value ${got[i * d + c]} vs ${row[c]}`);
          }
        });
      }
    }
  });
}

test('cam on the model: schedule, kept entries and merged values equal the f64 re-computation', () => {
  const o = { interval: 3, target: 24, budget: 4 };
  const { path, draws } = drawsFile('model.f32', 4096, 5);
  const press = createPress('cam', { 'compression-interval': o.interval, 'target-size': o.target, 'merge-budget': o.budget, draws: path });
  const r = run(press, 12, pressEntry('cam').decode!({}));
  const ref = reference(r, o, draws);
  assert.deepEqual(ref.compressed, [[3, 6, 9, 12], [3, 6, 9, 12]]);
  assert.ok(ref.merged > 4 && ref.declined > 4, `the draws both merged (${ref.merged}) and declined (${ref.declined}) entries`);
  checkAgainstReference(r, ref, 'interval 3');
  assert.equal(r.session.stats.compressions, 4);

  // Offered only every `interval` steps, the press does the same (the layers always exceed the target then).
  const again = run(createPress('cam', { 'compression-interval': o.interval, 'target-size': o.target, 'merge-budget': o.budget, draws: path }), 12, { every: 3 });
  assert.deepEqual(again.after, r.after);
  // A prefill compressed per chunk (offered to the press after every chunk of 8) is not compressed either, and the
  // chunks' attention is not summed (the chunked prefill's keys differ from the whole one's in the last bits).
  const chunked = run(createPress('cam', { 'compression-interval': o.interval, 'target-size': o.target, 'merge-budget': o.budget, draws: path }), 12, { every: 1 }, 8);
  const chunkedRef = reference(chunked, o, draws);
  assert.deepEqual(chunkedRef.compressed, ref.compressed);
  checkAgainstReference(chunked, chunkedRef, 'chunked prefill');
});

test('cam on the model: the count goes on while a layer is within the target (kvpress), then it compresses at once', () => {
  // 40 + 4 steps = 44 = the target: at step 3 the layers are within it (no compression, the count goes on), at step 5
  // they pass it with 5 tokens since the prefill: compressed at once, then every 3 steps (a count restarted at step
  // 3 would compress at 6, 9, 12).
  const o = { interval: 3, target: 44, budget: 32 };
  const { path, draws } = drawsFile('within.f32', 4096, 9);
  const r = run(createPress('cam', { 'compression-interval': o.interval, 'target-size': o.target, draws: path }), 12, { every: 1 });
  const ref = reference(r, o, draws);
  assert.deepEqual(ref.compressed, [[5, 8, 11], [5, 8, 11]]);
  checkAgainstReference(r, ref, 'target 44');
});

test('cam on the model: target-size 1 compresses at every step, whatever the interval (kvpress: q_len ≥ target_size)', () => {
  const o = { interval: 5, target: 1, budget: 32 };
  const { path, draws } = drawsFile('one.f32', 4096, 11);
  const r = run(createPress('cam', { 'compression-interval': o.interval, 'target-size': o.target, draws: path }), 4, { every: 1 });
  const ref = reference(r, o, draws);
  assert.deepEqual(ref.compressed, [[1, 2, 3, 4], [1, 2, 3, 4]]);
  checkAgainstReference(r, ref, 'target 1');
});

test("cam on the model: a question run in one forward is one step, with its last token's attention (kvpress's pipeline)", () => {
  const o = { 'compression-interval': 3, 'target-size': 24, 'merge-budget': 4, seed: 1 };
  const setup = (options: Record<string, number>) => {
    const cache = newCache(lm.config);
    const session = new CompressionSession({ press: createPress('cam', options), decode: { every: 1 } }, lm.model, cache);
    const last: Float32Array[] = [];
    const inner = session.observer;
    const tee: AttentionObserver = {
      accumulate: inner.accumulate,
      observe: inner.observe?.bind(inner),
      queries(layer, q, pos) {
        inner.queries?.(layer, q, pos);
        last[layer] = q.slice((pos.length - 1) * numHeads * d);
      },
    };
    prefill(lm.model, cache, ids.slice(0, 35), { observer: tee, afterChunk: (_, end) => session.afterChunk(end, 35) });
    // A query-agnostic question: five tokens in one forward, no compression step.
    let logits = lm.model.forward(ids.slice(35), cache, { lastOnly: true, observer: tee }).f32;
    const step = () => {
      logits = lm.model.forward([argmax(logits)], cache, { lastOnly: true, observer: tee }).f32;
      session.afterDecodeStep();
      return cache.layers.map((l) => l.heads[0].length);
    };
    return { cache, last, step };
  };
  const { cache, last, step } = setup(o);
  // The sums hold the attention of the question's last token only (f64: softmax of q·k/√d, mean over the group).
  cache.layers.forEach((layer, l) =>
    layer.heads.forEach((head, g) => {
      const keys = head.keys(0, head.length);
      const want = new Float64Array(head.length);
      for (let j = 0; j < group; j++) {
        const h = g * group + j;
        const logit = Array.from({ length: head.length }, (_, i) => {
          let x = 0;
          for (let c = 0; c < d; c++) x += last[l][h * d + c] * keys[i * d + c];
          return x / Math.sqrt(d);
        });
        const m = Math.max(...logit);
        const e = logit.map((x) => Math.exp(x - m));
        const z = e.reduce((a, b) => a + b);
        e.forEach((x, i) => (want[i] += x / z / group));
      }
      const sums = head.stat(CAM_ATTENTION);
      want.forEach((x, i) => assert.ok(Math.abs(sums[i] - x) < 1e-5, `layer ${l} head ${g} entry ${i}: ${sums[i]} vs ${x}`));
    }),
  );
  // The question is step 1: decoding step 1 is step 2 (no compression), decoding step 2 is step 3 (compressed).
  assert.deepEqual(step(), new Array(numLayers).fill(41));
  assert.deepEqual(step(), new Array(numLayers).fill(24));
  // A step of at least target-size tokens (the five-token question, target 5) compresses at the next step (kvpress:
  // within that forward), whatever the interval.
  const wide = setup({ ...o, 'compression-interval': 100, 'target-size': 5 });
  assert.deepEqual(wide.step(), new Array(numLayers).fill(5));
  assert.deepEqual(wide.step(), new Array(numLayers).fill(6), 'then the interval again');
});

test('cam on the model: only decoding attention is summed, per step the mean over the group', () => {
  const o = { interval: 100, target: 100, budget: 32 };
  const r = run(new CamPress(new KnormPress(), { ...CAM_DEFAULTS, interval: o.interval, targetSize: o.target }), 2, { every: 1 });
  checkAgainstReference(r, reference(r, o, new Float32Array()), 'two steps');
  // Each step's attention sums to 1 over the entries: the sums hold two steps, none of the prefill's.
  for (const head of r.cache.layers.flatMap((l) => l.heads)) {
    const total = head.stat(CAM_ATTENTION).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(total - 2) < 1e-5, `the sums hold two steps' attention (${total})`);
  }
  assert.equal(r.session.stats.compressions, 0);
});

test('cam: the seed decides the draws; a draws file too short is a one-line error', () => {
  const o = { 'compression-interval': 3, 'target-size': 24, 'merge-budget': 4 };
  const a = run(createPress('cam', { ...o, seed: 1 }), 6, { every: 1 });
  const b = run(createPress('cam', { ...o, seed: 1 }), 6, { every: 1 });
  const c = run(createPress('cam', { ...o, seed: 2 }), 6, { every: 1 });
  assert.deepEqual(a.after, b.after);
  assert.deepEqual(a.after.map((x) => x.positions), c.after.map((x) => x.positions), 'the draws never change what is kept');
  assert.notDeepEqual(a.after.map((x) => x.values), c.after.map((x) => x.values), 'another seed merges other entries');
  const { path } = drawsFile('short.f32', 3, 1);
  assert.throws(() => run(createPress('cam', { ...o, draws: path }), 3, { every: 1 }), userError(/cam: the draws file .* holds 3 values; compression 1 needs \d+/));
});
