/**
 * Prefill-shaped attention (attend-mini's layer: 8 query heads, 2 KV heads × 64, chunks of 256 tokens) through both
 * softmax paths: the results must agree; the times are only reported (test diagnostics), never asserted.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attention } from '../../src/backend/cpu/attention.js';
import { selectSoftmax, softmaxPath, type SoftmaxPath } from '../../src/backend/cpu/attention/softmax.js';
import { LayerCache } from '../../src/cache/kv-cache.js';
import { uniformArray } from '../../src/generate/random.js';

/** `n` values uniform in [−amplitude, amplitude). */
function random(n: number, seed: number, amplitude: number): Float32Array {
  return uniformArray(n, seed).map((x) => x * amplitude);
}

test('prefill attention: the wasm softmax path agrees with the Math.exp path (times reported)', (t) => {
  const [heads, kvHeads, d, tokens, chunk] = [8, 2, 64, 1024, 256];
  const layer = LayerCache.empty(kvHeads, d, 'f32');
  const positions = Int32Array.from({ length: tokens }, (_, i) => i);
  layer.heads.forEach((h, i) => h.append(random(tokens * kvHeads * d, 1, 2), random(tokens * kvHeads * d, 2, 1), positions, i * d, kvHeads * d));
  const q = random(tokens * heads * d, 3, 2);
  const run = (path: SoftmaxPath) => {
    selectSoftmax(path);
    const out = new Float32Array(q.length);
    const start = performance.now();
    try {
      for (let s = 0; s < tokens; s += chunk) {
        const e = Math.min(tokens, s + chunk);
        attention(q.subarray(s * heads * d, e * heads * d), e - s, heads, layer, positions.subarray(s, e), { layer: 0, scale: 1 / Math.sqrt(d), window: null }, out.subarray(s * heads * d, e * heads * d));
      }
    } finally {
      selectSoftmax('auto');
    }
    return { out, ms: performance.now() - start };
  };
  run('wasm'); // warm-up (compiles the kernel, sizes the scratch)
  const js = run('js');
  const wasm = run('wasm');
  let worst = 0;
  for (let i = 0; i < js.out.length; i++) worst = Math.max(worst, Math.abs(js.out[i] - wasm.out[i]));
  assert.ok(worst < 1e-5, `outputs differ by ${worst}`);
  t.diagnostic(`${tokens} tokens in chunks of ${chunk}, one layer: js ${js.ms.toFixed(1)} ms, wasm ${wasm.ms.toFixed(1)} ms (default path: ${softmaxPath()}); max |Δ| ${worst.toExponential(2)}`);
});
