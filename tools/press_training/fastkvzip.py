"""Fast KVzip gates for `--press fastkvzip`, with the authors' recipe (Janghyun1230/FastKVzip: train_gate.sh, i.e.
prefill/feature.py then optim.py).

Recipe: for each context, the model's hidden states (the attention input of every layer) and KVzip's importance
scores (the most attention any query of KVzip's "repeat the previous context" pass gives each KV pair; here computed by
kvpress's own KVzipPress, whose scores are what the gates approximate at inference) over the context's tokens (after
the chat template's prefix, as the authors' start_idx..end_idx); every 100th token held out for testing. One gate per
layer (kvpress's FastKVzipGate: 16 dimensions, --sink 16 base keys, query group = heads / KV heads, zero-initialised
base keys and biases), all layers trained together for 5000 steps of SGD (lr 0.2, momentum 0.9) on batches of 1000
random tokens, the authors' schedule (1% warm-up, ×0.5 from half-way, ×0.25 from three quarters), their loss "cnt": the
binary cross-entropy between the gate's output and the KVzip score, averaged over tokens, summed over heads and layers.
Saved as the authors' optim.py saves it, torch.save({"module": [state dict per layer], "loss", "acc", "loss_train",
"acc_train"}) to OUT/q<group>_dim16_sink16.pt, which `--press-opt path=` reads and kvpress's load_fastkvzip loads.

Differences from the authors' files: their optim.py's training forward adds the bias b twice (logit += b, twice), while
the released inference (their gate.py, and kvpress's FastKVzipGate) adds it once; here the gates are trained with
kvpress's FastKVzipGate forward itself, so training and inference agree. The contexts are --text cut into
--context-tokens pieces (theirs: fineweb_10k and fineweb_10k_cat, 29 and 5 contexts). Default dtype float32 (the
gates' dtype must be the model's for kvpress's FastKVzipGate to run; the authors run bfloat16 models).

    python3 tools/press_training/fastkvzip.py --kvpress .oracle/kvpress --model models/attend-mini \
        --text .train-data/raw/bible.txt --out OUT [--contexts 34] [--context-tokens 2048] [--steps 5000]
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def lr_schedule(step, max_step):
    """The authors' utils.lr_schedule."""
    if step < 0.01 * max_step:
        return 0.01 * step
    if 0.5 * max_step <= step < 0.75 * max_step:
        return 0.5
    if 0.75 * max_step <= step:
        return 0.25
    return 1.0


def main():
    ap = common.parser(__doc__.split("\n\n")[0])
    ap.add_argument("--contexts", type=int, default=34)
    ap.add_argument("--context-tokens", type=int, default=2048)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--sink", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=2e-1)
    ap.add_argument("--dtype", default="float32", choices=["bfloat16", "float32"])
    a = ap.parse_args()
    torch, kvpress, device = common.setup(a)
    import torch.nn.functional as F
    from transformers import DynamicCache
    from kvpress.presses.fastkvzip_press import FastKVzipGate

    model, tok = common.load_model(a.model, device, a.dtype)
    cfg = model.config
    L, H = cfg.num_hidden_layers, cfg.num_key_value_heads
    group = cfg.num_attention_heads // H

    # Hidden states of the prefill forward only (KVzip's repeat passes run through the same layers afterwards).
    hidden, recording = [None] * L, [False]

    def hook(module, args, kwargs, output):
        if recording[0]:
            hidden[module.layer_idx] = kwargs["hidden_states"][0].detach().cpu()
        return output

    handles = [layer.self_attn.register_forward_hook(hook, with_kwargs=True) for layer in model.model.layers]
    inner = model.model
    original = inner.forward

    def forward(*args, **kwargs):  # the repeat passes at the positions after the cache; kvpress's old kwarg dropped
        kwargs.pop("num_logits_to_keep", None)
        past = kwargs.get("past_key_values")
        x = kwargs.get("input_ids", args[0] if args else None)
        if past is not None and x is not None:
            start = past.get_seq_length()
            kwargs["position_ids"] = torch.arange(start, start + x.shape[1], device=x.device)[None]
        return original(*args, **kwargs)

    inner.forward = forward
    # kvpress's KVzip puts the chat template's prefix before the context (its pipeline does); so do these contexts.
    prefix = ""
    if tok.chat_template is not None:
        dummy = "dummy context"
        rendered = tok.apply_chat_template([{"role": "user", "content": dummy + "\n" + "#" * len(dummy)}],
                                           add_generation_prompt=True, tokenize=False, enable_thinking=False)
        prefix = rendered.split("\n" + "#" * len(dummy))[0].split(dummy)[0]
    prefix_ids = tok(prefix, add_special_tokens=False)["input_ids"]
    pieces = common.token_samples(tok, a.text, a.context_tokens - len(prefix_ids), a.contexts, add_special_tokens=False)
    xs, ys = [], []
    for i, piece in enumerate(pieces):
        ids = torch.tensor([prefix_ids + piece], device=device)
        press = kvpress.KVzipPress(compression_ratio=0.5)
        scores = []
        press.compress_post = lambda m: scores.append(press.score_val[:, 0].float().cpu())  # scores, no eviction
        recording[0] = True
        with press(model):
            model(input_ids=ids, past_key_values=DynamicCache(config=cfg))
            recording[0] = False
        s = scores[0][:, :, len(prefix_ids):]  # [L, H, context]
        xs.append(torch.stack([h[len(prefix_ids):] for h in hidden]))  # [L, context, hidden]
        ys.append(s)
        print(f"context {i + 1}/{len(pieces)}: {ids.shape[1]} tokens, mean score {s.mean().item():.4f}", flush=True)
    del inner.forward
    for h in handles:
        h.remove()
    inputs = torch.cat(xs, dim=1).to(getattr(torch, a.dtype))
    targets = torch.cat(ys, dim=-1)
    n = inputs.shape[1]
    test = (torch.arange(n) + 1) % 100 == 0
    x_train, y_train, x_test, y_test = inputs[:, ~test], targets[..., ~test], inputs[:, test].to(device), targets[..., test].to(device)

    torch.set_grad_enabled(True)
    gates = torch.nn.ModuleList([FastKVzipGate(l, cfg.hidden_size, H, group, getattr(torch, a.dtype), a.dim, a.sink) for l in range(L)]).to(device)
    opt = torch.optim.SGD(gates.parameters(), lr=a.lr, momentum=0.9)
    loss_fn = lambda pred, target: F.binary_cross_entropy(pred, target.to(pred.dtype), reduction="none").mean(-1).sum(-1)  # noqa: E731
    acc_fn = lambda pred, target: ((pred >= 0.05) == (target >= 0.05)).float().mean()  # noqa: E731
    samples = x_train.shape[1]
    splits = max(1, samples // a.batch_size)
    log = {"loss": [], "acc": [], "loss_train": [], "acc_train": []}
    for step in range(a.steps):
        split = step % splits
        if split == 0:
            order = torch.randperm(samples)
        idx = order[split * a.batch_size:(split + 1) * a.batch_size]
        x, y = x_train[:, idx].to(device), y_train[..., idx].to(device)
        opt.zero_grad(set_to_none=True)
        losses = [loss_fn(gates[l](x[l])[0], y[l]) for l in range(L)]
        sum(losses).backward()
        for g in opt.param_groups:
            g["lr"] = a.lr * lr_schedule(step, a.steps)
        opt.step()
        if step % 50 == 0 or step == a.steps - 1:
            with torch.no_grad():
                log["loss_train"].append([v.item() for v in losses])
                log["acc_train"].append([acc_fn(gates[l](x[l])[0], y[l]).item() for l in range(L)])
                log["loss"].append([loss_fn(gates[l](x_test[l])[0], y_test[l]).item() for l in range(L)])
                log["acc"].append([acc_fn(gates[l](x_test[l])[0], y_test[l]).item() for l in range(L)])
            print(f"[{step:5d}] loss {sum(log['loss_train'][-1]) / L:.3f} ({sum(log['loss'][-1]) / L:.3f}) "
                  f"acc {100 * sum(log['acc'][-1]) / L:.1f}%", flush=True)
    import numpy as np

    path = os.path.join(a.out, f"q{group}_dim{a.dim}_sink{a.sink}.pt")
    torch.save({"module": [g.state_dict() for g in gates], **{k: np.array(v) for k, v in log.items()}}, path)
    back = torch.load(path, weights_only=False)["module"]
    assert len(back) == L and back[0]["k_base"].shape == (H, 1, a.sink, a.dim)
    print(f"wrote {path}: {L} gates from {n} tokens ({int(test.sum())} held out), {math.ceil(a.steps)} steps")


if __name__ == "__main__":
    main()
