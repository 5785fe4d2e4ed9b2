"""KVzap models for `--press kvzap`, with kvpress's own recipe (NVIDIA/kvpress kvzap/train.py and kvzap/data.py).

Recipe (kvpress's defaults): texts of 750 to 1250 tokens; each is put in the KVzip repeat prompt through the chat
template (user: <text>\\n\\nRepeat the previous context exactly. / assistant: <text>), run once with eager attention,
and every attention layer's KVzip+ score of each prompt token is taken: the attention each repeated token gives it,
divided by the repeated row's ‖h‖ (the attention input), times ‖W_o v‖ of the query head, the maximum over the
repeated tokens and the query heads of its KV group, then log. --n-tokens 500 random prompt tokens per text give pairs
(X = the token's hidden state at every layer, y = its log score per KV head). Test set: 5 texts (kvpress: 5 per
Nemotron subset). Two models, each kvpress's KVzapModel in save_pretrained's layout (config.json + model.safetensors,
written and read back by hand with the oracle's save_kvzap / load_kvzap: transformers 5.17 cannot build kvpress's
KVzapConfig without arguments, which its save_pretrained and from_pretrained do) into OUT/mlp and OUT/linear:
- mlp: a 2-layer MLP per layer (hidden_dim 512, GELU), all layers at once, MSE, AdamW lr 5e-3, 15 epochs, batches of
  512, cosine annealing over the epochs, gradient norm clipped at 1, 5% held out for validation (kvpress trains it
  with skorch's NeuralNetRegressor; the GPU machine has no skorch, so the same loop is written here in torch);
- linear: per layer a ridge regression (scikit-learn's Ridge(), alpha 1 with an intercept, in kvpress; solved here
  in closed form in float64: the machine has no scikit-learn).
The model runs in bfloat16 as kvpress's script loads it (--dtype), so X and y, and the MLP, are bfloat16 too.
kvpress's train_linear writes the weights to `linear.module_list`, which KVzapModel does not have (its modules are
`layers`): here they go to `layers`. true.npy and pred.npy of the test set are saved beside each model, as kvpress does.
Data: kvpress's nvidia/Nemotron-Pretraining-Dataset-sample is stood in by --text, cut into samples of --sample-tokens.

    python3 tools/press_training/kvzap.py --kvpress .oracle/kvpress --model models/attend-mini \
        --text .train-data/raw/bible.txt --out OUT [--num-texts 200] [--sample-tokens 1000]
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "fixtures", "press_cases"))
import common  # noqa: E402
from trained import load_kvzap, save_kvzap  # noqa: E402


def repeat_prompt(tok, prompt):
    """kvpress's repeat_prompt_tokenization: ids and the [start, end) of the prompt and of its repetition."""
    import torch

    prompt = prompt.strip()
    messages = [{"role": "user", "content": prompt + "\n\nRepeat the previous context exactly."}, {"role": "assistant", "content": prompt}]
    text = tok.apply_chat_template(messages, tokenize=False)
    out = tok(text, return_tensors="pt", return_offsets_mapping=True)
    prefix, repeat, _ = text.split(prompt)
    m = out.offset_mapping[0, :, 0]
    at = lambda c: int(torch.where(m >= c)[0][0].item())  # noqa: E731
    return (out.input_ids, at(len(prefix)), at(len(prefix) + len(prompt)), at(len(prefix) + len(prompt) + len(repeat)),
            at(len(prefix) + 2 * len(prompt) + len(repeat)))


def main():
    ap = common.parser(__doc__.split("\n\n")[0])
    ap.add_argument("--num-texts", type=int, default=200, help="texts cut from --text (kvpress: 500 per subset)")
    ap.add_argument("--num-test", type=int, default=5)
    ap.add_argument("--sample-tokens", type=int, default=1000, help="tokens per text (kvpress keeps 750 to 1250)")
    ap.add_argument("--n-tokens", type=int, default=500)
    ap.add_argument("--hidden-dim", type=int, default=512)
    ap.add_argument("--max-epochs", type=int, default=15)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    a = ap.parse_args()
    assert a.n_tokens < a.sample_tokens, "n_tokens must be less than the tokens of a text"
    torch, kvpress, device = common.setup(a)
    import numpy as np
    from transformers.models.llama.modeling_llama import repeat_kv
    from kvpress.presses.kvzap_press import KVzapConfig, KVzapModel

    model, tok = common.load_model(a.model, device, a.dtype, attn="eager")
    cfg = model.config
    L, H = cfg.num_hidden_layers, cfg.num_key_value_heads
    data, span = [], {}

    def hook(module, args, kwargs, output):
        hidden = kwargs["hidden_states"]  # [1, tokens, hidden]: the attention input
        values = kwargs["past_key_values"].layers[module.layer_idx].values
        attn = output[1]  # [1, heads, queries, keys] (eager attention)
        Wo = module.o_proj.weight.T.reshape(cfg.num_attention_heads, module.head_dim, cfg.hidden_size)
        wov = torch.einsum("hdo,bhkd->bhko", Wo, repeat_kv(values, module.num_key_value_groups)).norm(dim=-1)
        scores = attn / hidden.norm(dim=-1)[:, None, :, None] * wov[:, :, None, :]
        # The most any repeated token gives each prompt token, then over the query heads of each KV group.
        s = scores[:, :, span["r0"]:span["r1"], span["p0"]:span["p1"]].amax(dim=2)
        s = s.view(s.shape[0], H, module.num_key_value_groups, s.shape[2]).amax(dim=2)
        data.append((hidden[0, span["p0"]:span["p1"]].cpu(), torch.log(s)[0].T.cpu()))
        return output

    handles = [layer.self_attn.register_forward_hook(hook, with_kwargs=True) for layer in model.model.layers]
    texts = common.text_samples(tok, a.text, a.sample_tokens, a.num_texts + a.num_test)
    dtype = getattr(torch, a.dtype)
    X = torch.zeros(len(texts) * a.n_tokens, L, cfg.hidden_size, dtype=dtype)
    y = torch.zeros(len(texts) * a.n_tokens, L, H, dtype=dtype)
    for i, text in enumerate(texts):
        ids, span["p0"], span["p1"], span["r0"], span["r1"] = repeat_prompt(tok, text)
        data.clear()
        model.model(ids.to(device))
        mask = torch.randperm(len(data[0][0]))[: a.n_tokens]
        for layer, (x_, y_) in enumerate(data):
            X[i * a.n_tokens:(i + 1) * a.n_tokens, layer] = x_[mask]
            y[i * a.n_tokens:(i + 1) * a.n_tokens, layer] = y_[mask]
        print(f"text {i + 1}/{len(texts)}: {ids.shape[1]} tokens", flush=True)
    for h in handles:
        h.remove()
    del model
    n_test = a.n_tokens * a.num_test
    X_train, X_test, y_train, y_test = X[n_test:], X[:n_test], y[n_test:], y[:n_test]

    # MLP: skorch NeuralNetRegressor(AdamW, MSE, cosine LR over epochs, grad clip 1, ValidSplit(0.05, random_state=42)).
    torch.set_grad_enabled(True)
    mlp = KVzapModel(KVzapConfig(input_dim=cfg.hidden_size, hidden_dim=a.hidden_dim, output_dim=H, n_modules=L)).to(device, dtype=dtype)
    perm = torch.randperm(len(X_train), generator=torch.Generator().manual_seed(42))
    n_valid = int(round(0.05 * len(X_train)))
    valid, train = perm[:n_valid], perm[n_valid:]
    opt = torch.optim.AdamW(mlp.parameters(), lr=a.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.max_epochs)
    loss_fn = torch.nn.MSELoss()
    for epoch in range(a.max_epochs):
        mlp.train()
        order = train[torch.randperm(len(train))]
        total = 0.0
        for b in range(0, len(order), a.batch_size):
            idx = order[b:b + a.batch_size]
            opt.zero_grad()
            loss = loss_fn(mlp(X_train[idx].to(device)), y_train[idx].to(device))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(mlp.parameters(), 1.0)
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        with torch.no_grad():
            mlp.eval()
            v = loss_fn(mlp(X_train[valid].to(device)), y_train[valid].to(device)).item() if n_valid else float("nan")
        print(f"epoch {epoch + 1}: train loss {total / len(train):.4f}, valid loss {v:.4f}", flush=True)
    torch.set_grad_enabled(False)

    # Linear: Ridge(alpha=1) per layer, with an intercept (centred least squares), in float64.
    linear = KVzapModel(KVzapConfig(input_dim=cfg.hidden_size, hidden_dim=None, output_dim=H, n_modules=L))
    for layer in range(L):
        xs, ys = X_train[:, layer].double(), y_train[:, layer].double()
        xm, ym = xs.mean(0), ys.mean(0)
        xc, yc = xs - xm, ys - ym
        W = torch.linalg.solve(xc.T @ xc + torch.eye(xs.shape[1], dtype=torch.float64), xc.T @ yc).T  # [H, hidden]
        linear.layers[layer].weight.data = W.to(dtype)
        linear.layers[layer].bias.data = (ym - W @ xm).to(dtype)
    linear.to(device, dtype=dtype)

    for module, name in [(mlp, "mlp"), (linear, "linear")]:
        pred = module(X_test.to(device))
        folder = os.path.join(a.out, name)
        save_kvzap(module, folder)
        np.save(os.path.join(folder, "true.npy"), y_test.float().numpy())
        np.save(os.path.join(folder, "pred.npy"), pred.cpu().float().numpy())
        mse = ((pred.cpu().float() - y_test.float()) ** 2).mean().item()
        load_kvzap(folder)  # read back into kvpress's classes, strictly
        print(f"wrote {folder}: test MSE {mse:.4f}")


if __name__ == "__main__":
    main()
