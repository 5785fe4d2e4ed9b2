"""Q-filters for `--press qfilter`, with the recipe of the Q-Filters authors (NathanGodey/qfilters, make_filters.py).

Recipe (their defaults): sequences of --max-seq-len 2048 tokens from calibration text (they take the first 19 of
--num-sequences 20 long enough ones), the model run in bf16 autocast; per layer, the queries of every head over all
those tokens, --num-svd-samples 3000 of them drawn at random; per head the SVD X = U·S·Vᵀ, the sign of the first
component σ = +1 when most of U[:, 0] is positive (else −1), the filter −σ·V[0]; the filters of the query heads of a
KV group averaged. Written as kvpress's QFilters module (PyTorchModelHubMixin.save_pretrained: model.safetensors with
q_filters [layers, kv_heads, head_dim] and config.json), which `--press-opt path=OUT` reads and
kvpress's QFilterPress loads with QFilters.from_pretrained.

The queries: the authors read them from a modified modeling file that is not published with make_filters.py; here they
are the post-RoPE queries of each attention layer (q_proj, q_norm where the model has one, RoPE at the token's
position), the space of the cached keys the filters are dotted with (kvpress scores −⟨f, k⟩ on the cache's keys).
Data: their fineweb sample is stood in by --text.

    python3 tools/press_training/qfilter.py --kvpress .oracle/kvpress --model models/attend-mini \
        --text .train-data/raw/bible.txt --out OUT [--max-seq-len 2048] [--num-sequences 20] [--num-svd-samples 3000]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main():
    ap = common.parser(__doc__.split("\n\n")[0])
    ap.add_argument("--max-seq-len", type=int, default=2048)
    ap.add_argument("--num-sequences", type=int, default=20)
    ap.add_argument("--num-svd-samples", type=int, default=3000)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"], help="autocast dtype (theirs: bfloat16)")
    a = ap.parse_args()
    torch, kvpress, device = common.setup(a)
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb
    from kvpress.presses.qfilter_press import QFilters
    from kvpress.utils import get_prerope_query_states

    model, tok = common.load_model(a.model, device)
    cfg = model.config
    layers = model.model.layers
    queries = [[] for _ in layers]

    def hook(module, args, kwargs, output):
        h = kwargs["hidden_states"]
        q = get_prerope_query_states(module, h)  # [1, heads, seq, d], q_norm included
        cos, sin = kwargs["position_embeddings"]
        q, _ = apply_rotary_pos_emb(q, q, cos, sin)
        queries[module.layer_idx].append(q[0].float().cpu())
        return output

    handles = [layer.self_attn.register_forward_hook(hook, with_kwargs=True) for layer in layers]
    # make_filters.py counts a sequence, then uses it only while the count is below num_sequences.
    samples = common.token_samples(tok, a.text, a.max_seq_len, max(1, a.num_sequences - 1))
    for ids in samples:
        with torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=getattr(torch, a.dtype)):
            model(torch.tensor([ids], device=device))
    for h in handles:
        h.remove()

    filters = []
    group = cfg.num_attention_heads // cfg.num_key_value_heads
    for layer_queries in queries:
        x = torch.cat(layer_queries, dim=1)  # [heads, tokens, d]
        idx = torch.argsort(torch.rand(x.shape[1]))[: a.num_svd_samples]
        x = x[:, idx].to(device).float()
        u, s, vh = torch.linalg.svd(x, full_matrices=False)
        sign = ((u[..., 0] > 0).float().mean(-1) > 0.5).float() * 2 - 1
        f = -sign[:, None] * vh[..., 0, :]
        filters.append(f.reshape(cfg.num_key_value_heads, group, f.shape[-1]).mean(-2).cpu())
    stacked = torch.stack(filters)
    q = QFilters(*stacked.shape)
    q.q_filters = torch.nn.Parameter(stacked)
    q.save_pretrained(a.out)
    back = QFilters.from_pretrained(a.out).q_filters
    assert torch.equal(back, stacked)
    print(f"wrote {a.out}: q_filters {list(stacked.shape)} from {len(samples)} sequences of {a.max_seq_len} tokens, "
          f"{min(a.num_svd_samples, x.shape[1])} SVD samples per layer")


if __name__ == "__main__":
    main()
