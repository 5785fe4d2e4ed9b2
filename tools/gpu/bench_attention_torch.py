"""PyTorch's side of tools/gpu/bench-attention.ts: scaled_dot_product_attention (flash backend, bf16, GQA 32/8,
head size 128) for causal prefill of N rows and one decode row over N keys, timed with CUDA events. Prints JSON."""
import argparse, json
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

p = argparse.ArgumentParser(); p.add_argument("--lengths", nargs="*", type=int, default=[4096]); a = p.parse_args()
H, KV, D = 32, 8, 128

def timed(fn, reps):
    fn(); torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(reps): fn()
    e.record(); torch.cuda.synchronize()
    return s.elapsed_time(e) / reps / 1000

rows = []
for n in a.lengths:
    q = torch.randn(1, H, n, D, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, KV, n, D, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(1, KV, n, D, device="cuda", dtype=torch.bfloat16)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        t = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True), 2 if n >= 65536 else 5)
        q1 = q[:, :, -1:]
        td = timed(lambda: F.scaled_dot_product_attention(q1, k, v, enable_gqa=True), 50)
    rows.append({"length": n, "prefill_tflops": 2 * 2 * n * n * 0.5 * H * D / t / 1e12, "decode_gbs": n * KV * D * 2 * 2 / td / 1e9})
    del q, k, v
    torch.cuda.empty_cache()
print(json.dumps({"torch": torch.__version__, "rows": rows}))
