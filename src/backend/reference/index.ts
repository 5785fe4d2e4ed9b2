/**
 * The reference backend: every compute op in plain loops, accumulating in f64, with no pool, no SIMD, no BLAS and
 * no shortcut — slow on purpose (its memory ops, host arrays as the CPU's, are HostBackend's: ../host.ts). It is the oracle the fast backends are checked against op by op
 * (test/backend/conformance.ts) and model by model (the same logits within 1e-4), in the manner of llm.c's
 * reference kernels: a new backend is correct when this suite passes against it. Attention is
 * attention/reference.ts (the visibility rule and each kernel's reference weights, entry by entry).
 */
import { referenceAttention } from '../../attention/reference.js';
import { applyRope } from '../../attention/rope.js';
import { Tensor } from '../../tensor/tensor.js';
import type { AttentionOptions, Backend } from '../backend.js';
import type { LayerCache } from '../../cache/kv-cache.js';
import { HostBackend } from '../host.js';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export class ReferenceBackend extends HostBackend implements Backend {
  readonly name = 'reference';

  scope<R extends Tensor | Tensor[] | void>(fn: () => R): R {
    return fn();
  }

  linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
    const [outDim, inDim] = weight.shape;
    const rows = x.size / inDim;
    const a = x.f32;
    const w = weight.f32;
    const y = new Float32Array(rows * outDim);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < outDim; o++) {
        let s = bias ? bias.f32[o] : 0;
        for (let i = 0; i < inDim; i++) s += a[r * inDim + i] * w[o * inDim + i];
        y[r * outDim + o] = s;
      }
    }
    return new Tensor([rows, outDim], y);
  }

  embedding(table: Tensor, ids: ArrayLike<number>): Tensor {
    const dim = table.cols;
    const out = new Float32Array(ids.length * dim);
    for (let t = 0; t < ids.length; t++) for (let i = 0; i < dim; i++) out[t * dim + i] = table.f32[ids[t] * dim + i];
    return new Tensor([ids.length, dim], out);
  }

  rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
    const out = new Float32Array(x.size);
    this.rmsRows(x.f32, weight.f32, eps, out);
    return new Tensor(x.shape, out);
  }

  addRmsNorm(x: Tensor, delta: Tensor, weight: Tensor, eps: number, out?: Tensor): Tensor {
    const data = x.f32;
    for (let i = 0; i < data.length; i++) data[i] += delta.f32[i];
    const result = out ?? new Tensor(x.shape, new Float32Array(x.size));
    this.rmsRows(data, weight.f32, eps, result.f32);
    return result;
  }

  layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor {
    const n = weight.size;
    const a = x.f32;
    const out = new Float32Array(x.size);
    for (let o = 0; o < a.length; o += n) {
      let mean = 0;
      for (let i = 0; i < n; i++) mean += a[o + i];
      mean /= n;
      let variance = 0;
      for (let i = 0; i < n; i++) variance += (a[o + i] - mean) ** 2;
      const scale = 1 / Math.sqrt(variance / n + eps);
      for (let i = 0; i < n; i++) out[o + i] = (a[o + i] - mean) * scale * weight.f32[i] + bias.f32[i];
    }
    return new Tensor(x.shape, out);
  }

  rope(x: Tensor, heads: number, headDim: number, tables: { cos: Float32Array; sin: Float32Array }): void {
    applyRope(x.f32, x.size / (heads * headDim), heads, headDim, tables);
  }

  swiglu(gateUp: Tensor, inner: number): Tensor {
    const rows = gateUp.size / (2 * inner);
    const g = gateUp.f32;
    const out = new Float32Array(rows * inner);
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < inner; i++) {
        const gate = g[r * 2 * inner + i];
        out[r * inner + i] = (gate / (1 + Math.exp(-gate))) * g[r * 2 * inner + inner + i];
      }
    }
    return new Tensor([rows, inner], out);
  }

  gelu(x: Tensor, kind: 'gelu_new' | 'gelu'): void {
    const a = x.f32;
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      a[i] = kind === 'gelu_new' ? 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v ** 3))) : 0.5 * v * (1 + erf(v / Math.SQRT2));
    }
  }

  add(a: Tensor, b: Tensor): void {
    for (let i = 0; i < a.size; i++) a.f32[i] += b.f32[i];
  }

  fillColumns(x: Tensor, start: number, end: number, value: number): void {
    for (let r = 0; r < x.rows; r++) for (let c = start; c < end; c++) x.f32[r * x.cols + c] = value;
  }

  copy(dst: Tensor, src: Tensor): void {
    if (dst.size !== src.size) throw new Error(`copy: ${src.size} elements into ${dst.size}`);
    for (let i = 0; i < dst.size; i++) dst.f32[i] = src.f32[i];
  }

  splitColumns(x: Tensor, widths: number[]): Tensor[] {
    let offset = 0;
    return widths.map((w) => {
      const out = new Float32Array(x.rows * w);
      for (let r = 0; r < x.rows; r++) for (let c = 0; c < w; c++) out[r * w + c] = x.f32[r * x.cols + offset + c];
      offset += w;
      return new Tensor([x.rows, w], out);
    });
  }

  concatRows(parts: Tensor[]): Tensor {
    const cols = parts[0].cols;
    const out: number[] = [];
    for (const p of parts) for (let i = 0; i < p.size; i++) out.push(p.f32[i]);
    return new Tensor([out.length / cols, cols], Float32Array.from(out));
  }

  sliceRows(x: Tensor, start: number, end: number): Tensor {
    return new Tensor([end - start, x.cols], x.f32.slice(start * x.cols, end * x.cols));
  }

  attention(q: Tensor, layer: LayerCache, positions: Int32Array, opts: AttentionOptions): Tensor {
    const numHeads = q.size / positions.length / layer.heads[0].headDim;
    const { out, weights } = referenceAttention(q.f32, numHeads, layer, positions, opts);
    const acc = opts.observer?.accumulate;
    if ((opts.observer?.observe || acc) && (opts.kernel?.name ?? 'softmax') !== 'softmax') {
      throw new Error(`the ${opts.kernel!.name} attention kernel has no probabilities for an observer to read`);
    }
    if (acc) {
      const group = numHeads / layer.heads.length;
      layer.heads.forEach((head, g) => {
        const sum = head.stat(acc.sum);
        const count = head.stat(acc.count);
        for (let t = 0; t < positions.length; t++) {
          for (let j = 0; j < group; j++) weights[g * group + j][t].forEach((x, i) => (sum[i] += x));
          const visible = head.visibleUpTo(positions[t]);
          for (let i = 0; i < visible; i++) count[i] += group;
        }
      });
    }
    if (opts.observer?.observe) {
      if ((opts.kernel?.name ?? 'softmax') !== 'softmax') throw new Error(`the ${opts.kernel!.name} attention kernel has no probabilities for an observer to read`);
      const group = numHeads / layer.heads.length;
      layer.heads.forEach((head, g) => {
        const cols = head.length;
        const probs = new Float32Array(positions.length * group * cols);
        for (let t = 0; t < positions.length; t++) {
          for (let j = 0; j < group; j++) probs.set(Float32Array.from(weights[g * group + j][t]), (t * group + j) * cols);
        }
        opts.observer!.observe!({ layer: opts.layer, kvHead: g, groupSize: group, queryPositions: positions, probs, cols });
      });
    }
    return new Tensor(q.shape, out);
  }

  private rmsRows(x: Float32Array, weight: Float32Array, eps: number, out: Float32Array): void {
    const n = weight.length;
    for (let o = 0; o < x.length; o += n) {
      let sum = 0;
      for (let i = o; i < o + n; i++) sum += x[i] * x[i];
      const scale = 1 / Math.sqrt(sum / n + eps);
      for (let i = 0; i < n; i++) out[o + i] = x[o + i] * scale * weight[i];
    }
  }
}

/** erf by its Maclaurin series (|x| < 3) and continued fraction (beyond): near double precision, unlike a fit. */
function erf(x: number): number {
  const z = Math.abs(x);
  let r: number;
  if (z < 3) {
    let term = z;
    let sum = z;
    for (let n = 1; n < 100; n++) {
      term *= (-z * z) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    // erfc(z) = exp(−z²)/√π · 1/(z + 1/2/(z + 1/(z + 3/2/(z + …)))), Lentz-free: a fixed depth suffices for z ≥ 3.
    let f = z;
    for (let n = 60; n >= 1; n--) f = z + n / 2 / f;
    r = 1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
  }
  return x < 0 ? -r : r;
}

export const referenceBackend = new ReferenceBackend();
