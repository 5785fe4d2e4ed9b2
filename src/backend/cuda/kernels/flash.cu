// Causal prefill attention on tensor cores, FlashAttention-2 style, over the per-head ragged KV memory: for a
// 16-bit cache (KV_T 1 bf16, 2 f16), the products run in that type with f32 accumulation (mma.sync m16n8k16), the
// softmax online in f32. Compiled per HEAD_DIM (a multiple of 16, ≤ 256) and GROUP.
//
// One block per 128 query rows of one query head; each of its 8 warps owns 16 rows, its queries in registers. The
// block walks the key tiles its rows can see ([lo, hi): entries at positions ≤ the last row's and, with a window,
// > the first row's − window) through shared memory — keys and values row-major in 16-byte vectors, rows padded
// against bank conflicts, values read transposed by ldmatrix — and masks inside a tile by original position exactly
// as attention/visibility.ts states it. The
// products S = Q·Kᵀ and O += P·V are mma tiles; P goes from the accumulator layout to the next product's input
// layout in registers (FlashAttention-2's trick: an m16n8 accumulator pair is an m16k16 operand). Tiles are
// double-buffered: the next tile's keys and values stream in by cp.async while the current one is multiplied.
#include "common.cuh"
#define WARPS 8
#define ROWS (16 * WARPS)
#define KT (HEAD_DIM <= 128 ? 64 : 32)
#define DP (HEAD_DIM + 8)

__device__ __forceinline__ unsigned shared_address(const void* p) {
  unsigned a;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
  return a;
}
typedef Store<KV_T> S;
typedef S::word word;

__device__ __forceinline__ u16 to_mma(float f) {
#if KV_T == 2
  return f32_to_f16(f);
#else
  return f32_to_bf16(f);
#endif
}

__device__ __forceinline__ unsigned pack(float lo, float hi) { return (unsigned)to_mma(lo) | ((unsigned)to_mma(hi) << 16); }

__device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
#if KV_T == 2
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(shared_address(smem)), "l"(gmem));
}

/** Shared memory per block: two buffers of keys and of values, KT rows of DP each. */
#define SMEM_BYTES (2 * 2 * KT * DP * 2)

__device__ __forceinline__ int count_up_to(const int* pos, int n, int p) {
  int lo = 0, hi = n;
  while (lo < hi) { const int mid = (lo + hi) >> 1; if (pos[mid] <= p) lo = mid + 1; else hi = mid; }
  return lo;
}

// q, out: [rows × numHeads·HEAD_DIM] f32; rows at ascending positions qpos. K, V, P: the KV head's entries.
extern "C" __global__ void __launch_bounds__(WARPS * 32) flash_prefill(const float* q, float* out, const int* qpos, int rows, int numHeads,
    const word* const* keys, const word* const* values, const int* const* positions, const int* lengths, float scale, int window) {
  extern __shared__ __align__(16) u16 smem[];
  __shared__ int kposAll[2][KT];
  const int qh = blockIdx.y, kvh = qh / GROUP;
  const int r0 = blockIdx.x * ROWS;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, tig = lane & 3;
  const word* K = keys[kvh];
  const word* V = values[kvh];
  const int* P = positions[kvh];
  const int len = lengths[kvh];
  const int last = min(rows, r0 + ROWS) - 1;
  const int hi = count_up_to(P, len, qpos[last]);
  const int lo = window > 0 ? count_up_to(P, hi, qpos[r0] - window) : 0;

  // This thread's two rows (g and g + 8 of its warp's 16) and their positions; rows past the end see nothing.
  const int ra = r0 + warp * 16 + g, rb = ra + 8;
  const int pa = ra < rows ? qpos[ra] : -2147483647, pb = rb < rows ? qpos[rb] : -2147483647;
  const float qscale = scale * 1.4426950408889634f;  // exp2 below

  // Queries as mma A operands: HEAD_DIM/16 k-chunks of 4 registers.
  unsigned qa[HEAD_DIM / 16][4];
#pragma unroll
  for (int kc = 0; kc < HEAD_DIM / 16; kc++) {
    const int c = kc * 16 + tig * 2;
    const float* qra = q + ((long long)min(ra, rows - 1) * numHeads + qh) * HEAD_DIM;
    const float* qrb = q + ((long long)min(rb, rows - 1) * numHeads + qh) * HEAD_DIM;
    qa[kc][0] = pack(qra[c] * qscale, qra[c + 1] * qscale);
    qa[kc][1] = pack(qrb[c] * qscale, qrb[c + 1] * qscale);
    qa[kc][2] = pack(qra[c + 8] * qscale, qra[c + 9] * qscale);
    qa[kc][3] = pack(qrb[c + 8] * qscale, qrb[c + 9] * qscale);
  }
  float o[HEAD_DIM / 8][4];
#pragma unroll
  for (int n = 0; n < HEAD_DIM / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float ma = -INFINITY, mb = -INFINITY, la = 0.f, lb = 0.f;

  // Tile `it` into buffer it & 1: rows in the tile by cp.async, rows past the end zeroed, positions alongside.
  auto load = [&](int it) {
    const int t0 = lo + it * KT, tn = min(KT, hi - t0), b = it & 1;
    u16* Kb = smem + b * 2 * KT * DP;
    u16* Vb = Kb + KT * DP;
    for (int i = threadIdx.x; i < KT * (HEAD_DIM / 8); i += blockDim.x) {
      const int j = i / (HEAD_DIM / 8), c = (i % (HEAD_DIM / 8)) * 8;
      if (j < tn) {
        const long long at = (long long)(t0 + j) * HEAD_DIM + c;
        cp_async16(Kb + j * DP + c, K + at);
        cp_async16(Vb + j * DP + c, V + at);
      } else {
        *(uint4*)(Kb + j * DP + c) = make_uint4(0, 0, 0, 0);
        *(uint4*)(Vb + j * DP + c) = make_uint4(0, 0, 0, 0);
      }
    }
    for (int j = threadIdx.x; j < KT; j += blockDim.x) kposAll[b][j] = j < tn ? P[t0 + j] : 2147483647;
    asm volatile("cp.async.commit_group;");
  };
  const int tiles = (hi - lo + KT - 1) / KT;
  if (tiles > 0) load(0);
  for (int it = 0; it < tiles; it++) {
    if (it + 1 < tiles) {
      load(it + 1);
      asm volatile("cp.async.wait_group 1;");
    } else {
      asm volatile("cp.async.wait_group 0;");
    }
    __syncthreads();
    const u16* Ks = smem + (it & 1) * 2 * KT * DP;
    const u16* Vs = Ks + KT * DP;
    const int* kpos = kposAll[it & 1];

    // S = Q·Kᵀ for this warp's 16 rows × KT keys.
    float s[KT / 8][4];
#pragma unroll
    for (int n = 0; n < KT / 8; n++) {
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
      for (int kc = 0; kc < HEAD_DIM / 16; kc++) {
        const u16* kr = Ks + (n * 8 + g) * DP + kc * 16 + tig * 2;
        mma(s[n], qa[kc], *(const unsigned*)kr, *(const unsigned*)(kr + 8));
      }
    }
    // Mask by position, then the online softmax of each row (a row's 4 threads are one quad).
    float mxa = -INFINITY, mxb = -INFINITY;
#pragma unroll
    for (int n = 0; n < KT / 8; n++)
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int kp = kpos[n * 8 + tig * 2 + e];
        const bool va = kp <= pa && (window <= 0 || kp > pa - window);
        const bool vb = kp <= pb && (window <= 0 || kp > pb - window);
        s[n][e] = va ? s[n][e] : -INFINITY;
        s[n][2 + e] = vb ? s[n][2 + e] : -INFINITY;
        mxa = fmaxf(mxa, s[n][e]);
        mxb = fmaxf(mxb, s[n][2 + e]);
      }
    for (int o2 = 1; o2 < 4; o2 <<= 1) {
      mxa = fmaxf(mxa, __shfl_xor_sync(0xffffffffu, mxa, o2));
      mxb = fmaxf(mxb, __shfl_xor_sync(0xffffffffu, mxb, o2));
    }
    const float na = fmaxf(ma, mxa), nb = fmaxf(mb, mxb);
    const float ca = na == -INFINITY ? 1.f : ex2(ma - na), cb = nb == -INFINITY ? 1.f : ex2(mb - nb);
    ma = na;
    mb = nb;
    la *= ca;
    lb *= cb;
#pragma unroll
    for (int n = 0; n < HEAD_DIM / 8; n++) { o[n][0] *= ca; o[n][1] *= ca; o[n][2] *= cb; o[n][3] *= cb; }
#pragma unroll
    for (int n = 0; n < KT / 8; n++) {
      s[n][0] = na == -INFINITY ? 0.f : ex2(s[n][0] - na);
      s[n][1] = na == -INFINITY ? 0.f : ex2(s[n][1] - na);
      s[n][2] = nb == -INFINITY ? 0.f : ex2(s[n][2] - nb);
      s[n][3] = nb == -INFINITY ? 0.f : ex2(s[n][3] - nb);
      la += s[n][0] + s[n][1];
      lb += s[n][2] + s[n][3];
    }
    // O += P·V: P's accumulator pairs (key tiles 2t, 2t+1) are the A operand of k-chunk t.
#pragma unroll
    for (int t = 0; t < KT / 16; t++) {
      const unsigned pa4[4] = {pack(s[2 * t][0], s[2 * t][1]), pack(s[2 * t][2], s[2 * t][3]), pack(s[2 * t + 1][0], s[2 * t + 1][1]), pack(s[2 * t + 1][2], s[2 * t + 1][3])};
#pragma unroll
      for (int n = 0; n < HEAD_DIM / 8; n++) {
        // Values row-major [key][dim]: the B operand (k = key, n = dim) is their transpose, which ldmatrix.trans reads
        // (threads 0–15 give the addresses of keys t·16 … t·16+15 at dims n·8 …).
        unsigned b0, b1;
        const unsigned addr = shared_address(Vs + (t * 16 + (lane & 15)) * DP + n * 8);
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];" : "=r"(b0), "=r"(b1) : "r"(addr));
        mma(o[n], pa4, b0, b1);
      }
    }
    __syncthreads();  // every warp is done with this buffer before tile it + 2 overwrites it
  }
  // (each iteration ends with a barrier below, before its buffer is refilled)
  // Row sums over the quad, then the normalised output.
  for (int o2 = 1; o2 < 4; o2 <<= 1) {
    la += __shfl_xor_sync(0xffffffffu, la, o2);
    lb += __shfl_xor_sync(0xffffffffu, lb, o2);
  }
  const float ia = la > 0.f ? 1.f / la : 0.f, ib = lb > 0.f ? 1.f / lb : 0.f;
#pragma unroll
  for (int n = 0; n < HEAD_DIM / 8; n++) {
    const int c = n * 8 + tig * 2;
    if (ra < rows) {
      float* w = out + ((long long)ra * numHeads + qh) * HEAD_DIM + c;
      w[0] = o[n][0] * ia;
      w[1] = o[n][1] * ia;
    }
    if (rb < rows) {
      float* w = out + ((long long)rb * numHeads + qh) * HEAD_DIM + c;
      w[0] = o[n][2] * ib;
      w[1] = o[n][3] * ib;
    }
  }
}
