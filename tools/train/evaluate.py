"""Evaluation for attend-mini: held-out task accuracy (greedy exact match) and perplexity.

Exact match under greedy decoding is computed with ONE forward pass per instance: the greedy
continuation equals `answer + <|endoftext|>` exactly iff, at every answer position (and at the
closing end-of-text position), the argmax of the logits given the gold prefix is the gold token.
(If all argmaxes match, greedy decoding reproduces the gold tokens step by step; if one does not,
greedy decoding departs from the gold sequence at the first such position.) A subset is also
decoded for real with transformers' LlamaForCausalLM.generate from the exported checkpoint, which
checks this equivalence and the export on long inputs, and gives RULER's recall score.
"""
from __future__ import annotations

import math
import os
import sys
import time
from collections import defaultdict

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tasks  # noqa: E402
from data import EOT_ID  # noqa: E402


@torch.no_grad()
def teacher_forced(model, instances, device, batch_tokens=65536):
    """Adds 'tf_exact' (0/1) and 'tf_tok_acc' to each instance; returns them."""
    model.eval()
    order = sorted(range(len(instances)), key=lambda i: instances[i]["tokens"])
    i = 0
    while i < len(order):
        L = instances[order[i]]["tokens"]
        bs = max(1, batch_tokens // max(L, 1))
        idx = order[i:i + bs]
        Lmax = max(instances[j]["tokens"] for j in idx)
        x = torch.full((len(idx), Lmax), EOT_ID, dtype=torch.long)
        for r, j in enumerate(idx):
            ins = instances[j]
            ids = [EOT_ID] + ins["prompt_ids"] + ins["answer_ids"] + [EOT_ID]
            x[r, :len(ids)] = torch.tensor(ids)
        x = x.to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(x[:, :-1])
        pred = logits.argmax(-1).cpu()
        for r, j in enumerate(idx):
            ins = instances[j]
            start = 1 + len(ins["prompt_ids"])  # position of the first answer token in x
            n = len(ins["answer_ids"]) + 1      # answer tokens + closing <|endoftext|>
            gold = x[r, start:start + n].cpu()
            got = pred[r, start - 1:start - 1 + n]
            ok = (got == gold)
            ins["tf_exact"] = int(bool(ok.all()))
            ins["tf_tok_acc"] = float(ok.float().mean())
        i += bs
    return instances


def summarize(instances, key="tf_exact"):
    """{task: {length: acc, ...}, ...} plus per-depth tables for depth tasks."""
    by_tl = defaultdict(list)
    by_tld = defaultdict(list)
    for ins in instances:
        if key not in ins:
            continue
        by_tl[(ins["task"], ins["length"])].append(ins[key])
        if ins.get("depth") is not None:
            by_tld[(ins["task"], ins["length"], ins["depth"])].append(ins[key])
    out = defaultdict(dict)
    for (t, L), v in sorted(by_tl.items()):
        out[t][str(L)] = dict(acc=float(np.mean(v)), n=len(v))
    depth = defaultdict(lambda: defaultdict(dict))
    for (t, L, d), v in sorted(by_tld.items()):
        depth[t][str(L)][f"{d:.2f}"] = dict(acc=float(np.mean(v)), n=len(v))
    return dict(by_task_length=dict(out), by_depth={t: dict(v) for t, v in depth.items()})


@torch.no_grad()
def perplexity(model, tokens: np.ndarray, device, window=8192, max_windows=None, batch=8, tok=None):
    """Mean NLL over non-overlapping windows of a token stream (each window scored from its start)."""
    model.eval()
    n_win = (len(tokens) - 1) // window
    if max_windows:
        n_win = min(n_win, max_windows)
    if n_win == 0:
        window = len(tokens) - 1
        n_win = 1
    nll, cnt, nbytes = 0.0, 0, 0
    for b in range(0, n_win, batch):
        rows = [tokens[i * window:(i + 1) * window + 1] for i in range(b, min(n_win, b + batch))]
        x = torch.tensor(np.stack(rows).astype(np.int64), device=device)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(x[:, :-1])
        lp = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum")
        nll += lp.item()
        cnt += x[:, 1:].numel()
        if tok is not None:
            for r in rows:
                nbytes += len(tok.decode([int(t) for t in r[1:]], skip_special_tokens=False).encode("utf-8"))
    out = dict(nll=nll / cnt, ppl=math.exp(nll / cnt), tokens=cnt, windows=n_win, window=window)
    if nbytes:
        out["bits_per_byte"] = nll / math.log(2) / nbytes
    return out


@torch.no_grad()
def hf_generate(hf_model, tok, instances, device, time_budget_s=60.0, max_new=None, per_cell=2):
    """Greedy decoding with transformers' generate on a round-robin subset of the instances."""
    t0 = time.time()
    cells = defaultdict(list)
    for ins in instances:
        cells[(ins["task"], ins["length"])].append(ins)
    queue = []
    for k in range(per_cell):
        for key in sorted(cells, key=lambda c: (-c[1], c[0])):
            if k < len(cells[key]):
                queue.append(cells[key][k])
    done = 0
    for ins in queue:
        if time.time() - t0 > time_budget_s:
            break
        ids = torch.tensor([[EOT_ID] + ins["prompt_ids"]], device=device)
        mn = max_new or len(ins["answer_ids"]) + 8
        out = hf_model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=mn, do_sample=False,
                                eos_token_id=EOT_ID, pad_token_id=EOT_ID)
        gen = out[0, ids.shape[1]:].tolist()
        if EOT_ID in gen:
            gen = gen[:gen.index(EOT_ID)]
        text = tok.decode(gen)
        s = tasks.Sample(ins["task"], "", ins["answer"], ins["values"])
        sc = tasks.score(s, text)
        ins["gen_text"] = text
        ins["gen_exact"] = sc["exact"]
        ins["gen_recall"] = sc["recall"]
        done += 1
    gen = [i for i in instances if "gen_exact" in i]
    agree = [int(i["gen_exact"] == i["tf_exact"]) for i in gen if "tf_exact" in i]
    return dict(n=done, seconds=time.time() - t0,
                tf_agreement=float(np.mean(agree)) if agree else None,
                exact=float(np.mean([i["gen_exact"] for i in gen])) if gen else None,
                recall=float(np.mean([i["gen_recall"] for i in gen])) if gen else None)
