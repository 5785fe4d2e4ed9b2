/**
 * The backend conformance suite: every Backend op, and whole models, checked against the reference backend
 * (src/backend/reference). It takes the backend under test as a parameter, so a CUDA or WebGPU backend reruns it
 * unchanged: `conformance('cuda', () => cudaBackend, { tolerance })`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend } from '../../src/backend/backend.js';
import { referenceBackend } from '../../src/backend/reference/index.js';
import { LayerCache } from '../../src/cache/kv-cache.js';
import { uniformArray } from '../../src/generate/random.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import { Tensor } from '../../src/tensor/tensor.js';

export interface ConformanceOptions {
  /** Largest |backend − reference| allowed, relative to max(1, |reference|). */
  tolerance?: number;
  /** Model directories whose logits must match the reference backend's within `modelTolerance`. */
  models?: string[];
  /** Largest |backend − reference| of the models' logits, relative to max(1, |reference|); 1e-4 unless given. */
  modelTolerance?: number;
  /**
   * Parts a backend does not offer yet, named so that its run says so instead of failing: 'remap' (remapped reads),
   * 'pruned-keys' (key-channel pruning).
   */
  without?: ('remap' | 'pruned-keys')[];
}

const ref = referenceBackend;

/** One layer of the backend's own KV memory. */
function layerOf(b: Backend, numKvHeads: number, headDim: number, dtype: 'f32' | 'bf16'): LayerCache {
  return b.createCache({ numLayers: 1, numKvHeads, headDim }, dtype).layers[0];
}

function t(rows: number, cols: number, seed: number, scale = 1): Tensor {
  return new Tensor([rows, cols], uniformArray(rows * cols, seed).map((x) => x * scale));
}

function close(got: Tensor | Float32Array, want: Tensor | Float32Array, tol: number, what: string): void {
  const a = got instanceof Tensor ? got.f32 : got;
  const b = want instanceof Tensor ? want.f32 : want;
  assert.equal(a.length, b.length, `${what}: ${a.length} elements, reference ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  assert.ok(worst <= tol, `${what}: max relative difference ${worst} > ${tol}`);
}

/** Rows [from, to) of a 2-D tensor, as a new tensor. */
function rowsOf(x: Tensor, from: number, to: number): Tensor {
  return new Tensor([to - from, x.cols], x.f32.slice(from * x.cols, to * x.cols));
}

/** Runs `op` on fresh copies of the inputs for both backends (ops may work in place). */
function both<R>(b: Backend, inputs: Tensor[], op: (be: Backend, xs: Tensor[]) => R): [R, R, Tensor[], Tensor[]] {
  const copy = () => inputs.map((x) => new Tensor(x.shape, x.f32.slice()));
  const mine = copy();
  const theirs = copy();
  return [b.scope(() => op(b, mine) as never) as R, op(ref, theirs), mine, theirs];
}

export function conformance(name: string, make: () => Backend, opts: ConformanceOptions = {}): void {
  const tol = opts.tolerance ?? 1e-5;
  const cases: [string, Tensor[], (be: Backend, xs: Tensor[]) => Tensor | Tensor[] | void][] = [
    ['linear', [t(5, 33, 1), t(17, 33, 2)], (be, [x, w]) => be.linear(x, w)],
    ['linear with bias', [t(3, 16, 3), t(8, 16, 4), t(1, 8, 5)], (be, [x, w, bias]) => be.linear(x, w, bias.reshape([8]))],
    ['embedding', [t(10, 12, 6)], (be, [table]) => be.embedding(table, [3, 0, 9, 3])],
    ['rmsNorm', [t(4, 24, 7, 3), t(1, 24, 8)], (be, [x, w]) => be.rmsNorm(x, w.reshape([24]), 1e-5)],
    ['addRmsNorm', [t(4, 24, 9), t(4, 24, 10), t(1, 24, 11)], (be, [x, d, w]) => [be.addRmsNorm(x, d, w.reshape([24]), 1e-6), x]],
    ['layerNorm', [t(3, 20, 12, 2), t(1, 20, 13), t(1, 20, 14)], (be, [x, w, bias]) => be.layerNorm(x, w.reshape([20]), bias.reshape([20]), 1e-5)],
    ['swiglu', [t(3, 2 * 11, 15, 4)], (be, [x]) => be.swiglu(x, 11)],
    ['gelu_new', [t(3, 30, 16, 5)], (be, [x]) => { be.gelu(x, 'gelu_new'); return x; }],
    ['gelu', [t(3, 30, 17, 5)], (be, [x]) => { be.gelu(x, 'gelu'); return x; }],
    ['add', [t(2, 9, 18), t(2, 9, 19)], (be, [a, b]) => { be.add(a, b); return a; }],
    ['fillColumns', [t(3, 10, 20)], (be, [x]) => { be.fillColumns(x, 2, 7, 0); return x; }],
    ['copy', [t(3, 4, 21), t(3, 4, 22)], (be, [a, b]) => { be.copy(a, b); return a; }],
    ['splitColumns', [t(3, 12, 23)], (be, [x]) => be.splitColumns(x, [5, 4, 3])],
    ['concatRows', [t(2, 6, 24), t(3, 6, 25)], (be, [a, b]) => be.concatRows([a, b])],
    ['sliceRows', [t(6, 5, 26)], (be, [x]) => be.sliceRows(x, 2, 5)],
    ['rope', [t(3, 2 * 16, 27)], (be, [x]) => {
      const cos = uniformArray(3 * 8, 28);
      const sin = uniformArray(3 * 8, 29);
      be.rope(x, 2, 16, { cos, sin });
      return x;
    }],
  ];
  for (const [op, inputs, run] of cases) {
    test(`${name} conforms: ${op}`, () => {
      const b = make();
      const [mine, theirs] = both(b, inputs, run);
      const list = (r: Tensor | Tensor[] | void) => (r === undefined ? [] : Array.isArray(r) ? r : [r]);
      const [m, r] = [list(mine), list(theirs)];
      assert.equal(m.length, r.length);
      m.forEach((x, i) => close(b.read(x), r[i], tol, `${op} output ${i}`));
    });
  }

  test(`${name} conforms: appendKv and attention (causal, window, entry lists, tree, sigmoid; f32 and bf16 caches)`, () => {
    const b = make();
    for (const dtype of ['f32', 'bf16'] as const) {
      const layers = [layerOf(b, 2, 8, dtype), LayerCache.empty(2, 8, dtype)];
      const positions = Int32Array.from({ length: 20 }, (_, i) => 2 * i);
      const k = t(20, 16, 30);
      const v = t(20, 16, 31);
      b.appendKv(layers[0], k, v, positions);
      ref.appendKv(layers[1], k, v, positions);
      assert.deepEqual(Array.from(layers[0].heads[1].keys(0, 20)), Array.from(layers[1].heads[1].keys(0, 20)));
      const q = t(4, 32, 32, 2);
      const qPos = positions.subarray(16);
      const variants = [
        { window: null },
        { window: 7 },
        { window: null, entries: [Int32Array.from([0, 3, 4, 17, 18, 19]), null] },
        { window: null, queryEntries: [Int32Array.from([0, 19]), null, Int32Array.from([2, 3, 4, 19]), Int32Array.from([18, 19])] },
        { window: null, tree: { parents: Int32Array.from([-1, 0, 0, 1]) } },
        { window: 9, kernel: { name: 'sigmoid' as const, bias: -2 } },
      ];
      for (const vis of variants) {
        const opts = { layer: 0, scale: 0.3, ...vis };
        close(b.read(b.scope(() => b.attention(q, layers[0], qPos, opts))), ref.attention(q, layers[1], qPos, opts), tol, `attention ${dtype} ${JSON.stringify(vis)}`);
      }
      // Statistics accumulated where the probabilities are computed, and the ops presses score by.
      const accumulate = { sum: 'sum', count: 'count' };
      for (const vis of variants.slice(0, 4)) {
        const opts = { layer: 0, scale: 0.3, ...vis, observer: { accumulate } };
        b.scope(() => b.attention(q, layers[0], qPos, opts));
        ref.attention(q, layers[1], qPos, opts);
      }
      layers[0].heads.forEach((h, i) => {
        close(h.stat('sum'), layers[1].heads[i].stat('sum'), tol, `accumulated attention, head ${i}`);
        assert.deepEqual(Array.from(h.stat('count')), Array.from(layers[1].heads[i].stat('count')));
      });
      b.keyNorms(layers[0]).forEach((n, i) => close(n, ref.keyNorms(layers[1])[i], tol, `key norms, head ${i}`));
      const weights = ref.attentionWeights(q, layers[1], qPos, { layer: 0, scale: 0.3, window: null });
      b.attentionWeights(q, layers[0], qPos, { layer: 0, scale: 0.3, window: null }).forEach((w, i) => close(w, weights[i], tol, `attention weights, head ${i}`));
    }
  });

  test(`${name} conforms: attention, key norms and weights over pruned key channels (ThinK) and whole rows after them, as the reference backend's (f32, bf16)`, (ctx) => {
    if (opts.without?.includes('pruned-keys')) return ctx.skip(`${name} has no key-channel pruning yet`);
    const b = make();
    for (const dtype of ['f32', 'bf16'] as const) {
      const shape = { numLayers: 1, numKvHeads: 2, headDim: 8 };
      const [mine, theirs] = [b.createCache(shape, dtype), ref.createCache(shape, dtype)];
      const positions = Int32Array.from({ length: 26 }, (_, i) => 2 * i);
      const k = t(26, 16, 60);
      const v = t(26, 16, 61);
      const channels = [Int32Array.from([0, 2, 3, 6]), Int32Array.from([1, 4, 5, 6, 7])];
      for (const [be, cache] of [[b, mine], [ref, theirs]] as const) {
        const layer = cache.layers[0];
        be.appendKv(layer, rowsOf(k, 0, 14), rowsOf(v, 0, 14), positions.subarray(0, 14));
        // Pruned twice (entries pruned before keep 0 in a channel they had lost), then whole rows appended.
        layer.heads.forEach((h, i) => h.pruneKeyChannels?.(Int32Array.from([0, 1, 2, 3, 5, 6, 7].filter((c) => c !== 1 + i))));
        be.appendKv(layer, rowsOf(k, 14, 20), rowsOf(v, 14, 20), positions.subarray(14, 20));
        layer.heads.forEach((h, i) => h.pruneKeyChannels?.(channels[i]));
        be.appendKv(layer, rowsOf(k, 20, 26), rowsOf(v, 20, 26), positions.subarray(20, 26));
      }
      mine.layers[0].heads.forEach((h, i) => {
        assert.equal(h.pruned, 20, 'pruned entries');
        assert.deepEqual(Array.from(h.keys(0, 26)), Array.from(theirs.layers[0].heads[i].keys(0, 26)));
      });
      const q = t(8, 32, 62, 2);
      const qPos = Int32Array.from([30, 36, 38, 40, 42, 44, 46, 50]);
      const variants = [
        { window: null },
        { window: 5 },
        { window: 12 },
        { window: null, entries: [Int32Array.from([0, 3, 4, 17, 19, 20, 23, 25]), Int32Array.from([20, 21, 25])] },
        { window: null, entries: [Int32Array.from([1, 2, 19]), null] },
        { window: null, queryEntries: [Int32Array.from([0, 25]), null, Int32Array.from([2, 3, 4, 19]), Int32Array.from([18, 19, 24])] },
        { window: null, tree: { parents: Int32Array.from([-1, 0, 0, 1, 2, 3, 4, 5]) } },
        { window: 9, kernel: { name: 'sigmoid' as const, bias: -2 } },
      ];
      for (const vis of variants) {
        const opts = { layer: 0, scale: 0.3, ...vis };
        close(b.read(b.scope(() => b.attention(q, mine.layers[0], qPos, opts))), ref.attention(q, theirs.layers[0], qPos, opts), tol, `pruned-key attention ${dtype} ${JSON.stringify(vis)}`);
      }
      b.keyNorms(mine.layers[0]).forEach((n, i) => close(n, ref.keyNorms(theirs.layers[0])[i], tol, `pruned key norms, head ${i}`));
      const weights = ref.attentionWeights(q, theirs.layers[0], qPos, { layer: 0, scale: 0.3, window: null });
      b.attentionWeights(q, mine.layers[0], qPos, { layer: 0, scale: 0.3, window: null }).forEach((w, i) => close(w, weights[i], tol, `pruned-key attention weights, head ${i}`));
    }
  });

  test(`${name} conforms: remapped reads (per-head spans at shifted positions, attention/remap.ts) as the reference backend's; zero shifts over every entry are plain causal attention (f32, bf16)`, (ctx) => {
    if (opts.without?.includes('remap')) return ctx.skip(`${name} has no remapped reads yet`);
    const b = make();
    for (const dtype of ['f32', 'bf16'] as const) {
      const layers = [layerOf(b, 2, 8, dtype), LayerCache.empty(2, 8, dtype)];
      const positions = Int32Array.from({ length: 24 }, (_, i) => i);
      const [k, v] = [t(24, 16, 70), t(24, 16, 71)];
      b.appendKv(layers[0], k, v, positions);
      ref.appendKv(layers[1], k, v, positions);
      // 3 rows × 4 query heads over 2 KV heads; rotary on the first 6 of 8 dims (partial rotary).
      const q = t(3, 32, 72, 2);
      const qPos = Int32Array.from([21, 22, 23]);
      const inverseFrequencies = Float32Array.from([1, 0.2, 0.03]);
      // Unit u = row·4 + head: spans [start, end) and their key shifts; the last span of a row runs past it (causal clips).
      const spans: [number, number, number][][] = Array.from({ length: 12 }, (_, u) =>
        u % 3 === 0 ? [[0, 4, 0], [8, 12, -3], [20, 24, -9]] : u % 3 === 1 ? [[0, 4, 0], [12, 16, -7], [20, 24, -9]] : [[4, 8, 2], [20, 24, -9]]);
      const flat = spans.flat();
      const remap = {
        offsets: Int32Array.from([0, ...spans.map((_, u) => spans.slice(0, u + 1).flat().length)]),
        starts: Int32Array.from(flat.map((x) => x[0])),
        ends: Int32Array.from(flat.map((x) => x[1])),
        keyShifts: Int32Array.from(flat.map((x) => x[2])),
        queryShifts: Int32Array.from({ length: 12 }, (_, u) => -9 - (u % 2)),
        inverseFrequencies,
      };
      for (const kernel of [undefined, { name: 'sigmoid' as const, bias: -1 }]) {
        const opts = { layer: 0, scale: 0.3, window: null, remap, ...(kernel ? { kernel } : {}) };
        close(b.read(b.scope(() => b.attention(q, layers[0], qPos, opts))), ref.attention(q, layers[1], qPos, opts), tol, `remapped attention ${dtype} ${kernel?.name ?? 'softmax'}`);
      }
      // Every entry in chunk-sized spans, nothing shifted: the causal attention of the plain path.
      const whole = {
        offsets: Int32Array.from({ length: 13 }, (_, u) => 3 * u),
        starts: Int32Array.from({ length: 36 }, (_, s) => 8 * (s % 3)),
        ends: Int32Array.from({ length: 36 }, (_, s) => 8 * (s % 3) + 8),
        keyShifts: new Int32Array(36),
        queryShifts: new Int32Array(12),
        inverseFrequencies,
      };
      const plain = ref.attention(q, layers[1], qPos, { layer: 0, scale: 0.3, window: null });
      for (const [be, layer] of [[b, layers[0]], [ref, layers[1]]] as const) {
        close(be.read(be.scope(() => be.attention(q, layer, qPos, { layer: 0, scale: 0.3, window: null, remap: whole }))), plain, tol, `remapped reads without shifts (${be.name}, ${dtype})`);
      }
      assert.throws(() => b.attention(q, layers[0], qPos, { layer: 0, scale: 0.3, window: 4, remap }), /remapped reads replace/);
    }
  });

  test(`${name} conforms: head memory writeValues and renumber (key rerotation) as the reference backend's (f32, bf16)`, () => {
    const b = make();
    for (const dtype of ['f32', 'bf16'] as const) {
      const shape = { numLayers: 1, numKvHeads: 2, headDim: 8 };
      const [mine, theirs] = [b.createCache(shape, dtype), ref.createCache(shape, dtype)];
      const positions = Int32Array.from({ length: 10 }, (_, i) => 3 * i);
      const k = t(10, 16, 50);
      const v = t(10, 16, 51);
      b.appendKv(mine.layers[0], k, v, positions);
      ref.appendKv(theirs.layers[0], k, v, positions);
      mine.nextPosition = theirs.nextPosition = 30;
      for (const cache of [mine, theirs]) {
        cache.layers[0].heads.forEach((h, i) => h.keep(i === 0 ? [1, 2, 5, 8] : [0, 3, 4, 9]));
        cache.layers[0].heads[1].writeValues([0, 2], uniformArray(16, 52));
        cache.renumber(Float32Array.from([1, 0.3, 0.05, 0.01]));
      }
      assert.equal(mine.nextPosition, 4);
      theirs.layers[0].heads.forEach((h, i) => {
        const m = mine.layers[0].heads[i];
        assert.deepEqual(Array.from(m.positions), Array.from(h.positions));
        assert.deepEqual(Array.from(mine.originalPositions(0, i)), Array.from(theirs.originalPositions(0, i)));
        close(m.keys(0, m.length), h.keys(0, h.length), tol, `renumbered keys ${dtype}, head ${i}`);
        close(m.values(0, m.length), h.values(0, h.length), tol, `written values ${dtype}, head ${i}`);
      });
      const q = t(2, 32, 53);
      const opts = { layer: 0, scale: 0.3, window: null };
      close(b.read(b.scope(() => b.attention(q, mine.layers[0], Int32Array.from([4, 5]), opts))), ref.attention(q, theirs.layers[0], Int32Array.from([4, 5]), opts), tol, `attention after renumbering ${dtype}`);
    }
  });

  test(`${name} conforms: recurrent state (createState) steps as the reference backend's`, () => {
    const shape = { heads: 2, keyDim: 3, valueDim: 4, decay: Float32Array.from([1, 0.8]) };
    const [mine, theirs] = [make().createState(shape), ref.createState(shape)];
    const fq = uniformArray(5 * 6, 40).map((x) => x + 1.5);
    const fk = uniformArray(5 * 6, 41).map((x) => x + 1.5);
    const v = uniformArray(5 * 8, 42);
    close(mine.step(fq, fk, v, 5), theirs.step(fq, fk, v, 5), tol, 'state outputs');
    assert.equal(mine.bytes(), theirs.bytes());
  });

  for (const dir of opts.models ?? []) {
    test(`${name} conforms: ${dir.split('/').pop()} logits within 1e-4 of the reference backend`, () => {
      const mine = loadModel(dir, { backend: make() });
      const theirs = loadModel(dir, { backend: ref });
      const ids = Array.from({ length: 9 }, (_, i) => (i * 37 + 5) % mine.config.vocabSize);
      const a = mine.model.backend.read(mine.model.forward(ids, mine.model.makeCache()));
      const c = theirs.model.forward(ids, newCache(theirs.config)).f32;
      close(a, c, opts.modelTolerance ?? 1e-4, 'logits');
    });
  }
}
