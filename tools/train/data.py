"""Tokenizer training and the training data stream for attend-mini (GPU machine side).

Stream: every training step s asks for `rows` rows of `seq_len + 1` tokens. The content of step s
is a pure function of (seed, s, seq_len, rows), built by worker processes:

  * with probability P_PLAIN a row is plain text: a random window of the tokenized training
    documents (documents separated by <|endoftext|>), loss role 1 on every token;
  * otherwise the row is packed with synthetic task samples (tasks.py, train split) of random
    lengths, each "<|endoftext|> prompt answer <|endoftext|>", with loss role 0 on the prompt
    (instructions, haystack, question) and role 2 on the answer tokens and the closing
    <|endoftext|>; what is left of the row is filled with plain text (role 1).
  * 10% of task samples use the chat format "<|user|>\\n{prompt}\\n<|assistant|>\\n{answer}<|endoftext|>".

The trainer's loss is mean CE over role-1 tokens + mean CE over role-2 tokens (see model.lm_losses).
"""
from __future__ import annotations

import json
import math
import os
import queue
import random
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tasks  # noqa: E402
import wording  # noqa: E402  (registers the para_* tasks in tasks.TASKS)

SPECIALS = ["<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>"]
EOT_ID = 0

P_PLAIN = 0.15
P_CHAT = 0.10
# sample-count mixture of training tasks
MIX = {
    "passkey": 0.07,
    "niah_single": 0.22,
    "niah_multikey": 0.15,
    "niah_multikey_dense": 0.05,
    "niah_multivalue": 0.11,
    "niah_multiquery": 0.12,
    "vt": 0.13,
    "fwe": 0.05,
    "kv": 0.10,
}
MIN_TASK_TOKENS = 160

# Mixes by name (train.py --mix). "v1" trained the first 400M tokens of attend-mini from scratch.
# "v2" (the continuation stage) targets what v1 left weak, passkey at 8K with the needle at depth 0:
# twice the passkey share, needles placed exactly at the first or last unit a quarter of the time
# (uniform depths almost never put a needle there), and a third of the rows given to one task
# instance that fills the whole row, so full-length haystacks are common.
MIXES = {
    "v1": dict(mix=MIX, edge_depth=(0.0, 0.0), full_row=0.0),
    "v2": dict(mix={**MIX, "passkey": 0.14, "niah_single": 0.22, "niah_multikey": 0.12, "vt": 0.10, "kv": 0.06},
               edge_depth=(0.15, 0.10), full_row=0.33),
}


def _with_wording(v2_share: float, para: dict) -> dict:
    """A continuation mix: v2's tasks in v2's proportions scaled to v2_share, plus the wording.py tasks."""
    v2 = MIXES["v2"]["mix"]
    return dict(mix={**{k: v2_share * v / sum(v2.values()) for k, v in v2.items()}, **para},
                edge_depth=(0.12, 0.08), full_row=0.33)


# "v3" (issue 9) continues from v2's weights so that retrieval generalises beyond the fixed templates: 55% of
# task samples come from wording.py (any wording, numeric and word values, with and without an answer cue,
# chat and plain); the other 45% keep v2's tasks in v2's proportions, so that they are not forgotten.
MIXES["v3"] = _with_wording(0.45, {"para_single": 0.28, "para_multikey": 0.17, "para_passkey": 0.10})
# "v4" (a short second continuation after v3): the held-out evaluation showed unseen answer cues ("Reply:",
# "Output:") and word or code values as the weak points, so the para_* share grows to 70% (the wording lists
# gained generic "Label:" cues, wording.LABELS).
MIXES["v4"] = _with_wording(0.30, {"para_single": 0.38, "para_multikey": 0.20, "para_passkey": 0.12})
# "v5" (a third continuation, after v4's held-out evaluation: word values 29%, unseen "Reply:"/"Output:" cues ~43%,
# perplexity +7.8% over v2): the wording lists gained a corpus-wide word pool for values (wording.POOL) and
# hundreds of generic "Label:" cues; a quarter of the rows are plain text (P_PLAIN is 15% elsewhere) to win
# perplexity back. "v5h" also puts the language-model loss (role 1) on the haystacks of real-text tasks: tried
# first, it overfitted the 9.3 M-token training corpus (held-out perplexity 22.0 -> 38.9, training sample 6.3 ->
# 3.9) without helping retrieval, so it stays only as the record of that run (tools/train/README.md).
MIXES["v5"] = dict(_with_wording(0.30, {"para_single": 0.36, "para_multikey": 0.24, "para_passkey": 0.10}), plain=0.25)
MIXES["v5h"] = dict(MIXES["v5"], haystack_lm=True)
# "v6" (stage 7, after stage 6's held-out evaluation: numbers 85% but word values 56%, most misses a needle never
# located rather than a value mis-copied, and 8K the weakest): a number stands out in prose, a word does not, so
# the single-needle share grows (its values are about half words) and v2's share shrinks; plain text stays at 25%.
MIXES["v6"] = dict(_with_wording(0.24, {"para_single": 0.44, "para_multikey": 0.24, "para_passkey": 0.08}), plain=0.25)
# "v7" (stage 8, after stage 7's held-out evaluation: numbers 90% but word values 65%, the misses rare words the
# tokenizer splits into 3-5 pieces): v6's proportions, with 30% of training word values drawn from a word list's
# rare words and 10% made up (wording.RARE, wording.made_up_word); the list is .train-data/corpus/dict_words.txt.
MIXES["v7"] = dict(MIXES["v6"], rare_words=True)
EDGE_DEPTH_TASKS = ("passkey", "niah_single", "niah_multikey", "para_single", "para_multikey", "para_passkey")


# ----------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------
def build_tokenizer_object():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tokenizer(texts: list[str], vocab_size: int, out_path: str):
    from tokenizers import pre_tokenizers, processors, trainers
    tok = build_tokenizer_object()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer, length=len(texts))
    assert tok.token_to_id("<|endoftext|>") == EOT_ID
    # encode(text) (add_special_tokens=True) prepends <|endoftext|> as BOS, as the model was trained
    tok.post_processor = processors.TemplateProcessing(
        single="<|endoftext|> $A", pair="<|endoftext|> $A <|endoftext|> $B",
        special_tokens=[("<|endoftext|>", EOT_ID)])
    tok.save(out_path)
    return tok


CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\\n' + message['content'] + '\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + '\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\\n' + message['content'] + eos_token }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


def write_tokenizer_files(tokenizer_json: str, out_dir: str, max_len: int):
    import shutil
    os.makedirs(out_dir, exist_ok=True)
    shutil.copyfile(tokenizer_json, os.path.join(out_dir, "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
        "unk_token": None,
        "additional_special_tokens": SPECIALS[1:],
        "model_max_length": max_len,
        "clean_up_tokenization_spaces": False,
        "add_bos_token": True,
        "chat_template": CHAT_TEMPLATE,
    }
    json.dump(cfg, open(os.path.join(out_dir, "tokenizer_config.json"), "w"), indent=2)
    json.dump({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
               "additional_special_tokens": SPECIALS[1:]},
              open(os.path.join(out_dir, "special_tokens_map.json"), "w"), indent=2)


def tokenize_docs(tok, docs: list[dict]) -> np.ndarray:
    """All documents, each followed by <|endoftext|>, as one uint16 array."""
    enc = tok.encode_batch([d["text"] for d in docs], add_special_tokens=False)
    total = sum(len(e.ids) + 1 for e in enc)
    arr = np.empty(total, dtype=np.uint16)
    pos = 0
    for e in enc:
        n = len(e.ids)
        arr[pos:pos + n] = e.ids
        arr[pos + n] = EOT_ID
        pos += n + 1
    return arr


# ----------------------------------------------------------------------------------------------
# Worker side
# ----------------------------------------------------------------------------------------------
class RowBuilder:
    def __init__(self, tokenizer_json: str, train_tokens: str, train_docs: str, seed: int, mix: str = "v1"):
        from tokenizers import Tokenizer
        self.tok = Tokenizer.from_file(tokenizer_json)
        self.plain = np.load(train_tokens, mmap_mode="r")
        self.corpus = tasks.Corpus(tasks.Corpus.load_jsonl_xz(train_docs))
        self.seed = seed
        spec = MIXES[mix]
        self.names = list(spec["mix"])
        self.weights = [spec["mix"][n] for n in self.names]
        self.edge_depth, self.full_row = spec["edge_depth"], spec["full_row"]
        self.p_plain = spec.get("plain", P_PLAIN)
        self.haystack_lm = spec.get("haystack_lm", False)
        wording.set_train_words(self.corpus)
        if spec.get("rare_words"):
            wording.set_rare_words(os.path.join(os.path.dirname(train_docs), "dict_words.txt"), self.corpus)

    def enc(self, text):
        return self.tok.encode(text, add_special_tokens=False).ids

    def plain_span(self, rng, n):
        o = rng.randrange(0, len(self.plain) - n - 1)
        return np.asarray(self.plain[o:o + n], dtype=np.int32)

    def task_sample(self, rng, max_tokens, target):
        """(ids, roles) of one task sample with at most max_tokens tokens, or None."""
        name = rng.choices(self.names, self.weights)[0]
        seed = rng.getrandbits(48)
        depth = None  # the generator draws a uniform depth
        if name in EDGE_DEPTH_TASKS and any(self.edge_depth):
            u = rng.random()
            if u < self.edge_depth[0]:
                depth = 0.0
            elif u < sum(self.edge_depth):
                depth = 1.0
        scale = 0.97
        for _ in range(4):
            nchars = max(64, int((target - 24) * self.cpt[name] * scale))
            s = tasks.generate(name, "train", seed, nchars, self.corpus, depth=depth, train_variation=True)
            chat = not s.info.get("formatted") and rng.random() < P_CHAT  # para_* tasks choose their own format
            if chat:
                prompt = "<|user|>\n" + s.prompt[: -len("\nAnswer:")] + "\n<|assistant|>\n"
                answer = s.answer.strip()
            else:
                prompt, answer = s.prompt, s.answer
            p, a = self.enc(prompt), self.enc(answer)
            n = len(p) + len(a) + 2
            self.cpt[name] = 0.5 * self.cpt[name] + 0.5 * (len(s.text) / max(1, len(p) + len(a)))
            if n <= max_tokens:
                ids = np.array([EOT_ID] + p + a + [EOT_ID], dtype=np.int32)
                roles = np.zeros(n, dtype=np.uint8)
                roles[1 + len(p):] = 2
                if self.haystack_lm and tasks.TASKS[name][2] == "text" and not s.info.get("noise"):
                    roles[1:1 + len(p)] = 1  # real text around the needles: language-model loss too
                return ids, roles
            scale *= 0.85 * max_tokens / n
        return None

    def row(self, rng, L):
        if rng.random() < self.p_plain:
            return self.plain_span(rng, L), np.ones(L, dtype=np.uint8)
        ids_parts, role_parts, used = [], [], 0
        first = True
        while L - used >= MIN_TASK_TOKENS:
            rem = L - used
            if first and self.full_row and rng.random() < self.full_row:
                frac = 1.0
            else:
                frac = max(0.05, rng.random() ** 0.5) if first else rng.uniform(0.3, 1.0)
            target = max(MIN_TASK_TOKENS, int(rem * frac))
            r = self.task_sample(rng, rem, target)
            first = False
            if r is None:
                break
            ids_parts.append(r[0]); role_parts.append(r[1]); used += len(r[0])
            if rng.random() < 0.1:
                break
        if used < L:
            ids_parts.append(self.plain_span(rng, L - used)); role_parts.append(np.ones(L - used, dtype=np.uint8))
        return np.concatenate(ids_parts), np.concatenate(role_parts)

    def batch(self, step, seq_len, rows):
        rng = random.Random(f"{self.seed}|{step}|{seq_len}|{rows}")
        # chars-per-token estimates, adapted within the batch only (keeps batches deterministic)
        self.cpt = {t: (1.3 if t == "kv" else 3.5) for t in tasks.TASKS}
        L = seq_len + 1
        toks = np.empty((rows, L), dtype=np.int32)
        roles = np.empty((rows, L), dtype=np.uint8)
        for i in range(rows):
            t, r = self.row(rng, L)
            toks[i], roles[i] = t, r
        return toks, roles


def worker_main(args, req_q, res_q):
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    rb = RowBuilder(**args)
    parent = os.getppid()
    while True:
        try:
            job = req_q.get(timeout=5)
        except queue.Empty:
            if os.getppid() != parent:
                return  # the trainer died
            continue
        if job is None:
            return
        step, seq_len, rows = job
        toks, roles = rb.batch(step, seq_len, rows)
        res_q.put((step, seq_len, toks, roles))


class Loader:
    """Asks worker processes for batches ahead of time; get(step) returns that step's batch."""

    def __init__(self, n_workers, rb_args, ahead=6):
        import multiprocessing as mp
        ctx = mp.get_context("spawn")
        self.req, self.res = ctx.Queue(), ctx.Queue(maxsize=ahead + n_workers + 2)
        self.procs = [ctx.Process(target=worker_main, args=(rb_args, self.req, self.res), daemon=True) for _ in range(n_workers)]
        for p in self.procs:
            p.start()
        self.ahead = ahead
        self.asked = {}
        self.buf = {}

    def ask(self, step, seq_len, rows):
        if step not in self.asked:
            self.asked[step] = (seq_len, rows)
            self.req.put((step, seq_len, rows))

    def get(self, step, seq_len, rows, timeout=600):
        self.ask(step, seq_len, rows)
        t0 = time.time()
        while step not in self.buf:
            try:
                s, sl, t, r = self.res.get(timeout=5)
            except queue.Empty:
                if time.time() - t0 > timeout or not any(p.is_alive() for p in self.procs):
                    raise RuntimeError("data workers stalled")
                continue
            self.buf[s] = (sl, t, r)
        sl, t, r = self.buf.pop(step)
        self.asked.pop(step, None)
        return t, r

    def close(self):
        # workers are stateless and may be blocked on a full result queue: stop them right away
        for p in self.procs:
            if p.is_alive():
                p.terminate()
        for p in self.procs:
            p.join(timeout=2)


# ----------------------------------------------------------------------------------------------
# Held-out evaluation instances
# ----------------------------------------------------------------------------------------------
HAYSTACK_SOURCES = tasks.EVAL_HAYSTACK_SOURCES  # prose haystacks for evaluation (like RULER's essays)
DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
DEPTH_TASKS = ("passkey", "niah_single", "para_single")
# Held-out wording x unseen haystack (wording.py, prepare_unseen.py): instances per length.
PARA_EVAL = {"para_single": 40, "para_multikey": 24, "para_passkey": 24}


def eval_specs(lengths=(2048, 4096, 8192), n_depth=8, n_other=16):
    """The evaluation grid: passkey and niah_single at every depth in DEPTHS (n_depth instances per
    cell, alternating the held-out templates); the other tasks n_other instances per length; the para_*
    tasks PARA_EVAL[task] instances per length (para_single spread evenly over DEPTHS)."""
    specs = []
    for L in lengths:
        for task, n in PARA_EVAL.items():
            for i in range(n):
                d = DEPTHS[i % len(DEPTHS)] if task in DEPTH_TASKS else None
                specs.append(dict(task=task, length=L, depth=d, seed=hash_seed(task, L, d, i), variant=0))
        for task in tasks.TASKS:
            if task in PARA_EVAL:
                continue
            if task in DEPTH_TASKS:
                for d in DEPTHS:
                    for i in range(n_depth):
                        specs.append(dict(task=task, length=L, depth=d, seed=hash_seed(task, L, d, i), variant=i % 2))
            else:
                for i in range(n_other):
                    specs.append(dict(task=task, length=L, depth=None, seed=hash_seed(task, L, None, i), variant=i % 2))
    return specs


def hash_seed(task, L, d, i):
    import hashlib
    return int(hashlib.sha1(f"eval|{task}|{L}|{d}|{i}".encode()).hexdigest()[:8], 16)


_EV = {}


UNSEEN_DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "heldout", "unseen.jsonl.gz")


def _eval_init(tokenizer_json, heldout_docs):
    from tokenizers import Tokenizer
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _EV["tok"] = Tokenizer.from_file(tokenizer_json)
    _EV["corpus"] = tasks.Corpus(tasks.Corpus.load_jsonl_xz(heldout_docs), HAYSTACK_SOURCES)
    _EV["unseen"] = wording.unseen_corpus(UNSEEN_DOCS)


def _eval_build(spec):
    try:
        return _eval_build1(spec)
    except Exception as e:  # keep the evaluation going; the failure is reported in eval.json
        return dict(spec, error=repr(e))


def _eval_build1(spec):
    tok = _EV["tok"]
    count = lambda t: len(tok.encode(t, add_special_tokens=False).ids)
    corpus = _EV["unseen"] if spec["task"] in PARA_EVAL else _EV["corpus"]
    s = tasks.fit_length(spec["task"], "heldout", spec["seed"], spec["length"], count, corpus,
                         depth=spec["depth"], variant=spec["variant"])
    p = tok.encode(s.prompt, add_special_tokens=False).ids
    a = tok.encode(s.answer, add_special_tokens=False).ids
    joint = tok.encode(s.prompt + s.answer, add_special_tokens=False).ids
    out = dict(spec)
    out.update(prompt_ids=p, answer_ids=a, answer=s.answer, values=s.values, tokens=len(p) + len(a) + 2,
               nchars=s.info["nchars"], text_chars=len(s.text), boundary_ok=(joint == p + a))
    return out


def build_eval_async(tokenizer_json, heldout_docs, specs, procs=6):
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    pool = ctx.Pool(procs, initializer=_eval_init, initargs=(tokenizer_json, heldout_docs))
    res = pool.map_async(_eval_build, specs, chunksize=4)
    return pool, res
