// Shared by every kernel source: 16-bit storage conversions without the toolkit's headers (NVRTC builds these files
// at run time with no include path), and warp reductions. Storage types: 0 f32, 1 bf16, 2 f16 (STORE_T of a build).
#pragma once
typedef unsigned short u16;
typedef unsigned long long u64;
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

__device__ __forceinline__ float bf16_to_f32(u16 x) { return __uint_as_float(((unsigned)x) << 16); }
__device__ __forceinline__ u16 f32_to_bf16(float f) {
  unsigned x = __float_as_uint(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (u16)(((x >> 16) | 0x40u) & 0xffffu);  // NaN stays NaN
  return (u16)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);                              // round to nearest even
}
__device__ __forceinline__ float f16_to_f32(u16 x) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x)); return f; }
__device__ __forceinline__ u16 f32_to_f16(float f) { u16 x; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(x) : "f"(f)); return x; }

// Loads and stores of a storage type as f32: f32 storage is float*, 16-bit storage u16* holding bf16 or f16 words.
template <int T> struct Store;
template <> struct Store<0> {
  typedef float word;
  static __device__ __forceinline__ float load(const float* p, long long i) { return p[i]; }
  static __device__ __forceinline__ void store(float* p, long long i, float v) { p[i] = v; }
};
template <> struct Store<1> {
  typedef u16 word;
  static __device__ __forceinline__ float load(const u16* p, long long i) { return bf16_to_f32(p[i]); }
  static __device__ __forceinline__ void store(u16* p, long long i, float v) { p[i] = f32_to_bf16(v); }
};
template <> struct Store<2> {
  typedef u16 word;
  static __device__ __forceinline__ float load(const u16* p, long long i) { return f16_to_f32(p[i]); }
  static __device__ __forceinline__ void store(u16* p, long long i, float v) { p[i] = f32_to_f16(v); }
};

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over a block of up to 1024 threads (every thread gets it); `shared` holds 32 floats.
__device__ __forceinline__ float block_sum(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : 0.f;
  return warp_sum(v);
}
