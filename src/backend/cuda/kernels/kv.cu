// The device KV memory's data movement: appending a projection's rows to each KV head (narrowed to the cache's
// storage type KV_T, compiled in), gathering the kept entries of a head (keep), and key norms.
#include "common.cuh"
#define MAXH 32
typedef Store<KV_T> S;
typedef S::word word;

// Where each KV head of the call writes: its key and value rows and positions, from entry `start` on.
struct Targets { u64 k[MAXH]; u64 v[MAXH]; u64 pos[MAXH]; int start[MAXH]; };

// k, v: [rows × width] f32 (a layer's projections), head h's columns at h·headDim (+ `base`·headDim for the launch).
extern "C" __global__ void kv_append(const float* k, const float* v, const int* positions, int rows, int headDim, int width, int base, Targets t) {
  const int h = blockIdx.y, row = blockIdx.x;
  word* kd = (word*)t.k[h];
  word* vd = (word*)t.v[h];
  const long long at = (long long)(t.start[h] + row) * headDim;
  const float* ks = k + (long long)row * width + (long long)(base + h) * headDim;
  const float* vs = v + (long long)row * width + (long long)(base + h) * headDim;
  for (int i = threadIdx.x; i < headDim; i += blockDim.x) {
    S::store(kd, at + i, ks[i]);
    S::store(vd, at + i, vs[i]);
  }
  if (threadIdx.x == 0) ((int*)t.pos[h])[t.start[h] + row] = positions[row];
}

// dst row i = src row idx[i] (rows of `width` words), positions likewise when given.
extern "C" __global__ void kv_gather(const word* src, word* dst, const int* idx, int n, int width, const int* srcPos, int* dstPos) {
  const long long total = (long long)n * width;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    const long long r = i / width, c = i % width;
    dst[i] = src[(long long)idx[r] * width + c];
  }
  if (srcPos) for (long long r = blockIdx.x * (long long)blockDim.x + threadIdx.x; r < n; r += (long long)gridDim.x * blockDim.x) dstPos[r] = srcPos[idx[r]];
}

// rows written into a head at `idx` from f32 rows (writeValues / writeKeys).
extern "C" __global__ void kv_scatter(const float* rows, word* dst, const int* idx, int n, int width) {
  const long long total = (long long)n * width;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    const long long r = i / width, c = i % width;
    S::store(dst, (long long)idx[r] * width + c, rows[i]);
  }
}

// Entries [0, n) of a head as f32 rows (reading keys or values back to the host).
extern "C" __global__ void kv_widen(const word* src, float* out, long long count) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) out[i] = S::load(src, i);
}

// The L2 norm of each of n keys, one warp per key.
extern "C" __global__ void key_norms(const word* keys, float* out, int n, int headDim) {
  const int lane = threadIdx.x & 31;
  const long long key = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
  if (key >= n) return;
  float s = 0.f;
  for (int i = lane; i < headDim; i += 32) { const float x = S::load(keys, key * headDim + i); s += x * x; }
  s = warp_sum(s);
  if (lane == 0) out[key] = sqrtf(s);
}
