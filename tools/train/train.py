#!/usr/bin/env python3
"""Train attend-mini (~31M) and attend-mini-draft (~4.7M) on one GPU, evaluate, export.

    python3 tools/train/train.py --out /tmp/attend-run [--train-minutes 12] [--resume CKPT | --init-from HF_DIR]

Reproducibility: fixed seeds; the data of step s is a pure function of (seed, s, seq_len, rows);
the LR / curriculum schedule is a function of progress p = elapsed/budget (wall clock) unless
--total-steps N is given, then p = step/N (fully step-deterministic; the log records the step at
which each phase began, so a rerun can pin it).
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import platform
import random
import shutil
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import data as D  # noqa: E402
import evaluate as E  # noqa: E402
import model as M  # noqa: E402
import tasks  # noqa: E402


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/attend-run")
    ap.add_argument("--corpus-dir", default=os.path.join(ROOT, ".train-data", "corpus"))
    ap.add_argument("--tokenizer", default=None, help="use this tokenizer.json instead of training one")
    ap.add_argument("--vocab", type=int, default=16384)
    ap.add_argument("--preset", default="mini")
    ap.add_argument("--draft-preset", default="draft", help="'none' to skip the draft model")
    ap.add_argument("--seq-len", type=int, default=8192)
    ap.add_argument("--short-seq-len", type=int, default=2048)
    ap.add_argument("--short-frac", type=float, default=0.25, help="fraction of progress trained at --short-seq-len")
    ap.add_argument("--tokens-per-step", type=int, default=131072)
    ap.add_argument("--draft-row-frac", type=float, default=0.5, help="fraction of each batch's rows the draft trains on")
    ap.add_argument("--train-minutes", type=float, default=13.0)
    ap.add_argument("--total-steps", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=0, help="hard stop (smoke tests)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--draft-lr", type=float, default=3e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.02)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--decay-frac", type=float, default=0.25)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--mix", choices=sorted(D.MIXES), default="v1", help="training task mix (data.py MIXES)")
    ap.add_argument("--ans-weight", type=float, default=1.0)
    ap.add_argument("--dropout", type=float, default=0.0, help="dropout while training (model.py DROPOUT)")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--compile", type=int, default=0, help="torch.compile (compiling took > 35 s in the smoke test; eager is the default)")
    ap.add_argument("--gqa", choices=["native", "repeat"], default="native")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--ckpt-minutes", type=float, default=3.0)
    ap.add_argument("--resume", default=None, help="full checkpoint (.pt) written by this script")
    ap.add_argument("--init-from", default=None, help="HF export dir (models/attend-mini): weights only, fresh optimizer")
    ap.add_argument("--init-draft-from", default=None)
    ap.add_argument("--eval-lengths", default="2048,4096,8192")
    ap.add_argument("--eval-n-depth", type=int, default=8)
    ap.add_argument("--eval-n-other", type=int, default=16)
    ap.add_argument("--gen-budget-s", type=float, default=60.0)
    ap.add_argument("--ppl-max-windows", type=int, default=0)
    ap.add_argument("--quick-eval-minutes", type=float, default=2.0)
    ap.add_argument("--bench", type=int, default=0, help="N>0: only measure throughput for N steps per config, then exit")
    ap.add_argument("--skip-eval", type=int, default=0)
    ap.add_argument("--reuse-tokens", type=int, default=0, help="reuse train_tokens.npy / heldout_tokens.npz in --out")
    ap.add_argument("--bench-tag", default="bench")
    return ap.parse_args()


# ----------------------------------------------------------------------------------------------
def set_gqa(mode):
    if mode == "repeat":
        import torch.nn.functional as F

        def fwd(self, x, cos, sin):
            B, T, _ = x.shape
            q = self.q_proj(x).view(B, T, self.h, self.hd).transpose(1, 2)
            k = self.k_proj(x).view(B, T, self.kv, self.hd).transpose(1, 2)
            v = self.v_proj(x).view(B, T, self.kv, self.hd).transpose(1, 2)
            cos, sin = cos.to(q.dtype), sin.to(q.dtype)
            q = q * cos + M.rotate_half(q) * sin
            k = k * cos + M.rotate_half(k) * sin
            if self.kv != self.h:
                k = k.repeat_interleave(self.h // self.kv, dim=1)
                v = v.repeat_interleave(self.h // self.kv, dim=1)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.o_proj(y.transpose(1, 2).reshape(B, T, self.h * self.hd))
        M.Attention.forward = fwd


def make_opt(model, lr, wd):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), eps=1e-8, fused=True)


def lr_at(base, step, p, a):
    w = min(1.0, (step + 1) / a.warmup)
    d = 1.0 if p < 1 - a.decay_frac else max(a.min_lr_frac, (1 - p) / a.decay_frac)
    return base * w * d


def phase(p, a):
    if p < a.short_frac and a.short_seq_len < a.seq_len:
        L = a.short_seq_len
    else:
        L = a.seq_len
    return L, max(1, a.tokens_per_step // L)


def train_step(model, opt, x, y, r, ans_w):
    with torch.autocast("cuda", dtype=torch.bfloat16):
        l_lm, l_an, corr, n_an = M.lm_losses(model, x, y, r)
        loss = l_lm + ans_w * l_an
    loss.backward()
    gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return torch.stack([l_lm.detach(), l_an.detach(), corr, n_an, gn.detach()])


def save_ckpt(path, state):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------
def main():
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean exit (stops data workers) on timeout/kill
    a = parse()
    M.DROPOUT = a.dropout
    t_start = time.time()
    os.makedirs(a.out, exist_ok=True)
    random.seed(a.seed); np.random.seed(a.seed); torch.manual_seed(a.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    set_gqa(a.gqa)
    dev = torch.device("cuda")
    run = dict(args=vars(a), host=platform.node(), torch=torch.__version__, gpu=torch.cuda.get_device_name(0), timings={})
    try:
        import tokenizers, transformers
        run.update(transformers=transformers.__version__, tokenizers=tokenizers.__version__)
    except Exception:
        pass
    log("run", json.dumps({k: run[k] for k in run if k != "args"}))

    # -------------------------------------------------------------- data + tokenizer
    t0 = time.time()
    train_docs_path = os.path.join(a.corpus_dir, "train.jsonl.xz")
    held_docs_path = os.path.join(a.corpus_dir, "heldout.jsonl.xz")
    train_docs = tasks.Corpus.load_jsonl_xz(train_docs_path)
    held_docs = tasks.Corpus.load_jsonl_xz(held_docs_path)
    log(f"docs train={len(train_docs)} heldout={len(held_docs)} load={time.time()-t0:.1f}s")
    tok_path = os.path.join(a.out, "tokenizer.json")
    from tokenizers import Tokenizer
    if a.tokenizer:
        shutil.copyfile(a.tokenizer, tok_path)
    elif a.resume and os.path.exists(os.path.join(os.path.dirname(a.resume), "tokenizer.json")):
        src = os.path.join(os.path.dirname(a.resume), "tokenizer.json")
        if os.path.abspath(src) != os.path.abspath(tok_path):
            shutil.copyfile(src, tok_path)
    elif a.init_from and os.path.exists(os.path.join(a.init_from, "tokenizer.json")):
        shutil.copyfile(os.path.join(a.init_from, "tokenizer.json"), tok_path)
    if not os.path.exists(tok_path):
        t1 = time.time()
        D.train_tokenizer([d["text"] for d in train_docs], a.vocab, tok_path)
        run["timings"]["tokenizer_train_s"] = time.time() - t1
        log(f"tokenizer trained in {time.time()-t1:.1f}s")
    tok = Tokenizer.from_file(tok_path)
    V = tok.get_vocab_size()
    assert V <= a.vocab, V
    t1 = time.time()
    tt_path, ht_path = os.path.join(a.out, "train_tokens.npy"), os.path.join(a.out, "heldout_tokens.npz")
    if a.reuse_tokens and os.path.exists(tt_path) and os.path.exists(ht_path):
        log("reusing tokenized corpus in", a.out)
        train_tokens = np.load(tt_path)
        held_by_src = dict(np.load(ht_path))
    else:
        train_tokens = D.tokenize_docs(tok, train_docs)
        np.save(tt_path, train_tokens)
        held_by_src = {}
        for src in sorted({d["source"] for d in held_docs}):
            held_by_src[src] = D.tokenize_docs(tok, [d for d in held_docs if d["source"] == src])
        np.savez(ht_path, **held_by_src)
    held_tokens = np.concatenate([held_by_src[s] for s in sorted(held_by_src)])
    train_bytes = sum(len(d["text"].encode()) for d in train_docs)
    run["data"] = dict(train_tokens=int(len(train_tokens)), heldout_tokens=int(len(held_tokens)), train_bytes=train_bytes,
                       bytes_per_token=train_bytes / len(train_tokens))
    run["timings"]["tokenize_s"] = time.time() - t1
    log(f"tokenized: train={len(train_tokens)/1e6:.2f}M tok ({train_bytes/len(train_tokens):.2f} B/tok) "
        f"heldout={len(held_tokens)/1e6:.2f}M tok in {time.time()-t1:.1f}s")
    del train_docs

    # eval instances are built in the background while training runs
    specs = D.eval_specs(tuple(int(x) for x in a.eval_lengths.split(",")), a.eval_n_depth, a.eval_n_other)
    ev_pool, ev_async = (None, None)
    if not a.skip_eval and not a.bench:
        ev_pool, ev_async = D.build_eval_async(tok_path, held_docs_path, specs, procs=4)

    rb_args = dict(tokenizer_json=tok_path, train_tokens=os.path.join(a.out, "train_tokens.npy"),
                   train_docs=train_docs_path, seed=a.seed, mix=a.mix)
    loader = D.Loader(a.workers, rb_args)

    # -------------------------------------------------------------- models
    cfg = copy.deepcopy(M.PRESETS[a.preset]); cfg.vocab_size = a.vocab; cfg.max_position_embeddings = a.seq_len
    model = M.LlamaLM(cfg).to(dev)
    draft = None
    if a.draft_preset != "none":
        dcfg = copy.deepcopy(M.PRESETS[a.draft_preset]); dcfg.vocab_size = a.vocab; dcfg.max_position_embeddings = a.seq_len
        torch.manual_seed(a.seed + 1)
        draft = M.LlamaLM(dcfg).to(dev)
    n_main = sum(p.numel() for p in model.parameters())
    n_draft = sum(p.numel() for p in draft.parameters()) if draft else 0
    run["params"] = dict(main=n_main, draft=n_draft)
    log(f"params main={n_main/1e6:.2f}M draft={n_draft/1e6:.2f}M  cfg={M.cfg_dict(cfg)}")
    opt = make_opt(model, a.lr, a.wd)
    dopt = make_opt(draft, a.draft_lr, a.wd) if draft else None

    step, elapsed0 = 0, 0.0
    hist = []
    if a.resume:
        st = torch.load(a.resume, map_location="cpu", weights_only=False)
        model.load_state_dict(st["model"]); opt.load_state_dict(st["opt"])
        if draft and st.get("draft"):
            draft.load_state_dict(st["draft"]); dopt.load_state_dict(st["dopt"])
        step, elapsed0 = st["step"], st["elapsed"]
        hist = st.get("hist", [])
        log(f"resumed from {a.resume} at step {step}, elapsed {elapsed0/60:.1f} min")
    elif a.init_from:
        from safetensors.torch import load_file
        import glob

        def load_dir(m, d):
            sd = {}
            for f in glob.glob(os.path.join(d, "*.safetensors")):
                sd.update(load_file(f))
            sd.pop("lm_head.weight", None)
            missing, unexpected = m.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
            assert not unexpected and all("inv_freq" in x for x in missing), (missing, unexpected)
        load_dir(model, a.init_from)
        if draft and a.init_draft_from:
            load_dir(draft, a.init_draft_from)
        log(f"initialized weights from {a.init_from}")

    fwd_main, fwd_draft = model, draft
    if a.compile:
        fwd_main = torch.compile(model, dynamic=False)
        fwd_draft = torch.compile(draft, dynamic=False) if draft else None

    if a.bench:
        return bench(a, loader, model, fwd_main, opt, draft, fwd_draft, dopt, dev, run)

    # -------------------------------------------------------------- training loop
    budget = a.train_minutes * 60
    csv_path = os.path.join(a.out, "loss.csv")
    fields = ["step", "tokens", "elapsed_s", "progress", "seq_len", "lr", "loss_lm", "loss_ans", "ans_tok_acc",
              "grad_norm", "draft_loss_lm", "draft_loss_ans", "draft_ans_tok_acc", "tok_per_s"]
    new_csv = not (a.resume and os.path.exists(csv_path))
    fcsv = open(csv_path, "a" if not new_csv else "w", newline="")
    wcsv = csv.DictWriter(fcsv, fieldnames=fields)
    if new_csv:
        wcsv.writeheader()
    qe_path = os.path.join(a.out, "quick_eval.csv")
    tokens_seen = hist[-1]["tokens"] if hist else 0
    t_loop = time.time()
    last_ckpt = time.time()
    last_qe = time.time()
    acc = None
    acc_d = None
    n_acc = 0
    t_log = time.time()
    tok_log = 0
    phases = run.setdefault("phases", [])
    ev_inst = None
    role_tokens = torch.zeros(3, dtype=torch.long, device=dev)
    log(f"training: budget {a.train_minutes:.2f} min, {a.tokens_per_step} tokens/step")
    while True:
        elapsed = elapsed0 + time.time() - t_loop
        p = step / a.total_steps if a.total_steps else elapsed / budget
        if p >= 1.0 or (a.max_steps and step >= a.max_steps):
            break
        L, rows = phase(p, a)
        if not phases or phases[-1]["seq_len"] != L:
            phases.append(dict(seq_len=L, rows=rows, step=step, elapsed_s=elapsed))
            log(f"phase: seq_len={L} rows={rows} from step {step}")
        for k in range(1, 7):
            loader.ask(step + k, L, rows)
        toks, roles = loader.get(step, L, rows)
        t = torch.from_numpy(toks).to(dev, non_blocking=True).long()
        r = torch.from_numpy(roles).to(dev, non_blocking=True)
        x, y, rr = t[:, :-1], t[:, 1:], r[:, 1:]
        lr = lr_at(a.lr, step, p, a)
        for g in opt.param_groups:
            g["lr"] = lr
        s = train_step(fwd_main, opt, x, y, rr, a.ans_weight)
        acc = s if acc is None else acc + s
        role_tokens = role_tokens + torch.bincount(rr.flatten().long(), minlength=3)
        if draft:
            dl = lr_at(a.draft_lr, step, p, a)
            for g in dopt.param_groups:
                g["lr"] = dl
            nd = max(1, int(round(x.shape[0] * a.draft_row_frac)))
            sd = train_step(fwd_draft, dopt, x[:nd], y[:nd], rr[:nd], a.ans_weight)
            acc_d = sd if acc_d is None else acc_d + sd
        n_acc += 1
        step += 1
        tokens_seen += x.numel()
        tok_log += x.numel()
        if step % 10 == 0 or step == 1:
            v = (acc / n_acc).tolist()
            vd = (acc_d / n_acc).tolist() if draft else [float("nan")] * 5
            dt = time.time() - t_log
            row = dict(step=step, tokens=tokens_seen, elapsed_s=round(elapsed0 + time.time() - t_loop, 2),
                       progress=round(p, 4), seq_len=L, lr=lr, loss_lm=v[0], loss_ans=v[1],
                       ans_tok_acc=(acc[2] / acc[3].clamp(min=1)).item(), grad_norm=v[4],
                       draft_loss_lm=vd[0], draft_loss_ans=vd[1],
                       draft_ans_tok_acc=(acc_d[2] / acc_d[3].clamp(min=1)).item() if draft else float("nan"),
                       tok_per_s=tok_log / dt)
            wcsv.writerow(row); fcsv.flush()
            hist.append(dict(step=step, tokens=tokens_seen))
            log(f"step {step:5d} p={p:.3f} L={L} lr={lr:.2e} lm={v[0]:.3f} ans={v[1]:.3f} "
                f"ans_acc={row['ans_tok_acc']:.3f} gn={v[4]:.2f} | draft lm={vd[0]:.3f} ans={vd[1]:.3f} "
                f"| {tok_log/dt/1e3:.0f}k tok/s, {tokens_seen/1e6:.1f}M tok")
            acc = acc_d = None
            n_acc = 0
            t_log, tok_log = time.time(), 0
        if ev_inst is None and ev_async is not None and ev_async.ready():
            ev_inst, ev_err = split_errors(ev_async.get())
            ev_pool.close()
            run["eval_build_errors"] = ev_err
            log(f"eval instances ready: {len(ev_inst)} ({len(ev_err)} failed to build)")
        if ev_inst is not None and time.time() - last_qe > a.quick_eval_minutes * 60:
            qe = quick_eval(model, ev_inst, dev)
            new = not os.path.exists(qe_path)
            with open(qe_path, "a") as f:
                if new:
                    f.write("step,tokens,elapsed_s," + ",".join(sorted(qe)) + "\n")
                f.write(f"{step},{tokens_seen},{elapsed0 + time.time() - t_loop:.1f}," + ",".join(f"{qe[k]:.3f}" for k in sorted(qe)) + "\n")
            log("quick eval (held-out, teacher-forced exact):", json.dumps(qe))
            model.train()
            last_qe = time.time()
        if time.time() - last_ckpt > a.ckpt_minutes * 60:
            ckpt(a, model, opt, draft, dopt, step, elapsed0 + time.time() - t_loop, hist, cfg, draft.cfg if draft else None)
            last_ckpt = time.time()
    train_s = elapsed0 + time.time() - t_loop
    fcsv.close()
    loader.close()
    rt = role_tokens.tolist()
    run["train"] = dict(steps=step, tokens=tokens_seen, seconds=train_s, tok_per_s=tokens_seen / max(train_s, 1e-9),
                        target_tokens_by_role=dict(none=rt[0], plain_lm=rt[1], answer=rt[2]))
    log(f"training done: {step} steps, {tokens_seen/1e6:.1f}M tokens, {train_s/60:.2f} min")
    ckpt(a, model, opt, draft, dopt, step, train_s, hist, cfg, draft.cfg if draft else None)
    del opt, dopt
    torch.cuda.empty_cache()

    # -------------------------------------------------------------- evaluation + export
    finish(a, run, model, draft, tok, tok_path, held_by_src, train_tokens, ev_async, ev_pool, ev_inst, dev, t_start)


def ckpt(a, model, opt, draft, dopt, step, elapsed, hist, cfg, dcfg):
    t = time.time()
    save_ckpt(os.path.join(a.out, "ckpt.pt"), dict(model=model.state_dict(), opt=opt.state_dict(),
                                                   draft=draft.state_dict() if draft else None,
                                                   dopt=dopt.state_dict() if dopt else None, step=step, elapsed=elapsed,
                                                   hist=hist, cfg=M.cfg_dict(cfg), dcfg=M.cfg_dict(dcfg) if dcfg else None,
                                                   args=vars(a)))
    log(f"checkpoint step {step} saved in {time.time()-t:.1f}s")


def split_errors(instances):
    ok = [i for i in instances if "error" not in i]
    return ok, [i for i in instances if "error" in i][:20]


def quick_eval(model, ev_inst, dev):
    top = sorted({i["length"] for i in ev_inst})[-2:]
    sel = [i for i in ev_inst if i["length"] in top and (i["task"] not in D.DEPTH_TASKS or i["depth"] in (0.0, 0.5, 1.0))]
    byt = {}
    for i in sel:
        byt.setdefault((i["task"], i["length"]), []).append(i)
    pick = [x for v in byt.values() for x in v[:6]]
    E.teacher_forced(model, pick, dev)
    out = {}
    for (t, L), v in byt.items():
        vv = [x["tf_exact"] for x in v[:6]]
        out[f"{t}@{L}"] = float(np.mean(vv))
    for x in pick:
        x.pop("tf_exact", None); x.pop("tf_tok_acc", None)
    return out


def finish(a, run, model, draft, tok, tok_path, held_by_src, train_tokens, ev_async, ev_pool, ev_inst, dev, t_start):
    import card
    t0 = time.time()
    # export/ mirrors the repository layout: extract the packed result at the repository root
    outd = os.path.join(a.out, "export")
    mdir, ddir, tdir = (os.path.join(outd, "models", "attend-mini"), os.path.join(outd, "models", "attend-mini-draft"),
                        os.path.join(outd, "tools", "train", "run"))
    hdir = os.path.join(outd, "data", "heldout")
    for d in (mdir, ddir, tdir, hdir):
        os.makedirs(d, exist_ok=True)
    model.eval()
    results = dict(run=run)
    # perplexity
    ppl = {}
    mw = a.ppl_max_windows or None
    for name, m in (("main", model), ("draft", draft)):
        if m is None:
            continue
        r = {"heldout_all": E.perplexity(m, np.concatenate([held_by_src[s] for s in sorted(held_by_src)]), dev,
                                         window=a.seq_len, max_windows=mw, tok=tok)}
        for src, arr in held_by_src.items():
            r[f"heldout_{src}"] = E.perplexity(m, arr, dev, window=min(a.seq_len, max(256, len(arr) - 1)), max_windows=mw)
        rng = np.random.default_rng(0)
        offs = rng.integers(0, len(train_tokens) - a.seq_len - 1, size=16)
        sample = np.concatenate([train_tokens[o:o + a.seq_len + 1] for o in offs])
        r["train_sample"] = E.perplexity(m, sample, dev, window=a.seq_len + 1 - 1, max_windows=16)
        ppl[name] = r
        log(f"ppl {name}: heldout {r['heldout_all']['ppl']:.2f} (bpb {r['heldout_all'].get('bits_per_byte', 0):.3f}), "
            f"train sample {r['train_sample']['ppl']:.2f}")
    results["perplexity"] = ppl
    # tasks
    if not a.skip_eval:
        if ev_inst is None:
            ev_inst, ev_err = split_errors(ev_async.get())
            ev_pool.close()
            run["eval_build_errors"] = ev_err
        results["eval_build"] = dict(instances=len(ev_inst), boundary_ok=float(np.mean([i["boundary_ok"] for i in ev_inst])))
        for name, m in (("main", model), ("draft", draft)):
            if m is None:
                continue
            E.teacher_forced(m, ev_inst, dev)
            results[f"tasks_{name}"] = E.summarize(ev_inst)
            for i in ev_inst:
                i[f"{name}_tf_exact"] = i.pop("tf_exact")
                i.pop("tf_tok_acc", None)
            log(f"tasks {name}: " + json.dumps({t: {L: round(v['acc'], 3) for L, v in d.items()}
                                                 for t, d in results[f'tasks_{name}']['by_task_length'].items()}))
    # export + verify
    sample_ids = torch.tensor(np.asarray(held_by_src[sorted(held_by_src)[0]][:1024], dtype=np.int64))[None]
    for name, m, d in (("main", model, mdir), ("draft", draft, ddir)):
        if m is None:
            continue
        M.export_hf(m, d)
        D.write_tokenizer_files(tok_path, d, a.seq_len)
        write_generation_config(d)
        v = M.verify_export(m, d, sample_ids, dev)
        results[f"export_{name}"] = v
        log(f"export {name}: {json.dumps(v)}")
        if not v["ok"]:
            log("EXPORT CHECK FAILED")
        # tokenizer check through transformers
        try:
            from transformers import AutoTokenizer
            ht = AutoTokenizer.from_pretrained(d)
            s = "The pass key is 12345. <|user|>\nHi<|assistant|>\n"
            ok = ht(s)["input_ids"] == tok.encode(s).ids
            results[f"tokenizer_{name}"] = dict(hf_matches=bool(ok), chat=ht.apply_chat_template(
                [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True))
        except Exception as e:  # pragma: no cover
            results[f"tokenizer_{name}"] = dict(error=repr(e))
    # real greedy decoding with transformers on a subset (also checks the export on long inputs)
    if not a.skip_eval:
        hf = M.load_hf(mdir, torch.bfloat16, dev)
        sub = [dict(i, tf_exact=i["main_tf_exact"]) for i in ev_inst]
        results["generate_main"] = E.hf_generate(hf, tok, sub, dev, time_budget_s=a.gen_budget_s)
        results["generate_main"]["summary"] = E.summarize(sub, key="gen_recall")
        for i, s in zip(ev_inst, sub):
            for k in ("gen_text", "gen_exact", "gen_recall"):
                if k in s:
                    i[k] = s[k]
        del hf
        log("generate (transformers, greedy):", json.dumps({k: v for k, v in results["generate_main"].items() if k != "summary"}))
        with open(os.path.join(tdir, "eval_instances.jsonl"), "w") as f:
            for i in ev_inst:
                j = {k: v for k, v in i.items() if k not in ("prompt_ids", "answer_ids")}
                f.write(json.dumps(j) + "\n")
        # the held-out evaluation set as regenerable specs (python3 tools/train/tasks.py materialize ...)
        with open(os.path.join(hdir, "eval_specs.jsonl"), "w") as f:
            for i in ev_inst:
                f.write(json.dumps({k: i[k] for k in ("task", "length", "depth", "seed", "variant", "nchars", "tokens", "answer")}) + "\n")
    results["timings"] = dict(total_s=time.time() - t_start, eval_export_s=time.time() - t0)
    json.dump(results, open(os.path.join(tdir, "eval.json"), "w"), indent=1)
    for f in ("loss.csv", "quick_eval.csv"):
        if os.path.exists(os.path.join(a.out, f)):
            shutil.copyfile(os.path.join(a.out, f), os.path.join(tdir, f))
    card.plot_loss(os.path.join(a.out, "loss.csv"), os.path.join(mdir, "loss.png"), run.get("phases", []))
    shutil.copyfile(os.path.join(mdir, "loss.png"), os.path.join(ddir, "loss.png"))
    card.write_cards(mdir, ddir, results)
    shutil.copyfile(os.path.join(tdir, "eval.json"), os.path.join(mdir, "eval.json"))
    log(f"eval + export done in {time.time()-t0:.1f}s; total {(time.time()-t_start)/60:.2f} min")


def write_generation_config(d):
    try:
        from transformers import GenerationConfig
        GenerationConfig(bos_token_id=0, eos_token_id=0, pad_token_id=0, do_sample=False, max_new_tokens=128).save_pretrained(d)
    except Exception:
        json.dump({"bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0, "do_sample": False, "max_new_tokens": 128},
                  open(os.path.join(d, "generation_config.json"), "w"), indent=2)


def bench(a, loader, model, fwd_main, opt, draft, fwd_draft, dopt, dev, run):
    """Throughput of the real step (main + draft) at the short and the long sequence length."""
    res = {}
    for L in sorted({a.short_seq_len, a.seq_len}):
        rows = max(1, a.tokens_per_step // L)
        times = []
        for i in range(a.bench):
            toks, roles = loader.get(10_000 + 1000 * L + i, L, rows)
            torch.cuda.synchronize(); t = time.time()
            tt = torch.from_numpy(toks).to(dev).long(); r = torch.from_numpy(roles).to(dev)
            s = train_step(fwd_main, opt, tt[:, :-1], tt[:, 1:], r[:, 1:], 1.0)
            t_main = None
            if draft:
                torch.cuda.synchronize(); t_main = time.time() - t
                nd = max(1, int(round(rows * a.draft_row_frac)))
                train_step(fwd_draft, dopt, tt[:nd, :-1], tt[:nd, 1:], r[:nd, 1:], 1.0)
            torch.cuda.synchronize()
            times.append((time.time() - t, t_main))
            log(f"bench L={L} step {i}: {times[-1][0]*1e3:.0f} ms (main {1e3*(t_main or 0):.0f} ms) loss={s[0].item():.3f}")
        steady = times[2:] if len(times) > 3 else times[1:]
        tot = float(np.median([x[0] for x in steady]))
        mn = float(np.median([x[1] for x in steady])) if draft else tot
        res[L] = dict(first_step_s=times[0][0], step_s=tot, main_step_s=mn, tok_per_s=rows * L / tot,
                      main_tok_per_s=rows * L / mn, mem_gb=torch.cuda.max_memory_allocated() / 1e9)
        log(f"BENCH L={L}: {json.dumps(res[L])}")
    loader.close()
    json.dump(dict(run=run, bench=res), open(os.path.join(a.out, a.bench_tag + ".json"), "w"), indent=1)


if __name__ == "__main__":
    main()
