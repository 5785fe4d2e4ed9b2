/**
 * The recurrent-state memory kind against linear attention in its quadratic form (Katharopoulos et al. 2020):
 * out_t = Σ_{j≤t} λ^{t−j} (φq_t·φk_j) v_j / Σ_{j≤t} λ^{t−j} (φq_t·φk_j), computed here entry by entry in f64.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RecurrentState } from '../../src/cache/recurrent-state.js';
import { uniformArray } from '../../src/generate/random.js';

const heads = 3;
const dk = 4;
const dv = 5;
const T = 12;
/** elu(x) + 1: the paper's feature map, positive. */
const phi = (x: Float32Array) => x.map((v) => (v > 0 ? v + 1 : Math.exp(v)));
const fq = phi(uniformArray(T * heads * dk, 1).map((x) => 2 * x));
const fk = phi(uniformArray(T * heads * dk, 2).map((x) => 2 * x));
const v = uniformArray(T * heads * dv, 3);

function quadratic(decay: number[], normalise: boolean): Float64Array {
  const out = new Float64Array(T * heads * dv);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < heads; h++) {
      let norm = 0;
      const acc = new Float64Array(dv);
      for (let j = 0; j <= t; j++) {
        let dot = 0;
        for (let i = 0; i < dk; i++) dot += fq[(t * heads + h) * dk + i] * fk[(j * heads + h) * dk + i];
        const w = decay[h] ** (t - j) * dot;
        norm += w;
        for (let c = 0; c < dv; c++) acc[c] += w * v[(j * heads + h) * dv + c];
      }
      for (let c = 0; c < dv; c++) out[(t * heads + h) * dv + c] = normalise ? acc[c] / norm : acc[c];
    }
  }
  return out;
}

/** Runs the T tokens through the state in chunks of the given sizes. */
function recurrent(state: RecurrentState, chunks: number[]): Float32Array {
  const out = new Float32Array(T * heads * dv);
  let at = 0;
  for (const n of chunks) {
    const rows = (w: number, x: Float32Array) => x.subarray(at * heads * w, (at + n) * heads * w);
    out.set(state.step(rows(dk, fq), rows(dk, fk), rows(dv, v), n), at * heads * dv);
    at += n;
  }
  return out;
}

function close(a: Float32Array, b: Float64Array, tol = 1e-5): void {
  assert.equal(a.length, b.length);
  a.forEach((x, i) => assert.ok(Math.abs(x - b[i]) <= tol * Math.max(1, Math.abs(b[i])), `element ${i}: ${x} vs ${b[i]}`));
}

test('the state gives causal linear attention, in any chunking, with and without decay and normalisation', () => {
  close(recurrent(new RecurrentState({ heads, keyDim: dk, valueDim: dv }), [T]), quadratic([1, 1, 1], true));
  close(recurrent(new RecurrentState({ heads, keyDim: dk, valueDim: dv }), [1, 4, 7]), quadratic([1, 1, 1], true));
  const decay = Float32Array.from([1, 0.9, 0.5]);
  close(recurrent(new RecurrentState({ heads, keyDim: dk, valueDim: dv, decay }), [5, 7]), quadratic(Array.from(decay), true));
  close(recurrent(new RecurrentState({ heads, keyDim: dk, valueDim: dv, decay, normalise: false }), [12]), quadratic(Array.from(decay), false), 1e-4);
});

test('its size does not grow; checkpoints roll it back exactly; clones are independent', () => {
  const state = new RecurrentState({ heads, keyDim: dk, valueDim: dv });
  const bytes = state.bytes();
  assert.equal(bytes, 8 * heads * (dk * dv + dk));
  state.step(fq.subarray(0, 7 * heads * dk), fk.subarray(0, 7 * heads * dk), v.subarray(0, 7 * heads * dv), 7);
  const mark = state.checkpoint();
  const copy = state.clone();
  const rest = (s: RecurrentState) => s.step(fq.subarray(7 * heads * dk), fk.subarray(7 * heads * dk), v.subarray(7 * heads * dv), 5);
  const first = rest(state);
  assert.equal(state.bytes(), bytes);
  assert.equal(state.position, 12);
  state.restore(mark);
  assert.equal(state.position, 7);
  assert.deepEqual(rest(state), first, 'the rolled-back state continues as before');
  assert.deepEqual(rest(copy), first, 'the clone did not move with the original');
  assert.throws(() => copy.restore({ ...copy.checkpoint(), position: 99 }), /cannot restore forward/);
  assert.throws(() => new RecurrentState({ heads: 0, keyDim: 1, valueDim: 1 }), /heads must be a whole number/);
  assert.throws(() => new RecurrentState({ heads: 2, keyDim: 1, valueDim: 1, decay: Float32Array.from([1, 1.5]) }), /decay needs one value in \(0, 1\]/);
});

test('a cache can hold recurrent layers beside KV layers: bytes, clone and trim through checkpoints', async () => {
  const { KVCache } = await import('../../src/cache/kv-cache.js');
  const stateShape = { heads, keyDim: dk, valueDim: dv };
  const cache = new KVCache({ numLayers: 3, numKvHeads: 1, headDim: 2, states: [null, stateShape, null] });
  assert.equal(cache.states[0], null);
  const state = cache.states[1]!;
  assert.equal(cache.bytes(), state.bytes(), 'an empty cache holds only the state');
  const rows = (n: number, from: number): Float32Array[] => [
    fq.subarray(from * heads * dk, (from + n) * heads * dk),
    fk.subarray(from * heads * dk, (from + n) * heads * dk),
    v.subarray(from * heads * dv, (from + n) * heads * dv),
  ];
  const [q1, k1, v1] = rows(4, 0);
  state.step(q1, k1, v1, 4);
  cache.nextPosition = 4;
  cache.checkpoint();
  const copy = cache.clone();
  const [q2, k2, v2] = rows(3, 4);
  const first = state.step(q2, k2, v2, 3);
  cache.nextPosition = 7;
  assert.throws(() => cache.trim(5), /no checkpoint there/);
  cache.trim(4);
  assert.equal(cache.nextPosition, 4);
  assert.equal(cache.states[1]!.position, 4);
  assert.deepEqual(cache.states[1]!.step(q2, k2, v2, 3), first, 'rolled back to the checkpoint');
  assert.deepEqual(copy.states[1]!.step(q2, k2, v2, 3), first, 'the clone kept its own state');
  assert.throws(() => new KVCache({ numLayers: 2, numKvHeads: 1, headDim: 2, states: [null] }), /1 recurrent-state entries for 2 layers/);
});
