/**
 * The plain-JavaScript matmul: obviously correct loops, the oracle the fast paths are tested against, and the last
 * fallback. Each output is a k-inner dot product with four independent accumulators (f64 arithmetic, f32 result).
 */

/** C[M,N] = A[M,K] · B[N,K]ᵀ, all f32 row-major. */
export function matmulTransBJs(a: Float32Array, b: Float32Array, c: Float32Array, m: number, n: number, k: number): void {
  const k4 = k - (k % 4);
  for (let i = 0; i < m; i++) {
    const ao = i * k;
    const co = i * n;
    for (let j = 0; j < n; j++) {
      const bo = j * k;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let p = 0;
      for (; p < k4; p += 4) {
        s0 += a[ao + p]! * b[bo + p]!;
        s1 += a[ao + p + 1]! * b[bo + p + 1]!;
        s2 += a[ao + p + 2]! * b[bo + p + 2]!;
        s3 += a[ao + p + 3]! * b[bo + p + 3]!;
      }
      for (; p < k; p++) s0 += a[ao + p]! * b[bo + p]!;
      c[co + j] = s0 + s1 + (s2 + s3);
    }
  }
}

/** C[M,N] = A[M,K] · B[K,N], all f32 row-major: rows of B scaled and summed into an f64 row. */
export function matmulNNJs(a: Float32Array, b: Float32Array, c: Float32Array, m: number, n: number, k: number): void {
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let p = 0; p < k; p++) {
      const x = a[i * k + p]!;
      const bo = p * n;
      for (let j = 0; j < n; j++) row[j]! += x * b[bo + j]!;
    }
    for (let j = 0; j < n; j++) c[i * n + j] = row[j]!;
  }
}
