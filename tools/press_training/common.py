"""What the training scripts beside this file share: their command line, kvpress's import (from a directory given on
the command line; nothing of it is copied here), the model, and the calibration text cut into token samples.

Every script runs as

    python3 tools/press_training/<name>.py --kvpress .oracle/kvpress --model models/attend-mini --text FILE --out DIR

with FILE any UTF-8 text (tools/fixtures/corpus.txt, .train-data/raw/bible.txt, ...): the GPU machine reaches no hub,
so the datasets the recipes name (fineweb, Nemotron, booksum) are stood in by that text, cut into samples of the
recipe's length in tokens. Device: cuda when there is one (--device to choose).
"""
import argparse
import os
import sys
import types


def stand_in_modules():
    """Empty modules for kvpress imports that these scripts never touch (as tools/fixtures/make_press_oracle.py)."""
    for name, attrs in {"cachetools": ["LRUCache", "cached"], "datasets": ["load_dataset"], "fire": ["Fire"]}.items():
        if name in sys.modules:
            continue
        try:
            __import__(name)
        except ImportError:
            mod = types.ModuleType(name)
            for a in attrs:
                setattr(mod, a, (lambda *x, **k: (lambda f: f)) if a == "cached" else (lambda *x, **k: None))
            sys.modules[name] = mod


def parser(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--kvpress", required=True, help="directory that holds the kvpress package")
    ap.add_argument("--model", required=True, help="model folder (with its tokenizer)")
    ap.add_argument("--text", required=True, help="UTF-8 text the calibration / training samples are cut from")
    ap.add_argument("--out", required=True, help="folder to write")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def setup(a):
    """Imports kvpress, seeds torch, picks the device; returns (torch, kvpress, device)."""
    import torch

    stand_in_modules()
    sys.path.insert(0, a.kvpress)
    import kvpress

    torch.manual_seed(a.seed)
    torch.set_grad_enabled(False)
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    os.makedirs(a.out, exist_ok=True)
    return torch, kvpress, device


def load_model(path, device, dtype="float32", attn="sdpa"):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), attn_implementation=attn).to(device).eval()
    return model, AutoTokenizer.from_pretrained(path)


def token_samples(tokenizer, path, length, count, add_special_tokens=True):
    """The text cut into `count` consecutive samples of `length` tokens (fewer if the text is shorter)."""
    text = open(path, encoding="utf-8").read()
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = [tokenizer.bos_token_id] if add_special_tokens and tokenizer.bos_token_id is not None else []
    step = length - len(bos)
    samples = [bos + ids[i:i + step] for i in range(0, len(ids) - step + 1, step)][:count]
    if not samples:
        raise SystemExit(f"{path}: {len(ids)} tokens, fewer than one sample of {length}")
    return samples


def text_samples(tokenizer, path, length, count):
    """The text cut into `count` consecutive pieces of about `length` tokens each, as text (decoded back)."""
    return [tokenizer.decode(s, skip_special_tokens=True) for s in token_samples(tokenizer, path, length, count, False)]
