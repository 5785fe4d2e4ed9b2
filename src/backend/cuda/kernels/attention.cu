// Grouped-query attention over the per-head ragged KV memory, compiled per model shape: HEAD_DIM, GROUP (query heads
// per KV head), KV_T (cache storage: 0 f32, 1 bf16, 2 f16) and SIGMOID (0 softmax, 1 σ(s + bias) with no
// normalisation). Visibility is attention/visibility.ts's rule: an entry is read by a query row when its original
// position is ≤ the row's, inside the sliding window, in the head's (or query head's) entry list when there is one,
// and, under a tree mask, when it is not another row of the call unless that row is an ancestor.
//
// attend: one block per (query row, KV head, split). The block's warps take the entries of its split in turn; each
// warp scores an entry for every query head of the group (lanes hold HEAD_DIM/32 dimensions each, one warp sum per
// head) and keeps an online softmax (running max, sum and weighted values); the warps then merge. Splits
// (flash-decoding's split-K) give a decode step with few rows enough blocks to fill the GPU; attend_combine merges
// them. attend_probs writes the probabilities themselves, for observers and attentionWeights.
#include "common.cuh"
#define MAXH 32
#define WARPS 4
#define DPL ((HEAD_DIM + 31) / 32)
typedef Store<KV_T> S;
typedef S::word word;

// The heads of one launch (up to MAXH KV heads of a layer): keys, values, positions, entries held, entry lists.
struct Heads { u64 k[MAXH]; u64 v[MAXH]; u64 pos[MAXH]; u64 list[MAXH]; int len[MAXH]; int listLen[MAXH]; };

__device__ __forceinline__ int count_up_to(const int* pos, int n, int p) {
  int lo = 0, hi = n;
  while (lo < hi) { const int mid = (lo + hi) >> 1; if (pos[mid] <= p) lo = mid + 1; else hi = mid; }
  return lo;
}

// What one block reads: which KV head, which query heads of its group, and the entries (a range or a list).
struct Plan {
  int kvl, g0, gcount;
  const word* K; const word* V; const int* P;
  const int* list;
  int lo, hi;
};

__device__ __forceinline__ Plan plan_of(const Heads& t, int base, int p, int window, const int* qlist, const int* qlistData) {
  Plan r;
  if (qlist) {  // one query head per block (per-query-head entry lists)
    r.kvl = blockIdx.y / GROUP; r.g0 = blockIdx.y % GROUP; r.gcount = 1;
  } else {
    r.kvl = blockIdx.y; r.g0 = 0; r.gcount = GROUP;
  }
  r.K = (const word*)t.k[r.kvl]; r.V = (const word*)t.v[r.kvl]; r.P = (const int*)t.pos[r.kvl];
  r.list = 0;
  if (qlist) {
    const int qh = (base + r.kvl) * GROUP + r.g0;
    if (qlist[2 * qh + 1] >= 0) { r.list = qlistData + qlist[2 * qh]; r.lo = 0; r.hi = qlist[2 * qh + 1]; }
  } else if (t.list[r.kvl]) { r.list = (const int*)t.list[r.kvl]; r.lo = 0; r.hi = t.listLen[r.kvl]; }
  if (!r.list) {
    r.hi = count_up_to(r.P, t.len[r.kvl], p);
    r.lo = window > 0 ? count_up_to(r.P, r.hi, p - window) : 0;
  }
  return r;
}

// Whether entry j (found through a list, or a tree row of the call) is visible to `row`; ranges are visible already.
__device__ __forceinline__ bool visible(const Plan& pl, int j, int row, int p, int window, const int* qpos, int rows, const int* parents) {
  const int e = pl.P[j];
  if (pl.list) {
    if (e > p) return false;
    if (window > 0 && e <= p - window) return false;
  }
  if (parents) {
    int tr = -1;
    for (int r = 0; r < rows; r++) if (qpos[r] == e) { tr = r; break; }
    if (tr >= 0 && tr != row) {
      bool anc = false;
      for (int r = parents[row]; r >= 0; r = parents[r]) if (r == tr) { anc = true; break; }
      if (!anc) return false;
    }
  }
  return true;
}

__device__ __forceinline__ void load_q(float (&q)[GROUP][DPL], const float* qs, int numHeads, int row, int qh0, int gcount, float scale) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int g = 0; g < GROUP; g++)
#pragma unroll
    for (int d = 0; d < DPL; d++) {
      const int c = lane + 32 * d;
      q[g][d] = (g < gcount && c < HEAD_DIM) ? qs[((long long)row * numHeads + qh0 + g) * HEAD_DIM + c] * scale : 0.f;
    }
}

__device__ __forceinline__ void load_row(float (&x)[DPL], const word* base, int j) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int d = 0; d < DPL; d++) {
    const int c = lane + 32 * d;
    x[d] = c < HEAD_DIM ? S::load(base, (long long)j * HEAD_DIM + c) : 0.f;
  }
}

__device__ __forceinline__ float dot(const float (&a)[DPL], const float (&b)[DPL]) {
  float s = 0.f;
#pragma unroll
  for (int d = 0; d < DPL; d++) s += a[d] * b[d];
  return warp_sum(s);
}

// The warps of a block merged into the split's partial result of each of its `gcount` query heads, at `out` (the
// first head's; the next head's is `splits` results further): running max, sum, then the weighted values. Sigmoid
// rows have no max or sum: their warps' values add up. attend and attend_decode share it.
template <int Sigmoid>
__device__ __forceinline__ void write_partial(const float (&sm)[WARPS][GROUP], const float (&sl)[WARPS][GROUP], const float (&sa)[WARPS][GROUP][HEAD_DIM], int gcount, float* out0, int splits) {
  for (int idx = threadIdx.x; idx < gcount * HEAD_DIM; idx += blockDim.x) {
    const int g = idx / HEAD_DIM, c = idx % HEAD_DIM;
    float* out = out0 + (long long)g * splits * (2 + HEAD_DIM);
    float M = -INFINITY, L = 0.f, A = 0.f;
    if (Sigmoid) {
      M = 0.f;
      for (int w = 0; w < WARPS; w++) A += sa[w][g][c];
    } else {
      for (int w = 0; w < WARPS; w++) M = fmaxf(M, sm[w][g]);
      if (M != -INFINITY)
        for (int w = 0; w < WARPS; w++) {
          if (sm[w][g] == -INFINITY) continue;
          const float f = expf(sm[w][g] - M);
          L += sl[w][g] * f;
          A += sa[w][g][c] * f;
        }
    }
    if (c == 0) { out[0] = M; out[1] = L; }
    out[2 + c] = A;
  }
}

// part: [rows × numHeads × splits × (2 + HEAD_DIM)]: running max, sum, then the weighted values (unnormalised).
extern "C" __global__ void __launch_bounds__(WARPS * 32) attend(const float* q, const int* qpos, int rows, int numHeads, int base, Heads t, float scale, int window, float bias, const int* parents, const int* qlist, const int* qlistData, int splits, float* part) {
  const int row = blockIdx.x, split = blockIdx.z, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int p = qpos[row];
  const Plan pl = plan_of(t, base, p, window, qlist, qlistData);
  const int qh0 = (base + pl.kvl) * GROUP + pl.g0;
  const int span = pl.hi - pl.lo;
  const int a = pl.lo + (int)((long long)span * split / splits), b = pl.lo + (int)((long long)span * (split + 1) / splits);
  float qr[GROUP][DPL];
  load_q(qr, q, numHeads, row, qh0, pl.gcount, scale);
  float m[GROUP], l[GROUP], acc[GROUP][DPL];
#pragma unroll
  for (int g = 0; g < GROUP; g++) {
    m[g] = -INFINITY; l[g] = 0.f;
#pragma unroll
    for (int d = 0; d < DPL; d++) acc[g][d] = 0.f;
  }
  for (int i = a + warp; i < b; i += WARPS) {
    const int j = pl.list ? pl.list[i] : i;
    if ((pl.list || parents) && !visible(pl, j, row, p, window, qpos, rows, parents)) continue;
    float k[DPL], v[DPL];
    load_row(k, pl.K, j);
    load_row(v, pl.V, j);
#pragma unroll
    for (int g = 0; g < GROUP; g++) {
      if (g >= pl.gcount) break;
      const float s = dot(qr[g], k);
#if SIGMOID
      const float w = 1.f / (1.f + expf(-(s + bias)));
#pragma unroll
      for (int d = 0; d < DPL; d++) acc[g][d] += w * v[d];
#else
      const float mn = fmaxf(m[g], s);
      const float corr = expf(m[g] - mn), e = expf(s - mn);
      l[g] = l[g] * corr + e;
#pragma unroll
      for (int d = 0; d < DPL; d++) acc[g][d] = acc[g][d] * corr + e * v[d];
      m[g] = mn;
#endif
    }
  }
  __shared__ float sm[WARPS][GROUP], sl[WARPS][GROUP], sa[WARPS][GROUP][HEAD_DIM];
#pragma unroll
  for (int g = 0; g < GROUP; g++) {
    if (lane == 0) { sm[warp][g] = m[g]; sl[warp][g] = l[g]; }
#pragma unroll
    for (int d = 0; d < DPL; d++) { const int c = lane + 32 * d; if (c < HEAD_DIM) sa[warp][g][c] = acc[g][d]; }
  }
  __syncthreads();
  write_partial<SIGMOID>(sm, sl, sa, pl.gcount, part + (((long long)row * numHeads + qh0) * splits + split) * (2 + HEAD_DIM), splits);
}

// out [rows × numHeads·HEAD_DIM]: the splits of each (row, query head) merged; a row that sees nothing reads 0.
extern "C" __global__ void attend_combine(const float* part, float* out, int numHeads, int qhBase, int qhCount, int splits) {
  const int row = blockIdx.x, qh = qhBase + blockIdx.y;
  const float* pr = part + ((long long)row * numHeads + qh) * splits * (2 + HEAD_DIM);
  for (int c = threadIdx.x; c < HEAD_DIM; c += blockDim.x) {
    float r;
#if SIGMOID
    r = 0.f;
    for (int s = 0; s < splits; s++) r += pr[s * (2 + HEAD_DIM) + 2 + c];
#else
    float M = -INFINITY;
    for (int s = 0; s < splits; s++) M = fmaxf(M, pr[s * (2 + HEAD_DIM)]);
    float L = 0.f, A = 0.f;
    if (M != -INFINITY)
      for (int s = 0; s < splits; s++) {
        const float ms = pr[s * (2 + HEAD_DIM)];
        if (ms == -INFINITY) continue;
        const float f = expf(ms - M);
        L += pr[s * (2 + HEAD_DIM) + 1] * f;
        A += pr[s * (2 + HEAD_DIM) + 2 + c] * f;
      }
    r = L > 0.f ? A / L : 0.f;
#endif
    out[((long long)row * numHeads + qh) * HEAD_DIM + c] = r;
  }
}

// Softmax probabilities: probs[kvl][row][g][cols], entries not visible 0 (cols ≥ every head's length; entries past a
// head's length are left alone). Two passes over the visible entries: the max and sum, then the normalised weights.
extern "C" __global__ void __launch_bounds__(WARPS * 32) attend_probs(const float* q, const int* qpos, int rows, int numHeads, int base, Heads t, float scale, int window, const int* parents, const int* qlist, const int* qlistData, float* probs, int cols) {
  const int row = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int p = qpos[row];
  const Plan pl = plan_of(t, base, p, window, qlist, qlistData);
  const int qh0 = (base + pl.kvl) * GROUP + pl.g0;
  float qr[GROUP][DPL];
  load_q(qr, q, numHeads, row, qh0, pl.gcount, scale);
  float m[GROUP], l[GROUP];
#pragma unroll
  for (int g = 0; g < GROUP; g++) { m[g] = -INFINITY; l[g] = 0.f; }
  for (int i = pl.lo + warp; i < pl.hi; i += WARPS) {
    const int j = pl.list ? pl.list[i] : i;
    if ((pl.list || parents) && !visible(pl, j, row, p, window, qpos, rows, parents)) continue;
    float k[DPL];
    load_row(k, pl.K, j);
#pragma unroll
    for (int g = 0; g < GROUP; g++) {
      if (g >= pl.gcount) break;
      const float s = dot(qr[g], k);
      const float mn = fmaxf(m[g], s);
      l[g] = l[g] * expf(m[g] - mn) + expf(s - mn);
      m[g] = mn;
    }
  }
  __shared__ float sm[WARPS][GROUP], sl[WARPS][GROUP], M[GROUP], L[GROUP];
  if (lane == 0)
    for (int g = 0; g < GROUP; g++) { sm[warp][g] = m[g]; sl[warp][g] = l[g]; }
  __syncthreads();
  if (threadIdx.x < GROUP) {
    const int g = threadIdx.x;
    float mx = -INFINITY, s = 0.f;
    for (int w = 0; w < WARPS; w++) mx = fmaxf(mx, sm[w][g]);
    if (mx != -INFINITY) for (int w = 0; w < WARPS; w++) if (sm[w][g] != -INFINITY) s += sl[w][g] * expf(sm[w][g] - mx);
    M[g] = mx; L[g] = s;
  }
  const int len = t.len[pl.kvl];
  for (int g = 0; g < pl.gcount; g++) {
    float* out = probs + (((long long)pl.kvl * rows + row) * GROUP + pl.g0 + g) * cols;
    for (int j = threadIdx.x; j < len; j += blockDim.x) out[j] = 0.f;
  }
  __syncthreads();
  for (int i = pl.lo + warp; i < pl.hi; i += WARPS) {
    const int j = pl.list ? pl.list[i] : i;
    if ((pl.list || parents) && !visible(pl, j, row, p, window, qpos, rows, parents)) continue;
    float k[DPL];
    load_row(k, pl.K, j);
#pragma unroll
    for (int g = 0; g < GROUP; g++) {
      if (g >= pl.gcount) break;
      const float s = dot(qr[g], k);
      if (lane == 0) probs[(((long long)pl.kvl * rows + row) * GROUP + pl.g0 + g) * cols + j] = L[g] > 0.f ? expf(s - M[g]) / L[g] : 0.f;
    }
  }
}

// Decoding over a 16-bit cache with no entry lists or tree (the common step): a head's entry is read by LPE =
// HEAD_DIM/8 lanes in one 16-byte load each, so a warp reads 32/LPE entries per step at full width, and the dot
// products need log2(LPE) shuffles per query head. HEAD_DIM 64, 128 or 256. Same splits and partial results as
// attend (attend_combine merges them).
#if KV_T != 0 && (HEAD_DIM == 64 || HEAD_DIM == 128 || HEAD_DIM == 256)
#define LPE (HEAD_DIM / 8)
#define EPW (32 / LPE)
__device__ __forceinline__ void widen8(const uint4 raw, float (&x)[8]) {
  const unsigned u[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int k = 0; k < 4; k++) {
    x[2 * k] = S::load((const word*)&u[k], 0);
    x[2 * k + 1] = S::load((const word*)&u[k], 1);
  }
}

extern "C" __global__ void __launch_bounds__(WARPS * 32) attend_decode(const float* q, const int* qpos, int numHeads, int base, Heads t, float scale, int window, int splits, float* part) {
  const int row = blockIdx.x, kvl = blockIdx.y, split = blockIdx.z;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, sub = lane / LPE, li = lane % LPE;
  const word* K = (const word*)t.k[kvl];
  const word* V = (const word*)t.v[kvl];
  const int* P = (const int*)t.pos[kvl];
  const int p = qpos[row];
  const int hi = count_up_to(P, t.len[kvl], p);
  const int lo = window > 0 ? count_up_to(P, hi, p - window) : 0;
  const int span = hi - lo;
  const int a = lo + (int)((long long)span * split / splits), b = lo + (int)((long long)span * (split + 1) / splits);
  const int qh0 = (base + kvl) * GROUP;
  float qr[GROUP][8], m[GROUP], l[GROUP], acc[GROUP][8];
#pragma unroll
  for (int g = 0; g < GROUP; g++) {
    m[g] = -INFINITY; l[g] = 0.f;
#pragma unroll
    for (int e = 0; e < 8; e++) { qr[g][e] = q[((long long)row * numHeads + qh0 + g) * HEAD_DIM + li * 8 + e] * scale; acc[g][e] = 0.f; }
  }
  for (int j0 = a + warp * EPW; j0 < b; j0 += WARPS * EPW) {
    const int j = j0 + sub;
    const bool valid = j < b;
    float k[8], v[8];
    widen8(valid ? *(const uint4*)(K + (long long)j * HEAD_DIM + li * 8) : make_uint4(0, 0, 0, 0), k);
    widen8(valid ? *(const uint4*)(V + (long long)j * HEAD_DIM + li * 8) : make_uint4(0, 0, 0, 0), v);
#pragma unroll
    for (int g = 0; g < GROUP; g++) {
      float s = 0.f;
#pragma unroll
      for (int e = 0; e < 8; e++) s += qr[g][e] * k[e];
#pragma unroll
      for (int o = LPE / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      if (valid) {
        const float mn = fmaxf(m[g], s);
        const float corr = expf(m[g] - mn), w = expf(s - mn);
        l[g] = l[g] * corr + w;
#pragma unroll
        for (int e = 0; e < 8; e++) acc[g][e] = acc[g][e] * corr + w * v[e];
        m[g] = mn;
      }
    }
  }
  // Merge the warp's entry slots (lanes li, li + LPE, …), then the warps.
#pragma unroll
  for (int g = 0; g < GROUP; g++) {
    float mx = m[g];
#pragma unroll
    for (int o = LPE; o < 32; o <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    const float f = mx == -INFINITY ? 0.f : expf(m[g] - mx);
    l[g] *= f;
#pragma unroll
    for (int e = 0; e < 8; e++) acc[g][e] *= f;
#pragma unroll
    for (int o = LPE; o < 32; o <<= 1) {
      l[g] += __shfl_xor_sync(0xffffffffu, l[g], o);
#pragma unroll
      for (int e = 0; e < 8; e++) acc[g][e] += __shfl_xor_sync(0xffffffffu, acc[g][e], o);
    }
    m[g] = mx;
  }
  __shared__ float sm[WARPS][GROUP], sl[WARPS][GROUP], sa[WARPS][GROUP][HEAD_DIM];
  if (sub == 0) {
#pragma unroll
    for (int g = 0; g < GROUP; g++) {
      if (li == 0) { sm[warp][g] = m[g]; sl[warp][g] = l[g]; }
#pragma unroll
      for (int e = 0; e < 8; e++) sa[warp][g][li * 8 + e] = acc[g][e];
    }
  }
  __syncthreads();
  write_partial<0>(sm, sl, sa, GROUP, part + (((long long)row * numHeads + qh0) * splits + split) * (2 + HEAD_DIM), splits);
}
#endif
