/** Row-wise and element-wise f32 kernels of the CPU backend: norms, activations, embedding lookup. */

export function rmsNorm(x: Float32Array, weight: Float32Array, eps: number, out: Float32Array): void {
  const n = weight.length;
  for (let o = 0; o < x.length; o += n) {
    let sum = 0;
    for (let i = o; i < o + n; i++) sum += x[i] * x[i];
    scaleRow(x, o, weight, 1 / Math.sqrt(sum / n + eps), out);
  }
}

/** x += delta (rounded to f32, as a separate add would store it), then out = rmsNorm(x): one pass fewer over x. */
export function addRmsNorm(x: Float32Array, delta: Float32Array, weight: Float32Array, eps: number, out: Float32Array): void {
  const n = weight.length;
  for (let o = 0; o < x.length; o += n) {
    let sum = 0;
    for (let i = o; i < o + n; i++) {
      const v = Math.fround(x[i] + delta[i]);
      x[i] = v;
      sum += v * v;
    }
    scaleRow(x, o, weight, 1 / Math.sqrt(sum / n + eps), out);
  }
}

/** out = x · scale (rounded to f32, as PyTorch's f32 product is) · weight, over the row at offset o. */
function scaleRow(x: Float32Array, o: number, weight: Float32Array, scale: number, out: Float32Array): void {
  for (let i = 0; i < weight.length; i++) out[o + i] = Math.fround(x[o + i] * scale) * weight[i];
}

export function layerNorm(x: Float32Array, weight: Float32Array, bias: Float32Array, eps: number, out: Float32Array): void {
  const n = weight.length;
  for (let r = 0; r < x.length / n; r++) {
    const o = r * n;
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[o + i];
    mean /= n;
    let variance = 0;
    for (let i = 0; i < n; i++) variance += (x[o + i] - mean) ** 2;
    const scale = 1 / Math.sqrt(variance / n + eps);
    for (let i = 0; i < n; i++) out[o + i] = (x[o + i] - mean) * scale * weight[i] + bias[i];
  }
}

export function swiglu(gateUp: Float32Array, rows: number, inner: number, out: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    const g = r * 2 * inner;
    const o = r * inner;
    for (let i = 0; i < inner; i++) {
      const gate = gateUp[g + i];
      out[o + i] = (gate / (1 + Math.exp(-gate))) * gateUp[g + inner + i];
    }
  }
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** GPT-2's tanh approximation ("gelu_new") or the exact erf form ("gelu"). */
export function gelu(x: Float32Array, kind: 'gelu_new' | 'gelu'): void {
  if (kind === 'gelu_new') {
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      x[i] = 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)));
    }
  } else {
    for (let i = 0; i < x.length; i++) x[i] = 0.5 * x[i] * (1 + erf(x[i] / Math.SQRT2));
  }
}

/** erf to about 1e-7 absolute (Abramowitz & Stegun 7.1.26 is too coarse; this is Numerical Recipes' erfc). */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
}

export function embedding(table: Float32Array, dim: number, ids: ArrayLike<number>, out: Float32Array): void {
  for (let t = 0; t < ids.length; t++) out.set(table.subarray(ids[t] * dim, (ids[t] + 1) * dim), t * dim);
}

/** In place, numerically stable softmax of x[0..n). */
export function softmaxInPlace(x: Float32Array, n = x.length): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (x[i] > max) max = x[i];
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(x[i] - max);
    x[i] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let i = 0; i < n; i++) x[i] *= inv;
}
