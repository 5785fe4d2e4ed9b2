// Row-wise and element-wise kernels of the CUDA backend: activations are f32; weights (W) are read in their stored
// type, one instantiation per storage type (suffix _0 f32, _1 bf16, _2 f16). Sums run in f32, as the CPU backend's.
#include "common.cuh"

template <int W>
__device__ void embedding(const typename Store<W>::word* table, const int* ids, float* out, int dim) {
  const long long row = blockIdx.x, from = (long long)ids[row] * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) out[row * dim + i] = Store<W>::load(table, from + i);
}

// x / sqrt(mean(x²) + eps) · w, one block per row.
template <int W>
__device__ void rms_norm(const float* x, const typename Store<W>::word* w, float* out, int cols, float eps) {
  __shared__ float shared[32];
  const float* r = x + (long long)blockIdx.x * cols;
  float s = 0.f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) s += r[i] * r[i];
  const float inv = rsqrtf(block_sum(s, shared) / cols + eps);
  float* o = out + (long long)blockIdx.x * cols;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) o[i] = r[i] * inv * Store<W>::load(w, i);
}

// x += delta in place, then the RMSNorm of the sum into out (the residual add fused into the norm after it).
template <int W>
__device__ void add_rms_norm(float* x, const float* delta, const typename Store<W>::word* w, float* out, int cols, float eps) {
  __shared__ float shared[32];
  float* r = x + (long long)blockIdx.x * cols;
  const float* d = delta + (long long)blockIdx.x * cols;
  float s = 0.f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const float v = r[i] + d[i];
    r[i] = v;
    s += v * v;
  }
  const float inv = rsqrtf(block_sum(s, shared) / cols + eps);
  float* o = out + (long long)blockIdx.x * cols;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) o[i] = r[i] * inv * Store<W>::load(w, i);
}

template <int W>
__device__ void layer_norm(const float* x, const typename Store<W>::word* w, const typename Store<W>::word* b, float* out, int cols, float eps) {
  __shared__ float shared[32];
  const float* r = x + (long long)blockIdx.x * cols;
  float s = 0.f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) s += r[i];
  const float mean = block_sum(s, shared) / cols;
  float q = 0.f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) q += (r[i] - mean) * (r[i] - mean);
  const float inv = rsqrtf(block_sum(q, shared) / cols + eps);
  float* o = out + (long long)blockIdx.x * cols;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) o[i] = (r[i] - mean) * inv * Store<W>::load(w, i) + Store<W>::load(b, i);
}

template <int W>
__device__ void bias_add(float* y, const typename Store<W>::word* b, long long n, int cols) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) y[i] += Store<W>::load(b, i % cols);
}

// 16-bit storage widened to f32 (reading a 16-bit tensor back).
template <int W>
__device__ void widen(const typename Store<W>::word* x, float* out, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) out[i] = Store<W>::load(x, i);
}

// f32 activations narrowed to a 16-bit type (the input of a matrix product with 16-bit weights).
template <int W>
__device__ void narrow(const float* x, typename Store<W>::word* out, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) Store<W>::store(out, i, x[i]);
}

#define STAMP(W)                                                                                                      \
  extern "C" __global__ void embedding_##W(const Store<W>::word* t, const int* ids, float* out, int dim) { embedding<W>(t, ids, out, dim); } \
  extern "C" __global__ void rms_norm_##W(const float* x, const Store<W>::word* w, float* out, int cols, float eps) { rms_norm<W>(x, w, out, cols, eps); } \
  extern "C" __global__ void add_rms_norm_##W(float* x, const float* d, const Store<W>::word* w, float* out, int cols, float eps) { add_rms_norm<W>(x, d, w, out, cols, eps); } \
  extern "C" __global__ void layer_norm_##W(const float* x, const Store<W>::word* w, const Store<W>::word* b, float* out, int cols, float eps) { layer_norm<W>(x, w, b, out, cols, eps); } \
  extern "C" __global__ void bias_add_##W(float* y, const Store<W>::word* b, long long n, int cols) { bias_add<W>(y, b, n, cols); } \
  extern "C" __global__ void widen_##W(const Store<W>::word* x, float* out, long long n) { widen<W>(x, out, n); } \
  extern "C" __global__ void narrow_##W(const float* x, Store<W>::word* out, long long n) { narrow<W>(x, out, n); }
STAMP(0)
STAMP(1)
STAMP(2)

// Rotary embedding in place, rotate-half layout: only the first 2·half dimensions of each head turn (partial rotary).
extern "C" __global__ void rope(float* x, const float* cos, const float* sin, int rows, int heads, int headDim, int half) {
  const long long n = (long long)rows * heads * half;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const int j = (int)(i % half);
    const long long rh = i / half;
    const long long row = rh / heads;
    float* h = x + rh * headDim;
    const float c = cos[row * half + j], s = sin[row * half + j];
    const float a = h[j], b = h[j + half];
    h[j] = a * c - b * s;
    h[j + half] = b * c + a * s;
  }
}

// silu(gate) · up from [rows × 2·inner] (gate columns, then up columns).
extern "C" __global__ void swiglu(const float* gu, float* out, int rows, int inner) {
  const long long n = (long long)rows * inner;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const long long r = i / inner;
    const int c = (int)(i % inner);
    const float g = gu[r * 2 * inner + c], u = gu[r * 2 * inner + inner + c];
    out[i] = g / (1.f + expf(-g)) * u;
  }
}

// kind 0: gelu_new (tanh form, GPT-2); 1: the exact erf form.
extern "C" __global__ void gelu(float* x, long long n, int kind) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const float v = x[i];
    x[i] = kind == 0 ? 0.5f * v * (1.f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)))
                     : 0.5f * v * (1.f + erff(v * 0.7071067811865476f));
  }
}

extern "C" __global__ void add(float* a, const float* b, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) a[i] += b[i];
}

extern "C" __global__ void fill_columns(float* x, int rows, int cols, int start, int end, float value) {
  const int w = end - start;
  const long long n = (long long)rows * w;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) x[(i / w) * cols + start + i % w] = value;
}

// dst[r·dstStride + dstOff + c] = src[r·srcStride + srcOff + c] for c < width: column blocks (split) and row ranges.
extern "C" __global__ void copy_block(const float* src, long long srcStride, long long srcOff, float* dst, long long dstStride, long long dstOff, int rows, int width) {
  const long long n = (long long)rows * width;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const long long r = i / width, c = i % width;
    dst[r * dstStride + dstOff + c] = src[r * srcStride + srcOff + c];
  }
}

// y[r][o] = Σ_i x[r][i]·w[o][i] (+ bias[o]) for a few rows (decode): one warp per output, the weight row read once
// in 16-byte vectors (in % 8 == 0 for 16-bit weights, % 4 for f32) and reused for every row; f32 accumulation. The
// weight stream is what a decode step is bound by, so this reads it at full width instead of narrowing x for cuBLAS.
#define GEMV_ROWS 8
template <int W>
__device__ void gemv(const float* x, const typename Store<W>::word* w, float* y, const typename Store<W>::word* bias, int rows, int out, int in) {
  const int lane = threadIdx.x & 31;
  const long long o = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
  if (o >= out) return;
  float acc[GEMV_ROWS];
#pragma unroll
  for (int r = 0; r < GEMV_ROWS; r++) acc[r] = 0.f;
  const int per = W == 0 ? 4 : 8;  // elements per 16-byte load
  const uint4* row = (const uint4*)(w + o * (long long)in);
  for (int v = lane; v < in / per; v += 32) {
    const uint4 raw = row[v];
    float wv[8];
    if (W == 0) {
      wv[0] = __uint_as_float(raw.x); wv[1] = __uint_as_float(raw.y); wv[2] = __uint_as_float(raw.z); wv[3] = __uint_as_float(raw.w);
    } else {
      const unsigned u[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
      for (int k = 0; k < 4; k++) {
        wv[2 * k] = Store<W>::load((const typename Store<W>::word*)&u[k], 0);
        wv[2 * k + 1] = Store<W>::load((const typename Store<W>::word*)&u[k], 1);
      }
    }
    const int i = v * per;
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++) {
      if (r >= rows) break;
      const float4* xr = (const float4*)(x + (long long)r * in + i);
      const float4 a = xr[0];
      float s = a.x * wv[0] + a.y * wv[1] + a.z * wv[2] + a.w * wv[3];
      if (W != 0) { const float4 b = xr[1]; s += b.x * wv[4] + b.y * wv[5] + b.z * wv[6] + b.w * wv[7]; }
      acc[r] += s;
    }
  }
#pragma unroll
  for (int r = 0; r < GEMV_ROWS; r++) {
    if (r >= rows) break;
    const float s = warp_sum(acc[r]);
    if (lane == 0) y[(long long)r * out + o] = s + (bias ? Store<W>::load(bias, o) : 0.f);
  }
}
extern "C" __global__ void gemv_0(const float* x, const float* w, float* y, const float* b, int rows, int out, int in) { gemv<0>(x, w, y, b, rows, out, in); }
extern "C" __global__ void gemv_1(const float* x, const u16* w, float* y, const u16* b, int rows, int out, int in) { gemv<1>(x, w, y, b, rows, out, in); }
extern "C" __global__ void gemv_2(const float* x, const u16* w, float* y, const u16* b, int rows, int out, int in) { gemv<2>(x, w, y, b, rows, out, in); }
