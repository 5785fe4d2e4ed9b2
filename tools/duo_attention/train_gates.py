"""DuoAttention's retrieval-head identification for attend-mini: the paper's own optimisation (Xiao et al. 2024,
"DuoAttention: Efficient Long-Context LLM Inference with Retrieval and Streaming Heads", arXiv 2410.10819, §3: the
optimisation-based identification of retrieval heads), following the official recipe (mit-han-lab/duo-attention
at fe93c314ae87306ef6629dc16713250b4718ffe7: duo_attn/train.py, data.py, loss.py, patch/llama.py,
patch/streaming_attn.py, scripts/train.sh), re-written for one GPU with torch and transformers only (no code of theirs is copied here). It
writes a pattern directory in the official format, which `--press duo-attention --press-opt pattern=DIR` reads:

    python3 tools/duo_attention/train_gates.py --model models/attend-mini --out models/attend-mini/duo-pattern

The method, as the official code runs it:
- every KV head of every layer gets a gate α ∈ [0, 1], initialised to 1 (--initial_value 1.0); the model's weights
  are frozen; α is the only parameter.
- two-way forward on the same tokens: the teacher runs full causal attention everywhere (no gradient); in the
  student every attention layer outputs o_proj((1 − α)·streaming + α·full), per KV head's query heads, where
  `streaming` is the student's attention restricted to the first sink_size keys and the last recent_size keys up to
  each query (the official sdpa mask, generate_streaming_mask: key j visible to query i when j ≤ i and (j < sink or
  j > i − recent)), and `full` is the teacher's full-attention output of that layer
  (llama_duo_attention_forward_two_way mixes with the teacher row's full_attn_output, computed under no_grad).
- loss = distillation + reg_weight · L1: the squared difference of the final hidden states (after the final norm:
  the output of LlamaModel) averaged over the hidden dimension and summed over the label tokens, divided by their
  number; L1 = mean |α| over all gates (loss.py l1_loss); reg_weight 0.05.
- AdamW (weight decay 0) at lr 0.02 for 2000 steps, batch 1, the LR schedule min(1, max((s+1)/(steps//5), 0.1),
  max((steps−s)/(steps//5), 0.1)) (warm-up and cool-down over a fifth of the run each, floor 0.1); the gates are
  clamped to [0, 1] before every step's forward (and in the mixture), and saved as they are after the last step
  (the loaders clip to [0, 1]).
- data: the official MultiplePasskeyRetrievalDataset, re-implemented: a haystack of prose cut to each sample's
  context length, 50 context lengths evenly spaced from 1000 to the maximum (torch.linspace(..., dtype=int)), one
  per dataset item, shuffled each epoch; 10 passkeys of 32 words of the NATO alphabet inserted as needles at 10 depths
  drawn without replacement from 1000 evenly spaced in [0.05, 0.95] (sorted); then the 10 questions, each followed by
  its passkey; the labels (the distillation positions) are those question and answer tokens. The prompt strings are
  the official ones, typos included ("Remeber"); as the official code, the context is padded with the haystack's last
  tokens so that the sample is a multiple of 16 tokens long (16 − total % 16 of them, so 16 when already a multiple).

Scaled to attend-mini (an 8K-token model; the official runs use the model's training length: 32000 for 32K models,
128000 for Llama 3.1): context lengths 1000…8192 (the official minimum, attend-mini's context as the maximum, the
sample staying 300 tokens under it, the official buffer_size). Sink 128 and recent 256 (scripts/train.sh; the
deployments in scripts/niah.sh and longbench.sh use 64 and 256 with these patterns: the press's sink-size and
recent-size options). Everything else is the official setting.

Differences, chosen for one small model on one GPU: float32 weights and gates by default (the official run is
bfloat16, gates included; --dtype bfloat16 does that); the token-exact sdpa streaming mask (the official default,
blocksparse, works in blocks of 128); no sequence parallelism or FSDP (one GPU); the haystack is a local text
(--haystack; default tools/fixtures/corpus.txt, 11.8K tokens of KJV Genesis) since the GPU machine reaches no hub
(the official booksum.jsonl.zst), read as the official code does (documents concatenated until the haystack holds
the maximum length). A wall-clock limit (--max-minutes, default 5.5) ends training early if a slow machine needs it;
config.json then records the steps done.

The output directory gets config.json (this run's arguments, sink_size and recent_size among them, as the official
train.py writes it), full_attention_heads.tsv (np.savetxt of the gates: a row per layer, a tab-separated gate per
KV head) and train_log.tsv (the losses every 50 steps).
"""
import argparse
import json
import lzma
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

PASSKEY_ALPHABET = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett",
                    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
                    "uniform", "victor", "whiskey", "xray", "yankee", "zulu"]
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "eleventh",
            "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth", "nineteenth",
            "twentieth"]
# The official data.py strings (their typo kept: the prompts are part of the recipe).
NEEDLE = "Remeber this sequence of words, it's the {ordinal_number} passkey to the vault: "
QUESTION = "Based on the content of the book, what is the {ordinal_number} passkey to the vault?\nPasskey: "
PROMPT1 = "<|im_start|> This is a very long story book: <book> "
PROMPT2 = " </book>.\n\n"
SEPARATOR = "\n\n"
BUFFER = 300


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/attend-mini")
    ap.add_argument("--out", default="models/attend-mini/duo-pattern")
    ap.add_argument("--haystack", default="tools/fixtures/corpus.txt", help="UTF-8 text, or .jsonl[.xz] of {\"text\": ...} documents")
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--num_steps", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--reg_weight", type=float, default=0.05)
    ap.add_argument("--initial_value", type=float, default=1.0)
    ap.add_argument("--sink_size", type=int, default=128)
    ap.add_argument("--recent_size", type=int, default=256)
    ap.add_argument("--context_length_min", type=int, default=1000)
    ap.add_argument("--context_length_max", type=int, default=None, help="default: the model's max_position_embeddings")
    ap.add_argument("--context_lengths_num_intervals", type=int, default=50)
    ap.add_argument("--depth_ratio_num_intervals", type=int, default=1000)
    ap.add_argument("--min_needle_depth_ratio", type=float, default=0.05)
    ap.add_argument("--max_needle_depth_ratio", type=float, default=0.95)
    ap.add_argument("--num_passkeys", type=int, default=10)
    ap.add_argument("--passkey_length", type=int, default=32)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--max-minutes", dest="max_minutes", type=float, default=5.5)
    ap.add_argument("--log-every", dest="log_every", type=int, default=50)
    return ap.parse_args()


def read_haystack(path, tokenizer, need):
    """The haystack text: a text file, or documents' "text" concatenated (in order) until `need` tokens."""
    if not (path.endswith(".jsonl") or path.endswith(".jsonl.xz")):
        return open(path, encoding="utf-8").read()
    opener = lzma.open if path.endswith(".xz") else open
    text = ""
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if len(tokenizer.encode(text)) >= need:
                break
            text += json.loads(line)["text"]
    return text


class MultiplePasskeys:
    """The official MultiplePasskeyRetrievalDataset's samples (see the top of this file), one per context length."""

    def __init__(self, tokenizer, haystack, a):
        enc = lambda s, special=False: tokenizer.encode(s, add_special_tokens=special)
        self.a = a
        self.lengths = torch.linspace(a.context_length_min, a.context_length_max, a.context_lengths_num_intervals, dtype=torch.int).tolist()
        self.depths = torch.linspace(a.min_needle_depth_ratio, a.max_needle_depth_ratio, a.depth_ratio_num_intervals)
        self.needles = [enc(NEEDLE.format(ordinal_number=o)) for o in ORDINALS[: a.num_passkeys]]
        self.questions = [enc(QUESTION.format(ordinal_number=o)) for o in ORDINALS[: a.num_passkeys]]
        self.separator = enc(SEPARATOR)
        self.prompt1 = enc(PROMPT1, True)
        self.prompt2 = enc(PROMPT2)
        self.enc = enc
        tokens = enc(haystack)[: a.context_length_max]
        passkey = enc(self.passkey())
        other = len(self.prompt1) + len(self.prompt2) + (
            2 * len(self.separator) + len(self.needles[0]) + len(passkey) + len(self.questions[0]) + len(passkey)
        ) * a.num_passkeys
        if len(tokens) + other > a.context_length_max - BUFFER:
            tokens = tokens[: a.context_length_max - BUFFER - other]
        self.haystack = tokens
        if len(self.haystack) < a.context_length_min:
            sys.exit(f"the haystack holds {len(self.haystack)} tokens after the needles' room, fewer than --context_length_min {a.context_length_min}")

    def passkey(self):
        return " ".join(PASSKEY_ALPHABET[i] for i in torch.randint(0, len(PASSKEY_ALPHABET), (self.a.passkey_length,)).tolist())

    def __len__(self):
        return len(self.lengths)

    def sample(self, i):
        n = self.a.num_passkeys
        depths = self.depths[torch.randperm(len(self.depths))[:n]].sort().values.tolist()
        passkeys = [self.enc(self.passkey()) for _ in range(n)]
        hay = self.haystack[: self.lengths[i]]
        context, last = [], 0
        for k, (depth, key) in enumerate(zip(depths, passkeys)):
            at = int(len(hay) * depth)
            context += hay[last:at] + self.separator + self.needles[k] + key + self.separator
            last = at
        context += hay[last:]
        qa = []
        for k, key in enumerate(passkeys):
            qa += self.questions[k] + key + self.separator
        context = self.prompt1 + context
        pad = 16 - (len(context) + len(qa) + len(self.prompt2)) % 16
        context += self.haystack[-pad:]
        context += self.prompt2
        ids = torch.tensor(context + qa)
        labels = torch.tensor([-100] * len(context) + qa)
        assert ids.numel() % 16 == 0
        return ids, labels


def streaming_mask(n, sink, recent, device):
    """generate_streaming_mask: query i sees key j ≤ i when j < sink or j > i − recent (True = visible)."""
    i = torch.arange(n, device=device)[:, None]
    j = torch.arange(n, device=device)[None, :]
    return (j <= i) & ((j < sink) | (j > i - recent))


def attend(attn, x, cos, sin, mask):
    """A Llama attention layer's heads before o_proj: [batch, heads, tokens, head_dim]; mask None = causal."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    b, n, _ = x.shape
    d = attn.head_dim
    q = attn.q_proj(x).view(b, n, -1, d).transpose(1, 2)
    k = attn.k_proj(x).view(b, n, -1, d).transpose(1, 2)
    v = attn.v_proj(x).view(b, n, -1, d).transpose(1, 2)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, scale=attn.scaling)


def two_way(model, ids, gates, mask):
    """Teacher (full attention) and student (gated) final hidden states, as the official two-way forward."""
    m = model.model
    n = ids.shape[-1]  # ids: one sequence, 1-D
    positions = torch.arange(n, device=ids.device)[None]
    h = m.embed_tokens(ids[None])
    cos, sin = m.rotary_emb(h, positions)
    teacher, student = h, h
    heads = model.config.num_attention_heads
    group = heads // model.config.num_key_value_heads
    for l, layer in enumerate(m.layers):
        attn = layer.self_attn
        with torch.no_grad():
            full = attend(attn, layer.input_layernorm(teacher), cos, sin, None)
            teacher = teacher + attn.o_proj(full.transpose(1, 2).reshape(1, n, -1))
            teacher = teacher + layer.mlp(layer.post_attention_layernorm(teacher))
        stream = attend(attn, layer.input_layernorm(student), cos, sin, mask)
        alpha = gates[l].clamp(0, 1).repeat_interleave(group).view(1, heads, 1, 1).to(stream.dtype)
        mixed = (1 - alpha) * stream + alpha * full
        student = student + attn.o_proj(mixed.transpose(1, 2).reshape(1, n, -1))
        student = student + layer.mlp(layer.post_attention_layernorm(student))
    return m.norm(teacher), m.norm(student)


def check_layer_loop(model, device):
    """The hand-written teacher pass must be the model's own forward (guards against a transformers API change)."""
    ids = torch.arange(1, 97, device=device) % model.config.vocab_size
    gates = torch.ones(model.config.num_hidden_layers, model.config.num_key_value_heads, device=device)
    with torch.no_grad():
        want = model.model(input_ids=ids[None], use_cache=False).last_hidden_state
        teacher, student = two_way(model, ids, gates, streaming_mask(len(ids), 4, 8, device))
    err = max((teacher - want).abs().max().item(), (student - want).abs().max().item())
    tol = 1e-3 if model.dtype == torch.float32 else 5e-2
    assert err < tol, f"the layer loop differs from the model's forward by {err}"
    return err


def main():
    a = parse_args()
    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    from transformers import AutoTokenizer, LlamaForCausalLM

    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, a.dtype)
    torch.backends.cuda.matmul.allow_tf32 = False
    model = LlamaForCausalLM.from_pretrained(a.model, dtype=dtype, attn_implementation="sdpa").to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(a.model)
    if a.context_length_max is None:
        a.context_length_max = model.config.max_position_embeddings
    loop_error = check_layer_loop(model, device)
    print(f"layer loop matches the model's forward (max |Δ| {loop_error:.2e})", flush=True)

    data = MultiplePasskeys(tokenizer, read_haystack(a.haystack, tokenizer, a.context_length_max), a)
    gates = torch.nn.Parameter(torch.ones(model.config.num_hidden_layers, model.config.num_key_value_heads, device=device, dtype=dtype) * a.initial_value)
    optimizer = torch.optim.AdamW([gates], lr=a.lr, weight_decay=0)
    fifth = max(1, a.num_steps // 5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1, max((s + 1) / fifth, 0.1), max((a.num_steps - s) / fifth, 0.1)))
    os.makedirs(a.out, exist_ok=True)
    log = open(os.path.join(a.out, "train_log.tsv"), "w")
    log.write("step\tlength\tlabels\tdistill_loss\treg_loss\tlr\tseconds\n")
    start = time.time()
    step, stopped_early = 0, False
    order = []
    while step < a.num_steps:
        if not order:
            order = torch.randperm(len(data)).tolist()  # shuffle=True, one epoch at a time
        ids, labels = data.sample(order.pop())
        ids, labels = ids.to(device), labels.to(device)
        with torch.no_grad():
            gates.clamp_(0, 1)
        mask = streaming_mask(ids.numel(), a.sink_size, a.recent_size, device)
        teacher, student = two_way(model, ids, gates, mask)
        keep = labels != -100
        t, s = teacher[0][keep].float(), student[0][keep].float()
        distill = (t - s).pow(2).mean(dim=-1).sum() / keep.sum()
        reg = gates.float().abs().sum() / gates.numel()
        loss = distill + a.reg_weight * reg
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        step += 1
        elapsed = time.time() - start
        if step % a.log_every == 0 or step == a.num_steps:
            lr = optimizer.param_groups[0]["lr"]
            log.write(f"{step}\t{ids.numel()}\t{int(keep.sum())}\t{distill.item():.6g}\t{reg.item():.6g}\t{lr:.3g}\t{elapsed:.1f}\n")
            log.flush()
            print(f"step {step}/{a.num_steps} len {ids.numel()} distill {distill.item():.4g} reg {reg.item():.4g} lr {lr:.3g} ({elapsed:.0f} s)", flush=True)
        if elapsed > 60 * a.max_minutes and step < a.num_steps:
            print(f"stopping at step {step}: past --max-minutes {a.max_minutes}", flush=True)
            stopped_early = True
            break
    log.close()

    values = gates.detach().float().cpu().numpy()
    np.savetxt(os.path.join(a.out, "full_attention_heads.tsv"), values, delimiter="\t")
    config = dict(vars(a), model_name=a.model, output_dir=a.out, steps_done=step, stopped_early=stopped_early,
                  seconds=round(time.time() - start, 1), streaming_attn_implementation="sdpa", supervision="distill",
                  dataset_name=a.haystack, dataset_format="multiple_passkey", batch_size=1,
                  official_code="mit-han-lab/duo-attention@fe93c314ae87306ef6629dc16713250b4718ffe7",
                  made_by="tools/duo_attention/train_gates.py",
                  device_name=torch.cuda.get_device_name() if device.startswith("cuda") else device,
                  versions=dict(torch=torch.__version__, transformers=__import__("transformers").__version__))
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f)
    ranked = sorted(((v, l, h) for l, row in enumerate(values) for h, v in enumerate(row)), reverse=True)
    print("gates (layer.head value), highest first:", ", ".join(f"{l}.{h} {v:.3f}" for v, l, h in ranked))
    print("wrote", a.out, f"({step} steps in {time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
