"""Micro-benchmark: causal SDPA with native GQA (enable_gqa=True) vs repeat_interleave'd K/V,
forward + backward, bf16, at the training shapes. Prints ms per call and TFLOP/s."""
import time

import torch
import torch.nn.functional as F


def run(B, H, KV, T, D, mode, iters=10):
    q = torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(B, KV, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(B, KV, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)

    def f():
        if mode == "native":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:
            y = F.scaled_dot_product_attention(q, k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1), is_causal=True)
        y.sum().backward()
    for _ in range(3):
        f()
    torch.cuda.synchronize()
    t = time.time()
    for _ in range(iters):
        f()
    torch.cuda.synchronize()
    dt = (time.time() - t) / iters
    flops = 4 * B * H * T * T * D / 2 * 3.5  # causal fwd (2 matmuls) + bwd (~2.5x)
    return dt * 1e3, flops / dt / 1e12


if __name__ == "__main__":
    for (B, H, KV, T) in ((16, 8, 2, 8192), (64, 8, 2, 2048), (8, 3, 1, 8192)):
        for mode in ("native", "repeat"):
            try:
                ms, tf = run(B, H, KV, T, 64, mode)
                print(f"attn B={B} H={H} KV={KV} T={T} {mode}: {ms:.1f} ms fwd+bwd, ~{tf:.0f} TFLOP/s", flush=True)
            except Exception as e:
                print(f"attn B={B} H={H} KV={KV} T={T} {mode}: FAILED {e!r}", flush=True)
