"""The PyTorch side of tools/gpu/bench.sh: makes a random bf16 Llama of a named shape (--make DIR --shape S), or
times transformers on one (--model DIR): prefill of N random ids in one forward, then --decode greedy steps with the
KV cache, SDPA attention, bf16, batch 1, CUDA synchronised around each timing. Prints JSON."""
import argparse, json, shutil, time, os
import torch
from transformers import LlamaConfig, LlamaForCausalLM

SHAPES = {
    # hidden, intermediate, layers, heads, kv heads, head dim
    "mini": (512, 1408, 8, 8, 2, 64),
    "1b": (2048, 8192, 16, 32, 8, 64),
    "8b": (4096, 14336, 32, 32, 8, 128),
}

p = argparse.ArgumentParser()
p.add_argument("--make"); p.add_argument("--shape", default="1b"); p.add_argument("--tokenizer")
p.add_argument("--model"); p.add_argument("--lengths", nargs="*", type=int, default=[1024]); p.add_argument("--decode", type=int, default=64)
a = p.parse_args()

if a.make:
    h, i, l, nh, kv, hd = SHAPES[a.shape]
    cfg = LlamaConfig(hidden_size=h, intermediate_size=i, num_hidden_layers=l, num_attention_heads=nh, num_key_value_heads=kv,
                      head_dim=hd, vocab_size=16384, max_position_embeddings=131072, rope_theta=500000.0, tie_word_embeddings=False,
                      bos_token_id=0, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(0)
    with torch.device("cuda"):
        m = LlamaForCausalLM(cfg).to(torch.bfloat16)
    for prm in m.parameters():
        prm.data.normal_(0, 0.02)
    m.save_pretrained(a.make, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        src = os.path.join(a.tokenizer, f)
        if os.path.exists(src):
            shutil.copy(src, a.make)
    print(json.dumps({"made": a.make, "shape": a.shape}))
else:
    m = LlamaForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16, attn_implementation="sdpa").cuda().eval()
    out = {"torch": torch.__version__, "rows": []}
    g = torch.Generator().manual_seed(1)
    for n in a.lengths:
        ids = torch.randint(1, m.config.vocab_size, (1, n), generator=g).cuda()
        with torch.no_grad():
            for rep in range(2):  # the first run warms up
                torch.cuda.synchronize(); t0 = time.perf_counter()
                o = m(ids, use_cache=True)
                torch.cuda.synchronize(); t1 = time.perf_counter()
                past = o.past_key_values
                tok = o.logits[:, -1:].argmax(-1)
                torch.cuda.synchronize(); t2 = time.perf_counter()
                for _ in range(a.decode):
                    o = m(tok, past_key_values=past, use_cache=True)
                    past = o.past_key_values
                    tok = o.logits[:, -1:].argmax(-1)
                    tok.item()
                torch.cuda.synchronize(); t3 = time.perf_counter()
        out["rows"].append({"length": n, "prefill_tps": n / (t1 - t0), "decode_tps": a.decode / (t3 - t2)})
        del past, o
        torch.cuda.empty_cache()
    print(json.dumps(out))
