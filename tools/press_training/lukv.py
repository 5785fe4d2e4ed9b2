"""An LU-KV budget curve for `--press lukv`, with the method of the LU-KV repository (baidu-baige/LU-KV,
evaluation/curve_data/generate_curve.sh: step1_<model>.py, then step2_compute_curve.py), for kvpress's default
LUKVPress(ExpectedAttentionPress(epsilon=2e-2), sink=4, window=1).

Method, per (context, question) pair:
1. the scorer's scores of the context's KV pairs, per layer and KV head, from the context's prefill (here kvpress's
   own ExpectedAttentionPress(epsilon=0.02).score, the scorer LUKVPress ranks with at inference; the repository's
   step1 re-implements expected attention in its own file);
2. the oracle utility: --max-new-tokens 64 tokens sampled (temperature 0.7) after context + question + answer prefix;
   at every decoding step the attention each context entry gets, times its ‖W_o v‖ normalised to sum 1 over the
   layer's heads and context (the repository's use_value_norm_weighting), the most over the query heads of the KV
   group, then the most over the decoding steps;
3. per head, the oracle utilities of the entries between the sink and the window ordered by the scorer's ranking,
   smoothed by the lower convex hull of their cumulative sum taken from the lowest-ranked end (the convex-hull
   relaxation), then a greedy global allocation across all layers and heads (--layerwise, the repository's flag for
   the bundled curves): the cheapest next removal first, no head below max(round(0.01·n), sink + window) entries,
   recording each head's pruned fraction when 1 %, 2 %, …, 99 % of all entries are gone.
The 99 × layers × kv_heads allocations are averaged over all pairs and saved with np.save to
OUT/ea_0.02_sink4_win1_avg_ratio.npy (the name of kvpress's bundled Llama curve, less the model).

Missing, so stood in: the repository itself was not available to this project (its step1/step2 were read in public
copies of it: qiansen0809-droid/SketchAlloc-KV, CausalDuel-KV); its calibration set curve_data/novel.jsonl (contexts
with questions, answer prefix "回答：") is replaced by --text cut into --context-tokens pieces and the --questions file
(one question per line; default a few generic ones), answer prefix "Answer:". Sampling is seeded (--seed).

    python3 tools/press_training/lukv.py --kvpress .oracle/kvpress --model models/attend-mini \
        --text .train-data/raw/bible.txt --out OUT [--contexts 20] [--context-tokens 2048] [--questions FILE]
"""
import heapq
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

QUESTIONS = [
    "What is the passage above about?",
    "Summarize the passage above in one sentence.",
    "Who are the main figures in the passage above, and what do they do?",
    "What happens at the end of the passage above?",
]


def lower_hull(y):
    """Indices of the lower convex hull of the points (i, y[i])."""
    stack = [0]
    for i in range(1, len(y)):
        while len(stack) >= 2:
            (x1, y1), (x2, y2) = (stack[-2], y[stack[-2]]), (stack[-1], y[stack[-1]])
            if (x2 - x1) * (y[i] - y1) - (i - x1) * (y2 - y1) <= 0:
                stack.pop()
            else:
                break
        stack.append(i)
    return stack


def smoothed(values):
    """Per-entry costs (best-ranked first) replaced by the slopes of the hull of their cumulative sum from the end."""
    import numpy as np

    rev = values[::-1]
    cum = np.concatenate(([0.0], np.cumsum(rev)))
    hull = lower_hull(cum)
    out = np.zeros(len(values))
    for a, b in zip(hull, hull[1:]):
        out[a:b] = (cum[b] - cum[a]) / (b - a)
    return out[::-1]


def allocation(gt, pred, sink, window, layerwise=True, limit=99):
    """The 99 × layers × heads pruned fractions for one pair (oracle `gt`, scorer `pred`: [layers, heads, n])."""
    import numpy as np

    L, H, n = gt.shape
    eff = n - sink - window
    if eff <= 0:
        return None
    mid_gt, mid_pred = gt[:, :, sink:n - window], pred[:, :, sink:n - window]
    prio = np.zeros_like(mid_gt, dtype=np.float64)
    for l in range(L):
        for h in range(H):
            order = np.argsort(mid_pred[l, h])[::-1]
            prio[l, h] = smoothed(mid_gt[l, h][order].astype(np.float64))
    min_keep = max(int(round((1 - limit / 100) * n)), sink + window)
    out = np.zeros((99, L, H))
    groups = [[(l, h) for l in range(L) for h in range(H)]] if layerwise else [[(l, h) for h in range(H)] for l in range(L)]
    for units in groups:
        keep = {u: n for u in units}
        heap = [(prio[l, h, eff - 1], l, h, eff - 1) for (l, h) in units]
        heapq.heapify(heap)
        gone = 0
        for i in range(99):
            x = (i + 1) / 100
            if x > limit / 100:
                for (l, h) in units:
                    out[i, l, h] = x
                continue
            target = int(round(x * len(units) * n))
            while gone < target and heap:
                _, l, h, k = heapq.heappop(heap)
                if keep[(l, h)] > min_keep:
                    keep[(l, h)] -= 1
                    gone += 1
                    if k - 1 >= 0:
                        heapq.heappush(heap, (prio[l, h, k - 1], l, h, k - 1))
            for (l, h) in units:
                out[i, l, h] = 1 - keep[(l, h)] / n
    return out


def main():
    ap = common.parser(__doc__.split("\n\n")[0])
    ap.add_argument("--contexts", type=int, default=20)
    ap.add_argument("--context-tokens", type=int, default=2048)
    ap.add_argument("--questions", default=None, help="file of questions, one per line")
    ap.add_argument("--answer-prefix", default=" Answer:")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--epsilon", type=float, default=2e-2)
    ap.add_argument("--sink", type=int, default=4)
    ap.add_argument("--window", type=int, default=1)
    ap.add_argument("--layer-independent", action="store_true", help="allocate within each layer (no --layerwise)")
    ap.add_argument("--dtype", default="float16", help="the repository loads the model in float16")
    a = ap.parse_args()
    torch, kvpress, device = common.setup(a)
    import numpy as np

    model, tok = common.load_model(a.model, device, a.dtype, attn="eager")
    cfg = model.config
    L, H = cfg.num_hidden_layers, cfg.num_key_value_heads
    group = cfg.num_attention_heads // H
    questions = [q.strip() for q in open(a.questions, encoding="utf-8")] if a.questions else QUESTIONS
    questions = [q for q in questions if q]
    scorer = kvpress.ExpectedAttentionPress(epsilon=a.epsilon)
    state = {"mode": None, "ctx": 0}
    pred = [None] * L
    vnorm = [None] * L
    oracle = torch.zeros(L, H, 1)

    def hook(module, args, kwargs, output):
        l = module.layer_idx
        hidden = kwargs["hidden_states"]
        cache = kwargs["past_key_values"].layers[l]
        if state["mode"] == "context" and hidden.shape[1] > 1:
            keys, values = cache.keys, cache.values
            pred[l] = scorer.score(module, hidden, keys, values, output[1], kwargs)[0].float().cpu()
            # ‖W_o v‖ per query head and context entry, normalised over the layer.
            Wo = module.o_proj.weight.float().view(cfg.hidden_size, cfg.num_attention_heads, module.head_dim)
            v = values[0].float().repeat_interleave(group, dim=0)  # [heads, n, d]
            norms = torch.einsum("hnd,mhd->hnm", v, Wo).norm(dim=-1)
            vnorm[l] = norms / (norms.sum() + 1e-9)
        elif state["mode"] == "decode" and hidden.shape[1] == 1:
            att = output[1][0, :, 0, : state["ctx"]].float() * vnorm[l]  # [heads, ctx]
            oracle[l] = torch.maximum(oracle[l], att.view(H, group, -1).amax(dim=1).cpu())
        return output

    for layer in model.model.layers:  # what kvpress's BasePress.__call__ gives the attention modules
        layer.self_attn.rotary_emb = model.model.rotary_emb
    handles = [layer.self_attn.register_forward_hook(hook, with_kwargs=True) for layer in model.model.layers]
    contexts = common.token_samples(tok, a.text, a.context_tokens, a.contexts)
    total, count = None, 0
    for c, ids in enumerate(contexts):
        ctx = torch.tensor([ids], device=device)
        state.update(mode="context", ctx=len(ids))
        model(ctx)
        p = torch.stack(pred).numpy()
        for q, question in enumerate(questions):
            suffix = tok(question + a.answer_prefix, add_special_tokens=False, return_tensors="pt").input_ids.to(device)
            oracle = torch.zeros(L, H, len(ids))
            torch.manual_seed(a.seed + c * 1000 + q)
            state["mode"] = "decode"
            model.generate(input_ids=torch.cat([ctx, suffix], dim=1), attention_mask=torch.ones(1, len(ids) + suffix.shape[1], dtype=torch.long, device=device),
                           max_new_tokens=a.max_new_tokens, do_sample=True, temperature=0.7, pad_token_id=tok.eos_token_id, use_cache=True)
            state["mode"] = None
            res = allocation(oracle.numpy(), p, a.sink, a.window, layerwise=not a.layer_independent)
            if res is not None:
                total = res if total is None else total + res
                count += 1
        print(f"context {c + 1}/{len(contexts)}: {count} pairs so far", flush=True)
    for h in handles:
        h.remove()
    curve = total / count
    path = os.path.join(a.out, f"ea_{a.epsilon:g}_sink{a.sink}_win{a.window}_avg_ratio.npy")
    np.save(path, curve)
    print(f"wrote {path}: shape {curve.shape} from {count} pairs; mean pruned fraction at 50%: {curve[49].mean():.3f}")


if __name__ == "__main__":
    main()
