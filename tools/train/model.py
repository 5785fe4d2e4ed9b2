"""A small Llama (RoPE, RMSNorm, SwiGLU, grouped-query attention) for training, with parameter
names identical to transformers' LlamaForCausalLM, an exporter to a Hugging Face checkpoint and
a check that transformers reproduces this model's logits.

Numerics follow transformers' Llama: RMSNorm in fp32 then cast, rotate-half RoPE with
inv_freq = 1 / theta^(2i/d) computed in fp32 and cos/sin cast to the activation dtype,
attention scale 1/sqrt(head_dim), SiLU-gated MLP, tied input/output embeddings.
"""
from __future__ import annotations

import inspect
import json
import math
import os
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Cfg:
    vocab_size: int = 16384
    hidden_size: int = 512
    num_hidden_layers: int = 8
    num_attention_heads: int = 8
    num_key_value_heads: int = 2
    head_dim: int = 64
    intermediate_size: int = 1408
    rope_theta: float = 500000.0
    max_position_embeddings: int = 8192
    rms_norm_eps: float = 1e-5
    bos_token_id: int = 0
    eos_token_id: int = 0

    def n_params(self) -> int:
        d, L, f = self.hidden_size, self.num_hidden_layers, self.intermediate_size
        q = self.num_attention_heads * self.head_dim
        kv = self.num_key_value_heads * self.head_dim
        per_layer = d * q + 2 * d * kv + q * d + 3 * d * f + 2 * d
        return self.vocab_size * d + L * per_layer + d


PRESETS = {
    # ~31M parameters (8.4M of them in the tied embedding)
    "mini": Cfg(),
    # ~4.7M parameters, same tokenizer
    "draft": Cfg(hidden_size=192, num_hidden_layers=4, num_attention_heads=3, num_key_value_heads=1,
                 head_dim=64, intermediate_size=512),
    # for smoke tests only
    "tiny": Cfg(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                head_dim=64, intermediate_size=256),
}


# Dropout while training (train.py --dropout): on the attention probabilities and on each sublayer's output before
# the residual add, as GPT-2 places it. 0 by default (stages 1-5); the export and evaluation run in eval mode, so
# it never reaches a checkpoint.
DROPOUT = 0.0


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dt)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        self.h, self.kv, self.hd = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, self.h * self.hd, bias=False)
        self.k_proj = nn.Linear(c.hidden_size, self.kv * self.hd, bias=False)
        self.v_proj = nn.Linear(c.hidden_size, self.kv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.h * self.hd, c.hidden_size, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.kv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.kv, self.hd).transpose(1, 2)
        cos, sin = cos.to(q.dtype), sin.to(q.dtype)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        p = DROPOUT if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.kv != self.h, dropout_p=p)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.h * self.hd))


class MLP(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MLP(c)

    def forward(self, x, cos, sin):
        x = x + F.dropout(self.self_attn(self.input_layernorm(x), cos, sin), DROPOUT, self.training)
        return x + F.dropout(self.mlp(self.post_attention_layernorm(x)), DROPOUT, self.training)


class Inner(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(Layer(c) for _ in range(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class LlamaLM(nn.Module):
    """Parameter names = transformers LlamaForCausalLM names (model.*); lm_head is tied."""

    def __init__(self, c: Cfg):
        super().__init__()
        self.cfg = c
        self.model = Inner(c)
        inv = 1.0 / (c.rope_theta ** (torch.arange(0, c.head_dim, 2, dtype=torch.int64).float() / c.head_dim))
        self.register_buffer("inv_freq", inv, persistent=False)
        self.reset_parameters()

    def reset_parameters(self):
        std = 0.02
        for name, p in self.named_parameters():
            if p.dim() == 2:
                s = std / math.sqrt(2 * self.cfg.num_hidden_layers) if name.endswith(("o_proj.weight", "down_proj.weight")) else std
                nn.init.normal_(p, 0.0, s)
            else:
                nn.init.ones_(p)

    def rope(self, T, device):
        t = torch.arange(T, device=device, dtype=torch.int64).float()
        freqs = torch.outer(t, self.inv_freq.to(device).float())
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos()[None, None], emb.sin()[None, None]

    def hidden(self, idx):
        x = self.model.embed_tokens(idx)
        cos, sin = self.rope(idx.shape[1], idx.device)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return self.model.norm(x)

    def forward(self, idx):
        """logits (B, T, V) in the autocast dtype."""
        return F.linear(self.hidden(idx), self.model.embed_tokens.weight)


def lm_losses(model, x, y, roles):
    """Per-role mean cross entropy. roles: 1 = plain-text LM target, 2 = task answer target,
    0 = no loss (task prompt / haystack / question). Returns (loss_lm, loss_ans, ans_tok_correct, n_ans)."""
    logits = model(x)
    ce = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), y.reshape(-1), reduction="none").view_as(y)
    lm = (roles == 1).float()
    an = (roles == 2).float()
    n_lm, n_an = lm.sum(), an.sum()
    loss_lm = (ce * lm).sum() / n_lm.clamp(min=1)
    loss_an = (ce * an).sum() / n_an.clamp(min=1)
    with torch.no_grad():
        correct = ((logits.argmax(-1) == y).float() * an).sum()
    return loss_lm, loss_an, correct, n_an


# ----------------------------------------------------------------------------------------------
# Hugging Face export
# ----------------------------------------------------------------------------------------------
def hf_config(c: Cfg, **extra):
    from transformers import LlamaConfig
    kw = dict(vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
              num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
              num_key_value_heads=c.num_key_value_heads, head_dim=c.head_dim,
              max_position_embeddings=c.max_position_embeddings, rms_norm_eps=c.rms_norm_eps,
              tie_word_embeddings=True, bos_token_id=c.bos_token_id, eos_token_id=c.eos_token_id,
              pad_token_id=c.eos_token_id, attention_bias=False, mlp_bias=False, hidden_act="silu",
              initializer_range=0.02, use_cache=True)
    params = inspect.signature(LlamaConfig.__init__).parameters
    if "rope_parameters" in params:
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": float(c.rope_theta)}
    else:
        kw["rope_theta"] = float(c.rope_theta)
    kw.update(extra)
    cfg = LlamaConfig(**kw)
    theta = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta", getattr(cfg, "rope_theta", None))
    assert float(theta) == float(c.rope_theta), f"rope_theta not taken by LlamaConfig: {theta}"
    return cfg


def export_hf(model: LlamaLM, out_dir: str, max_shard_size="15MB"):
    """Write config.json + model.safetensors (bf16, sharded) with transformers' own save_pretrained."""
    from transformers import LlamaForCausalLM
    c = model.cfg
    cfg = hf_config(c)
    try:
        cfg.dtype = torch.bfloat16
    except Exception:
        cfg.torch_dtype = torch.bfloat16
    with torch.device("cpu"):
        hf = LlamaForCausalLM(cfg)
    sd = {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items() if k != "inv_freq"}
    sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    missing = [m for m in missing if "rotary_emb" not in m]
    unexpected = [u for u in unexpected if "rotary_emb" not in u]
    assert not missing and not unexpected, (missing, unexpected)
    hf.tie_weights()
    hf = hf.to(torch.bfloat16)
    os.makedirs(out_dir, exist_ok=True)
    try:
        hf.save_pretrained(out_dir, safe_serialization=True, max_shard_size=max_shard_size)
    except TypeError:
        hf.save_pretrained(out_dir, max_shard_size=max_shard_size)
    # Keep a legacy top-level rope_theta next to transformers-5 "rope_parameters" for other readers.
    p = os.path.join(out_dir, "config.json")
    j = json.load(open(p))
    j.setdefault("rope_theta", float(c.rope_theta))
    j["torch_dtype"] = "bfloat16"
    json.dump(j, open(p, "w"), indent=2, sort_keys=True)
    return out_dir


def load_hf(path, dtype, device):
    from transformers import LlamaForCausalLM
    try:
        m = LlamaForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa")
    except TypeError:
        m = LlamaForCausalLM.from_pretrained(path, torch_dtype=dtype, attn_implementation="sdpa")
    return m.to(device).eval()


@torch.no_grad()
def verify_export(model: LlamaLM, out_dir: str, tokens: torch.Tensor, device) -> dict:
    """Compare our logits with transformers' LlamaForCausalLM loaded from the export.
    fp32: our model with bf16-rounded weights in fp32 vs HF loaded in fp32 (must match closely).
    bf16: both in bf16 autocast / bf16 weights (reported)."""
    import copy
    ref = copy.deepcopy(model).to(device).float().eval()
    for p in ref.parameters():
        p.data = p.data.to(torch.bfloat16).float()
    x = tokens.to(device)
    ours = ref(x).float()
    hf = load_hf(out_dir, torch.float32, device)
    theirs = hf(input_ids=x).logits.float()
    d32 = (ours - theirs).abs().max().item()
    del hf
    hf16 = load_hf(out_dir, torch.bfloat16, device)
    theirs16 = hf16(input_ids=x).logits.float()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        ours16 = ref.to(torch.bfloat16)(x).float()
    d16 = (ours16 - theirs16).abs().max().item()
    agree = (ours.argmax(-1) == theirs.argmax(-1)).float().mean().item()
    scale = ours.abs().max().item()
    del hf16, ref
    torch.cuda.empty_cache()
    return dict(max_abs_diff_fp32=d32, max_abs_diff_bf16=d16, argmax_agreement_fp32=agree, logit_absmax=scale,
                tokens=int(x.numel()), ok=bool(d32 < 2e-2 and agree > 0.999))


def cfg_dict(c: Cfg) -> dict:
    return asdict(c)
