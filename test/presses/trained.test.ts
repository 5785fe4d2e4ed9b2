/**
 * The presses with trained parts (qfilter, kvzap, fastkvzip, lukv, restorekv) and the readers of the formats their
 * parts come in: each rule re-computed in f64 straight from the files (or worked by hand) and compared with what the
 * press keeps, on the parity checkpoint llama-gqa-tied with the hand-made parts of test/fixtures/press-trained/
 * (tools/press_training/make_test_artefacts.ts; formats/ by make_format_fixtures.py with Python's own writers).
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { KVCache } from '../../src/cache/kv-cache.js';
import { AttendError } from '../../src/errors.js';
import { prefill } from '../../src/generate/prefill.js';
import { parseNpy, readNpy, writeNpy } from '../../src/io/npy.js';
import { SafetensorsArchive, writeSafetensors } from '../../src/io/safetensors.js';
import { PyDict, parseTorchFile, readTorchFile, TorchTensor, torchFileBytes } from '../../src/io/torch-file.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import type { Budget } from '../../src/presses/budget.js';
import { DMSPress } from '../../src/presses/dms.js';
import { FastKVzipPress, readFastKVzipGates } from '../../src/presses/fastkvzip.js';
import { KnormPress } from '../../src/presses/knorm.js';
import { KVzapPress, readKVzapModel } from '../../src/presses/kvzap.js';
import { KVzipPress } from '../../src/presses/kvzip.js';
import { curveRow, keepCounts, LUKVPress, readBudgetCurve, roundHalfEven } from '../../src/presses/lukv.js';
import type { Press } from '../../src/presses/press.js';
import { QFilterPress, readQFilters } from '../../src/presses/qfilter.js';
import { createPress } from '../../src/presses/registry.js';
import { readRestoreAdapter, RestoreKVPress } from '../../src/presses/restorekv.js';
import { CompressionSession } from '../../src/presses/runner.js';
import { PARITY_DIR } from '../helpers/fixtures.js';
import { layerOf, tinyConfig, viewOf } from '../helpers/press-view.js';

const TRAINED = join(import.meta.dirname, '..', 'fixtures', 'press-trained');
const BASE = join(PARITY_DIR, 'llama-gqa-tied');
const lm = loadModel(BASE);
const { numLayers: L, numKvHeads: H, hiddenSize } = lm.config;
const ids = Array.from({ length: 48 }, (_, i) => (i * 53 + 7) % lm.config.vocabSize);

/** Runs `ids` through a session of `press` (one compression at the end of the prefill); the cache and the scores given. */
function compress(press: Press, budget: Budget | undefined, tokens = ids, chunkSize?: number): { cache: KVCache; session: CompressionSession; scores: Float32Array[][] } {
  const cache = newCache(lm.config);
  const scores: Float32Array[][] = [];
  const score = press.score.bind(press);
  press.score = (view) => {
    const s = score(view);
    scores[view.layer] = s.map((x) => x.slice());
    return s;
  };
  const session = new CompressionSession({ press, budget, during: 'prefill' }, lm.model, cache);
  prefill(lm.model, cache, tokens, { chunkSize, observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, tokens.length) });
  return { cache, session, scores };
}

const positions = (cache: KVCache) => cache.layers.map((l, i) => l.heads.map((_, h) => Array.from(cache.originalPositions(i, h))));

/** Per layer, the attention input of every token (what kvpress's presses get as hidden_states). */
function hiddenStates(tokens = ids): Float32Array[] {
  const out: Float32Array[] = [];
  lm.model.forward(tokens, newCache(lm.config), { hooks: { attentionInput: (layer, h) => void (out[layer] = lm.model.backend.read(h).slice()) } });
  return out;
}

/** Indices of the k highest, ascending; ties to the earlier. */
function top(scores: ArrayLike<number>, k: number): number[] {
  return Array.from({ length: scores.length }, (_, i) => i)
    .sort((a, b) => scores[b] - scores[a] || a - b)
    .slice(0, k)
    .sort((a, b) => a - b);
}

function tensors(path: string): Map<string, Float32Array> {
  const a = SafetensorsArchive.open(path);
  try {
    return new Map(a.names().map((n) => [n, a.readF32(n)]));
  } finally {
    a.close();
  }
}

/** erf in f64 (series below 2.5, continued fraction of erfc above): exact to ~1e-15. */
function erf(x: number): number {
  const s = Math.sign(x);
  const a = Math.abs(x);
  if (a < 2.5) {
    let term = a;
    let sum = a;
    for (let n = 1; n < 100; n++) {
      term *= (-a * a) / n;
      sum += term / (2 * n + 1);
    }
    return (s * 2 * sum) / Math.sqrt(Math.PI);
  }
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (a + f);
  return s * (1 - Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + f));
}

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) => {
  assert.equal(a.length, b.length, `${what}: lengths`);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol * Math.max(1, Math.abs(b[i])), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
};

// ---------------------------------------------------------------- formats

test('npy: numpy-written files in C and Fortran order, big-endian and version 2.0, read as C-order values', () => {
  const want = JSON.parse(readFileSync(join(TRAINED, 'formats', 'expected.json'), 'utf8')).npy;
  for (const [file, values] of [['c-f8.npy', want.f8], ['big-f8.npy', want.f8], ['v2-f8.npy', want.f8], ['fortran-f4.npy', want.f4]] as const) {
    const a = readNpy(join(TRAINED, 'formats', file));
    assert.deepEqual(a.shape, want.shape, file);
    assert.deepEqual(Array.from(a.data), values, file);
  }
  const dir = mkdtempSync(join(tmpdir(), 'npy-'));
  try {
    writeNpy(join(dir, 'x.npy'), [2, 2], [1, 2, 3, 4.5]);
    assert.deepEqual(Array.from(readNpy(join(dir, 'x.npy')).data), [1, 2, 3, 4.5]);
  } finally {
    rmSync(dir, { recursive: true });
  }
  assert.throws(() => parseNpy(new Uint8Array(12)), AttendError);
  const header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }\n";
  const objects = Uint8Array.from(Buffer.concat([Buffer.from([0x93]), Buffer.from('NUMPY'), Buffer.from([1, 0, header.length, 0]), Buffer.from(header, 'latin1'), Buffer.alloc(8)]));
  assert.throws(() => parseNpy(objects), /not a float array/);
});

test('torch files: a torch.save-shaped pickle from Python (state dicts, shared and strided storages, numpy logs)', () => {
  const want = JSON.parse(readFileSync(join(TRAINED, 'formats', 'expected.json'), 'utf8')).pickle;
  const top = readTorchFile(join(TRAINED, 'formats', 'stdlib-pickle.pt')) as PyDict;
  assert.ok(top instanceof PyDict);
  const module = top.get('module') as PyDict[];
  const w = module[0].get('w') as TorchTensor;
  assert.deepEqual(w.shape, [2, 3]);
  assert.deepEqual(Array.from(w.f32()), want.w);
  // The transpose shares w's storage with strides (1, 3).
  const t = (module[0].get('w_t') as TorchTensor).f32();
  assert.deepEqual(Array.from(t), [0, 3, 1, 4, 2, 5].map((i) => want.w[i]));
  assert.deepEqual(Array.from((module[1].get('b') as TorchTensor).f32()), want.b1);
  assert.deepEqual(Array.from((module[1].get('offset_view') as TorchTensor).f32()), [want.b1[1], want.b1[3]]);
  assert.equal(top.get('steps'), 5000);
  assert.equal(top.get('lr'), 0.2);
  // Round trip of the writer the fixtures use.
  const bytes = torchFileBytes(new Map([['x', { shape: [2], data: Float32Array.from([1.5, -2]) }], ['n', [1, 'a', null]]]));
  const back = parseTorchFile(bytes) as PyDict;
  assert.deepEqual(Array.from((back.get('x') as TorchTensor).f32()), [1.5, -2]);
  assert.deepEqual(back.get('n'), [1, 'a', null]);
  assert.throws(() => parseTorchFile(Uint8Array.from([0x80, 2, 0x8a, 10])), /legacy/);
});

// ---------------------------------------------------------------- Q-filters

test('qfilter scores −⟨f, k⟩ with the head\'s filter and keeps the highest, by hand', () => {
  const config = tinyConfig(2, 2, 2);
  const press = new QFilterPress({ layers: 1, kvHeads: 2, headDim: 2, filters: Float32Array.from([1, 0, 0, -2]) });
  const cache = layerOf([
    [[1, 5], [-3, 0], [2, 2], [0, 1]],
    [[0, 1], [1, -1], [4, 0], [0, -3]],
  ]);
  const s = press.score(viewOf(config, cache, 2));
  assert.deepEqual(Array.from(s[0]), [-1, 3, -2, -0]);
  assert.deepEqual(Array.from(s[1]), [2, -2, -0, -6]);
  assert.deepEqual(top(s[0], 2), [1, 3]);
  assert.throws(() => press.score(viewOf(tinyConfig(2, 2, 4), layerOf([[[1, 2, 3, 4]], [[1, 2, 3, 4]]]), 1)), /head dim 2.*head dim 4/);
});

test('qfilter on the parity checkpoint: the file\'s filters against the cached (post-RoPE) keys, per head', () => {
  const q = tensors(join(TRAINED, 'qfilter', 'model.safetensors')).get('q_filters')!;
  const d = lm.config.headDim;
  const full = newCache(lm.config);
  prefill(lm.model, full, ids);
  const { cache } = compress(createPress('qfilter', { path: join(TRAINED, 'qfilter') }), { ratio: 0.5 });
  cache.layers.forEach((layer, l) =>
    layer.heads.forEach((head, h) => {
      const keys = full.layers[l].heads[h].keys(0, ids.length);
      const want = Array.from({ length: ids.length }, (_, i) => {
        let s = 0;
        for (let c = 0; c < d; c++) s += q[(l * H + h) * d + c] * keys[i * d + c];
        return -s;
      });
      assert.deepEqual(Array.from(head.positions), top(want, Math.floor(ids.length * 0.5)), `layer ${l} head ${h}`);
    }),
  );
  assert.throws(() => readQFilters(join(TRAINED, 'kvzap', 'mlp')), /no tensor "q_filters"/);
  assert.throws(() => createPress('qfilter', {}), /needs --press-opt path/);
});

// ---------------------------------------------------------------- KVzap

/** KVzap's model in f64 from its safetensors (exact erf GELU). */
function kvzapReference(kind: 'mlp' | 'linear', hidden: Float32Array[]): Float64Array[] {
  const t = tensors(join(TRAINED, 'kvzap', kind, 'model.safetensors'));
  return hidden.map((hs, l) => {
    const rows = hs.length / hiddenSize;
    const out = new Float64Array(rows * H);
    for (let r = 0; r < rows; r++) {
      const x = hs.subarray(r * hiddenSize, (r + 1) * hiddenSize);
      const lin = (w: Float32Array, b: Float32Array, v: ArrayLike<number>, n: number) =>
        Array.from({ length: b.length }, (_, o) => {
          let s = b[o];
          for (let i = 0; i < n; i++) s += w[o * n + i] * v[i];
          return s;
        });
      let y: number[];
      if (kind === 'mlp') {
        const a = lin(t.get(`layers.${l}.0.weight`)!, t.get(`layers.${l}.0.bias`)!, x, hiddenSize).map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
        y = lin(t.get(`layers.${l}.2.weight`)!, t.get(`layers.${l}.2.bias`)!, a, a.length);
      } else y = lin(t.get(`layers.${l}.weight`)!, t.get(`layers.${l}.bias`)!, x, hiddenSize);
      out.set(y, r * H);
    }
    return out;
  });
}

for (const kind of ['mlp', 'linear'] as const) {
  test(`kvzap (${kind}): the model's score of each token's hidden state, per head, and the top int(n·(1 − r)) kept`, () => {
    const want = kvzapReference(kind, hiddenStates());
    // Chunks of 16 tokens: each token is scored when it runs, from its own hidden state.
    const { cache, scores } = compress(createPress('kvzap', { path: join(TRAINED, 'kvzap', kind) }), { ratio: 0.25 }, ids, 16);
    for (let l = 0; l < L; l++) {
      for (let h = 0; h < H; h++) {
        const ref = Array.from({ length: ids.length }, (_, t) => want[l][t * H + h]);
        close(scores[l][h], ref, 1e-5, `layer ${l} head ${h} scores`);
        assert.deepEqual(positions(cache)[l][h], top(ref, ids.length - Math.floor(ids.length * 0.25)), `layer ${l} head ${h} kept`);
      }
    }
  });
}

test('kvzap reads the folder or its file; the tensors decide the kind; other shapes are refused', () => {
  assert.equal(readKVzapModel(join(TRAINED, 'kvzap', 'mlp')).kind, 'mlp');
  assert.equal(readKVzapModel(join(TRAINED, 'kvzap', 'mlp', 'model.safetensors')).hiddenDim, 8);
  assert.equal(readKVzapModel(join(TRAINED, 'kvzap', 'linear')).kind, 'linear');
  const press = new KVzapPress(readKVzapModel(join(TRAINED, 'kvzap', 'linear')));
  const small = tinyConfig(2, 2, 2);
  assert.throws(() => press.score(viewOf(small, layerOf([[[1, 2]], [[1, 2]]]), 1)), /hidden size 48.*hidden size 4/);
  // A forward whose tokens ran without the press's observer has no scores.
  assert.throws(() => compressWithout(press), /observer/);
});

function compressWithout(press: Press): void {
  const cache = newCache(lm.config);
  prefill(lm.model, cache, ids.slice(0, 8));
  const session = new CompressionSession({ press, budget: { ratio: 0.5 } }, lm.model, cache);
  session.afterChunk(8, 8);
}

test('kvzap as DMS\'s scorer (kvpress\'s pairing): a threshold on the model\'s scores, also while decoding', () => {
  const want = kvzapReference('linear', hiddenStates());
  const threshold = 0;
  const window = 8;
  const press = new DMSPress(new KVzapPress(readKVzapModel(join(TRAINED, 'kvzap', 'linear'))), { threshold, window, decoding: true });
  const { cache } = compress(press, undefined, ids.slice(0, 40));
  for (let l = 0; l < L; l++) {
    for (let h = 0; h < H; h++) {
      const keep = Array.from({ length: 40 }, (_, t) => t).filter((t) => t >= 40 - window || Math.fround(want[l][t * H + h]) >= Math.fround(threshold));
      assert.deepEqual(positions(cache)[l][h], keep, `layer ${l} head ${h}`);
    }
  }
});

// ---------------------------------------------------------------- Fast KVzip

/** Fast KVzip's gate in f64 from the state dicts of the .pt file. */
function gateReference(file: string, hidden: Float32Array[]): Float64Array[] {
  const top = readTorchFile(file) as PyDict;
  const dim = 16;
  const group = lm.config.numHeads / H;
  return (top.get('module') as PyDict[]).map((sd, l) => {
    const get = (n: string) => (sd.get(n) as TorchTensor).f64();
    const [Wq, bq, Wk, qn, kn, base, b] = ['q_proj.weight', 'q_proj.bias', 'k_proj.weight', 'q_norm.weight', 'k_norm.weight', 'k_base', 'b'].map(get);
    const sink = base.length / (H * dim);
    const hs = hidden[l];
    const rows = hs.length / hiddenSize;
    const out = new Float64Array(rows * H);
    const rms = (v: number[], w: Float64Array) => {
      const m = v.reduce((s, x) => s + x * x, 0) / v.length;
      return v.map((x, c) => (w[c] * x) / Math.sqrt(m + 1e-6));
    };
    for (let t = 0; t < rows; t++) {
      const x = hs.subarray(t * hiddenSize, (t + 1) * hiddenSize);
      const proj = (W: Float64Array, row: number, bias?: Float64Array) => {
        let s = bias ? bias[row] : 0;
        for (let i = 0; i < hiddenSize; i++) s += W[row * hiddenSize + i] * x[i];
        return s;
      };
      for (let h = 0; h < H; h++) {
        const k = rms(Array.from({ length: dim }, (_, c) => proj(Wk, h * dim + c)), kn);
        let mean = 0;
        for (let g = 0; g < group; g++) {
          const q = rms(Array.from({ length: dim }, (_, c) => proj(Wq, (h * group + g) * dim + c, bq)), qn);
          const logit = k.reduce((s, kc, c) => s + kc * q[c], 0) / 4 + b[h * group + g];
          let sum = 0;
          for (let s = 0; s < sink; s++) sum += Math.exp(q.reduce((a, qc, c) => a + base[(h * sink + s) * dim + c] * qc, 0) / 4 - logit);
          mean += 1 / (1 + sum);
        }
        out[t * H + h] = mean / group;
      }
    }
    return out;
  });
}

const GATES = join(TRAINED, 'fastkvzip', 'q2_dim16_sink4.pt');

/** The reference selection: sinks and the window at 1, the lowest int(N·r) of all layers and heads dropped (ties: earlier kept). */
function fastReference(ratio: number, windowRatio: number, layerwise: boolean): { scores: number[][][]; kept: number[][][] } {
  const g = gateReference(GATES, hiddenStates());
  const n = ids.length;
  const w = Math.trunc(n * windowRatio);
  const scores = g.map((layer) => Array.from({ length: H }, (_, h) => Array.from({ length: n }, (_, t) => (t < 4 || w === 0 || t >= n - w ? 1 : layer[t * H + h]))));
  const keepOf = (units: number) => units - Math.floor(units * ratio);
  const pick = (heads: number[][], total: number) => {
    const flat = heads.flatMap((s, h) => s.map((x, i) => ({ x, h, i })));
    const chosen = flat.map((_, j) => j).sort((a, b) => flat[b].x - flat[a].x || a - b).slice(0, total);
    return heads.map((_, h) => chosen.filter((j) => flat[j].h === h).map((j) => flat[j].i).sort((a, b) => a - b));
  };
  if (layerwise) return { scores, kept: scores.map((heads) => pick(heads, keepOf(H * n))) };
  const all = pick(scores.flat(), keepOf(L * H * n));
  return { scores, kept: scores.map((_, l) => all.slice(l * H, (l + 1) * H)) };
}

for (const layerwise of [false, true]) {
  test(`fastkvzip (layerwise ${layerwise}): gate scores from the hidden states, sinks and window at 1, selected ${layerwise ? 'per layer' : 'across layers'}`, () => {
    const ref = fastReference(0.5, 0.1, layerwise);
    const press = createPress('fastkvzip', { path: GATES, 'window-ratio': 0.1, layerwise: String(layerwise) });
    const { cache, scores } = compress(press, { ratio: 0.5 });
    for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) close(scores[l][h], ref.scores[l][h], 1e-5, `layer ${l} head ${h}`);
    assert.deepEqual(positions(cache), ref.kept);
    if (!layerwise) assert.ok(new Set(cache.layers.flatMap((l) => l.heads.map((h) => h.length))).size > 1, 'heads keep different numbers');
  });
}

test('fastkvzip: below 50 tokens the default window int(n·0.02) is 0, and kvpress\'s scores[..., -0:] = 1 sets every score to 1', () => {
  const { cache, scores } = compress(createPress('fastkvzip', { path: GATES }), { ratio: 0.5 });
  assert.ok(scores.every((l) => l.every((s) => s.every((x) => x === 1))));
  // All tied: the selection keeps the earliest entries of the earliest layers and heads.
  const total = L * H * ids.length - Math.floor(L * H * ids.length * 0.5);
  assert.deepEqual(cache.layers.map((l) => l.heads.map((h) => h.length)), [[48, 48], [0, 0]].map((r) => r.map((x) => (x * total) / (2 * 48))));
  const gates = readFastKVzipGates(GATES);
  assert.deepEqual([gates.heads, gates.group, gates.dim, gates.sink, gates.layers.length], [2, 2, 16, 4, 2]);
  assert.equal(new FastKVzipPress(gates).windowOf(32000), 4096);
  assert.equal(new FastKVzipPress(gates).windowOf(31999), 639);
});

// ---------------------------------------------------------------- LU-KV

test('lukv: the curve row by Python\'s round (halves to even), counts as kvpress computes them, by hand', () => {
  assert.deepEqual([0.125, 0.135, 0.5, 0.004, 0.999, 0.29].map(curveRow), [11, 13, 49, 0, 98, 28]);
  assert.deepEqual([0.5, 1.5, 2.5, 2.4999, 3.5].map(roundHalfEven), [0, 2, 2, 2, 4]);
  // Ideal 5.5 and 2.5 (total round(8) = 8): floors 5 and 2, one more to the larger fraction (a tie: the first head).
  assert.deepEqual(keepCounts([0.45, 0.75], [10, 10]), [6, 2]);
  // Ideal 9.9, 0.1: total 10, floors 9 and 0 → 10 and 0, then at least 1 each.
  assert.deepEqual(keepCounts([0.01, 0.99], [10, 10]), [10, 1]);
  // Rates clamp to [0, 1]; counts to the head's length.
  assert.deepEqual(keepCounts([-0.5, 1.5], [4, 4]), [4, 1]);
  // The total is rounded (8.7 → 9), not floored: the remainder goes to the larger fraction.
  assert.deepEqual(keepCounts([0.33, 0.8], [10, 10]), [7, 2]);
});

test('lukv protects the sinks and the window at the layer\'s maximum + 1, above an entry at the maximum, by hand', () => {
  const config = tinyConfig(1, 1, 2);
  const fixed: Press = { name: 'fixed', needs: {}, score: () => [Float32Array.from([5, 1, 9, 2, 3])] };
  const curve = { layers: 1, kvHeads: 1, ratios: Float64Array.from({ length: 99 }, (_, i) => (i + 1) / 100) };
  const press = new LUKVPress(fixed, curve, { sink: 1, window: 1 });
  const view = viewOf(config, layerOf([[[1, 0], [0, 1], [1, 1], [2, 0], [0, 2]]]), 2, { ratio: 0.6 });
  const scores = press.score(view);
  assert.deepEqual(Array.from(scores[0]), [10, 1, 9, 2, 10]);
  // Ratio 0.6 → row 59 → prune 0.6 → keep round(0.4 × 5) = 2: the two protected entries, not the 9.
  assert.deepEqual(Array.from(press.select(view, scores)[0]), [0, 4]);
});

test('lukv wraps a scorer: sinks and window protected at max + 1, per-head counts from the curve row of the ratio', () => {
  const curve = readBudgetCurve(join(TRAINED, 'lukv', 'curve.npy'));
  const raw = readNpy(join(TRAINED, 'lukv', 'curve.npy')).data;
  const full = newCache(lm.config);
  prefill(lm.model, full, ids);
  for (const ratio of [0.5, 0.3]) {
    const { cache } = compress(new LUKVPress(new KnormPress(), curve, { sink: 4, window: 3 }), { ratio });
    const row = roundHalfEven(ratio * 100) - 1;
    for (let l = 0; l < L; l++) {
      const norms = full.layers[l].heads.map((head) => {
        const k = head.keys(0, ids.length);
        const d = lm.config.headDim;
        return Array.from({ length: ids.length }, (_, i) => -Math.hypot(...k.subarray(i * d, (i + 1) * d)));
      });
      const counts = keepCounts(Array.from({ length: H }, (_, h) => raw[(row * L + l) * H + h]), [ids.length, ids.length]);
      for (let h = 0; h < H; h++) {
        const s = norms[h].map((x, i) => (i < 4 || i >= ids.length - 3 ? Infinity : x));
        assert.deepEqual(positions(cache)[l][h], top(s, counts[h]), `ratio ${ratio} layer ${l} head ${h}`);
      }
    }
    // The two heads of a layer keep different numbers (the curve's ± 0.1).
    assert.ok(cache.layers.every((layer) => layer.heads[0].length !== layer.heads[1].length));
  }
  assert.throws(() => new LUKVPress(new KVzipPress(), curve), /only scores entries/);
  assert.throws(() => readBudgetCurve(join(TRAINED, 'formats', 'c-f8.npy')), /expected \(99, layers, kv_heads\)/);
});

test('lukv\'s registry default scorer is expected-attention with kvpress\'s epsilon 0.02', () => {
  const press = createPress('lukv', { path: join(TRAINED, 'lukv', 'curve.npy') }) as LUKVPress;
  assert.equal(press.name, 'lukv(expected-attention)');
  assert.equal((press.scorer as unknown as { options: { epsilon: number } }).options.epsilon, 0.02);
  assert.equal(((createPress('lukv', { path: join(TRAINED, 'lukv', 'curve.npy'), scorer: 'knorm' }) as LUKVPress).scorer as Press).name, 'knorm');
});

// ---------------------------------------------------------------- RestoreKV

const RESTORE = join(TRAINED, 'restorekv');

/** The base checkpoint with the LoRA merged by hand in f64 and the restore embeddings appended: a model folder. */
function mergedByHand(): string {
  const dir = mkdtempSync(join(tmpdir(), 'restorekv-merged-'));
  const base = tensors(join(BASE, 'model.safetensors'));
  const lora = tensors(join(RESTORE, 'adapter_model.safetensors'));
  const emb = tensors(join(RESTORE, 'restore_embeddings.safetensors')).get('restore_embeddings')!;
  const archive = SafetensorsArchive.open(BASE);
  const shapes = new Map(archive.names().map((n) => [n, archive.entry(n).shape]));
  archive.close();
  const out: Record<string, { dtype: 'f32'; shape: number[]; data: Float32Array }> = {};
  for (const [name, w] of base) {
    let data = w;
    let shape = [...shapes.get(name)!];
    const a = lora.get(`base_model.model.${name.replace(/\.weight$/, '')}.lora_A.weight`);
    if (a) {
      const b = lora.get(`base_model.model.${name.replace(/\.weight$/, '')}.lora_B.weight`)!;
      const [rows, cols] = shape;
      const r = a.length / cols;
      data = Float32Array.from(w, (x, idx) => {
        const i = Math.floor(idx / cols);
        const j = idx % cols;
        let s = 0;
        for (let k = 0; k < r; k++) s += b[i * r + k] * a[k * cols + j];
        return x + (4 / 2) * s;
      });
      assert.equal(rows * cols, w.length);
    }
    if (name === 'model.embed_tokens.weight') {
      data = Float32Array.from([...w, ...emb]);
      shape = [shape[0] + emb.length / hiddenSize, shape[1]];
    }
    out[name] = { dtype: 'f32', shape, data };
  }
  writeSafetensors(join(dir, 'model.safetensors'), out);
  const config = JSON.parse(readFileSync(join(BASE, 'config.json'), 'utf8'));
  config.vocab_size += emb.length / hiddenSize;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(BASE, f), join(dir, f));
  return dir;
}

test('restorekv: KVzip at ratio + n/ctx on the context, then n restore entries per head (the merged adapter over the full cache) kept', () => {
  const adapter = readRestoreAdapter(RESTORE);
  const n = adapter.embeddings.shape[0];
  const ratio = 0.5;
  const { cache } = compress(createPress('restorekv', { path: RESTORE }), { ratio });
  // The context's entries: KVzip's own selection with the budget-matched ratio.
  const { cache: plain } = compress(new KVzipPress(), { ratio: Math.min(1, ratio + n / ids.length) });
  const got = positions(cache);
  const ctx = got.map((l) => l.map((h) => h.filter((p) => p < ids.length)));
  assert.deepEqual(ctx, positions(plain));
  assert.ok(got.every((l) => l.every((h) => h.slice(-n).join() === Array.from({ length: n }, (_, i) => ids.length + i).join())), 'restore entries at the positions after the context');
  assert.equal(cache.nextPosition, ids.length + n);
  const total = got.flat().reduce((s, h) => s + h.length, 0);
  assert.equal(total, L * H * ids.length - Math.floor(L * H * ids.length * ratio), 'budget-matched');
  // The restore entries: the adapted model (merged by hand) run over the uncompressed cache.
  const dir = mergedByHand();
  try {
    const merged = loadModel(dir);
    const full = newCache(lm.config);
    prefill(lm.model, full, ids);
    merged.model.forward(Array.from({ length: n }, (_, i) => lm.config.vocabSize + i), full);
    for (let l = 0; l < L; l++) {
      for (let h = 0; h < H; h++) {
        const head = cache.layers[l].heads[h];
        const d = lm.config.headDim;
        close(head.keys(head.length - n, n), full.layers[l].heads[h].keys(ids.length, n), 1e-4, `layer ${l} head ${h} restore keys`);
        close(head.values(head.length - n, n), full.layers[l].heads[h].values(ids.length, n), 1e-4, `layer ${l} head ${h} restore values`);
        // Not the base model's keys: the adapter matters.
        assert.ok(d > 0);
      }
    }
    const baseOnly = newCache(lm.config);
    prefill(lm.model, baseOnly, ids);
    lm.model.forward([0, 1], baseOnly);
    const a = cache.layers[1].heads[0];
    const diff = Math.max(...Array.from(a.keys(a.length - n, n), (x, i) => Math.abs(x - baseOnly.layers[1].heads[0].keys(ids.length, n)[i])));
    assert.ok(diff > 1e-3, 'the restore entries are not some base-model tokens\' entries');
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('restorekv: no restore pass when nothing is dropped, one compression only, the base must be the running model', () => {
  const press = createPress('restorekv', { path: RESTORE });
  const { cache, session } = compress(press, { tokens: 100 });
  assert.equal(cache.nextPosition, ids.length);
  assert.ok(cache.layers.every((l) => l.heads.every((h) => h.length === ids.length)));
  const once = compress(createPress('restorekv', { path: RESTORE }), { ratio: 0.25 });
  lm.model.forward([3], once.cache, { observer: once.session.observer });
  assert.throws(() => once.session.compress(() => 10, false), /compresses once/);
  assert.throws(() => compress(createPress('restorekv', { path: RESTORE, base: join(PARITY_DIR, 'qwen3-norm') }), { ratio: 0.5 }), /not the model being compressed/);
  assert.throws(() => createPress('restorekv', { path: join(TRAINED, 'qfilter') }), /no restore_embeddings/);
  void session;
});

test('restorekv under a token budget: n of each head\'s budget go to the restore entries', () => {
  const adapter = readRestoreAdapter(RESTORE);
  const n = adapter.embeddings.shape[0];
  const { cache } = compress(new RestoreKVPress(adapter), { tokens: 20 });
  const total = cache.layers.reduce((s, l) => s + l.heads.reduce((a, h) => a + h.length, 0), 0);
  assert.equal(total, L * H * 20);
  assert.ok(positions(cache).every((l) => l.every((h) => h.filter((p) => p >= ids.length).length === n)));
});
