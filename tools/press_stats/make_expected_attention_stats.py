"""Query statistics for Attend's `--press expected-attention-stats`, computed by kvpress's own code.

kvpress's ExpectedAttentionStatsPress reads precomputed per-layer, per-head means and covariances of the pre-RoPE
queries (its ExpectedAttentionStats module, saved with PyTorchModelHubMixin.save_pretrained: a folder holding
model.safetensors with `query_mean` [layers, heads, head_dim] and `query_cov` [layers, heads, head_dim, head_dim],
and config.json). This script imports kvpress from a directory given on the command line (nothing of it is
copied here) and runs its `collect_queries` (queries captured by its `patch_rotary_embedding`, the first n_sink
of each sample dropped, covariance divided by N - 1) and `ExpectedAttentionStats(...).save_pretrained`, as
kvpress's own `main` in expected_attention_with_stats.py does. The folder it writes is what
`--press-opt stats=FOLDER` reads (src/presses/expected-attention.ts).

    python3 tools/press_stats/make_expected_attention_stats.py --kvpress DIR --model models/attend-mini \
        --text tools/fixtures/corpus.txt --out OUT_DIR [--dtype bfloat16] [--num-samples 100] \
        [--sample-seq-len 1000] [--n-sink 4] [--device cpu]

Data: kvpress's default is the Hugging Face dataset kmfoda/booksum (column "chapter"), loaded with
datasets.load_dataset; `--dataset NAME` does that where the hub can be reached and `datasets` is installed. The GPU
machine reaches nothing, so `--text FILE` stands in for it: the file is cut into consecutive pieces of
sample_seq_len characters, one dataset row each (kvpress cuts each row to sample_seq_len characters too).
The model needs its tokenizer in its folder (collect_queries loads it from model.config.name_or_path).
Defaults are kvpress's main(): bfloat16 weights, 100 samples of 1000 characters, n_sink 4.
"""
import argparse
import os
import sys
import types


def stand_in_modules():
    """Empty modules for kvpress imports that the statistics never touch (as tools/fixtures/make_press_oracle.py)."""
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


class TextRows:
    """The two things collect_queries asks of a dataset: .map(fn) over rows and [column] for a column's values."""

    def __init__(self, rows, column):
        self.rows, self.column = rows, column

    def map(self, fn):
        return TextRows([dict(row, **fn(row)) for row in self.rows], self.column)

    def __getitem__(self, column):
        return [row[column] for row in self.rows]


def text_dataset(path, num_samples, sample_seq_len, column):
    text = open(path, encoding="utf-8").read()
    pieces = [text[i:i + sample_seq_len] for i in range(0, len(text), sample_seq_len)][:num_samples]
    return TextRows([{column: p} for p in pieces], column)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kvpress", required=True, help="directory that holds the kvpress package")
    ap.add_argument("--model", required=True, help="model folder (with its tokenizer)")
    ap.add_argument("--out", required=True, help="folder to write (model.safetensors + config.json)")
    ap.add_argument("--text", default=None, help="local text standing in for the dataset")
    ap.add_argument("--dataset", default="kmfoda/booksum", help="dataset name (kvpress's default), without --text")
    ap.add_argument("--text-column", default="chapter")
    ap.add_argument("--num-samples", type=int, default=100)
    ap.add_argument("--sample-seq-len", type=int, default=1000)
    ap.add_argument("--n-sink", type=int, default=4)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    stand_in_modules()
    sys.path.insert(0, a.kvpress)
    from kvpress.presses import expected_attention_with_stats as eas

    if a.text is not None:
        rows = text_dataset(a.text, a.num_samples, a.sample_seq_len, a.text_column)
        eas.load_dataset = lambda name, split=None, **kw: rows  # collect_queries calls load_dataset(name, split=...)
        dataset_name = os.path.basename(a.text)
        a.num_samples = len(rows.rows)
    else:
        dataset_name = a.dataset

    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=getattr(torch, a.dtype)).to(a.device).eval()
    _, mu, cov = eas.collect_queries(model, a.dataset if a.text is None else "text", a.num_samples, a.sample_seq_len,
                                     a.n_sink, a.text_column)
    cfg = model.config
    stats = eas.ExpectedAttentionStats(
        num_layers=cfg.num_hidden_layers,
        num_heads=cfg.num_attention_heads,
        head_dim=getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads,
        dataset_name=dataset_name,
        model_name=os.path.basename(a.model.rstrip("/")),
        num_samples=a.num_samples,
        sample_seq_len=a.sample_seq_len,
        n_sink=a.n_sink,
    )
    stats.query_mean.data = mu
    stats.query_cov.data = cov
    stats.save_pretrained(a.out)
    # Read back with kvpress's own loader, as ExpectedAttentionStatsPress(stats_folder=...) does.
    back = eas.ExpectedAttentionStats.from_pretrained(a.out)
    assert tuple(back.query_mean.shape) == tuple(mu.shape) and tuple(back.query_cov.shape) == tuple(cov.shape)
    print(f"wrote {a.out}: query_mean {list(mu.shape)}, query_cov {list(cov.shape)} ({mu.dtype}), "
          f"{a.num_samples} samples of {a.sample_seq_len} characters from {dataset_name}")


if __name__ == "__main__":
    main()
