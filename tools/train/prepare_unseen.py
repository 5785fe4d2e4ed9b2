#!/usr/bin/env python3
"""Haystacks from corpora that attend-mini never sees in training (project issue 9).

The training corpus (prepare_data.py) holds out documents of its own sources; this script builds a
second held-out set from whole corpora that are in no part of training, so that retrieval can be measured
"on text it never saw":

  * handbook : The Debian Administrator's Handbook (Debian `debian-handbook` 11.20220922, en-US HTML),
               book-length prose; licence CC-BY-SA-3.0 or GPL-2+ (dual, the package's copyright file).
  * kernel   : the Linux kernel's process and admin guides (Debian `linux-doc-6.1`, Documentation/process
               and Documentation/admin-guide, reStructuredText); licence GPL-2.0 (kernel documentation).

Standard library only. Inputs: the two .deb files that fetch_sources.sh downloads into .train-data/deb/.
Output: data/heldout/unseen.jsonl.gz (one JSON document per line, like prepare_data.py's), deterministic.

    python3 tools/train/prepare_unseen.py
"""
from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare_data import ROOT, TD, html_to_text, norm_ws  # noqa: E402

OUT = ROOT / "data" / "heldout" / "unseen.jsonl.gz"
# Size caps keep the committed file small (a few hundred kB compressed) while giving every 8K-token
# haystack many different documents to draw from.
MAX_CHARS = {"handbook": 900_000, "kernel": 450_000}
# Kernel documents about magic numbers or passwords would collide with the needles' wording.
KERNEL_SKIP = ("magic-number", "index", "changes", "maintainers", "kernel-parameters", "devices")


def unpack(deb: Path, into: Path):
    subprocess.run(["dpkg", "-x", str(deb), str(into)], check=True)


NAV_LINES = {"Download the ebook", "- Prev", "- Next", "- Up", "- Home", "- The Debian Administrator's Handbook",
             "Prev", "Next", "Up", "Home"}


NAV_PREFIX = re.compile(r"^- (Prev|Next|Up|Home)")


def handbook_docs(root: Path) -> list[dict]:
    base = root / "usr/share/doc/debian-handbook/html/en-US"
    docs = []
    for path in sorted(base.glob("*.html")):
        if path.name in ("index.html", "ix01.html"):
            continue
        title, text = html_to_text(path)
        # the page's navigation bars ("Download the ebook", "- Prev", "- Next", ...) are not content
        lines = [ln for ln in text.split("\n") if ln.strip() not in NAV_LINES and not NAV_PREFIX.match(ln.strip())]
        text = norm_ws("\n".join(lines))
        if len(text) < 2000:
            continue
        docs.append(dict(id=f"handbook/{path.stem}", source="handbook", title=title, text=text))
    return docs


RST_MARKUP = [
    (re.compile(r"^\.\. [^\n]*(\n {3,}[^\n]*)*", re.M), ""),     # directives and comments
    (re.compile(r"^[=\-~^\"'`#*+]{3,}\s*$", re.M), ""),           # section underlines
    (re.compile(r":(ref|doc|c:func|c:type|manpage|envvar|file):`([^`<]*)(<[^>]*>)?`"), r"\2"),
    (re.compile(r"``([^`]*)``"), r"\1"),
    (re.compile(r"`([^`<]*)(<[^>]*>)?`_"), r"\1"),
]


def kernel_docs(root: Path) -> list[dict]:
    base = root / "usr/share/doc/linux-doc-6.1/Documentation"
    docs = []
    for sub in ("process", "admin-guide"):
        for path in sorted((base / sub).rglob("*.rst.gz")):
            stem = path.name[: -len(".rst.gz")]
            if any(stem.startswith(s) for s in KERNEL_SKIP):
                continue
            text = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
            for rx, rep in RST_MARKUP:
                text = rx.sub(rep, text)
            text = norm_ws(text)
            if len(text) < 2000:
                continue
            rel = path.relative_to(base).as_posix()[: -len(".rst.gz")]
            docs.append(dict(id=f"kernel/{rel}", source="kernel", title=stem, text=text))
    return docs


def capped(docs: list[dict], max_chars: int) -> list[dict]:
    out, total = [], 0
    for d in docs:  # sorted by id: deterministic
        if total >= max_chars:
            break
        out.append(d)
        total += len(d["text"])
    return out


def main():
    debs = {name: sorted((TD / "deb").glob(f"{name}_*.deb")) for name in ("debian-handbook", "linux-doc-6.1")}
    missing = [n for n, v in debs.items() if not v]
    if missing:
        sys.exit(f"missing .deb files in {TD / 'deb'}: {', '.join(missing)} (run tools/train/fetch_sources.sh)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for v in debs.values():
            unpack(v[-1], root)
        docs = capped(handbook_docs(root), MAX_CHARS["handbook"]) + capped(kernel_docs(root), MAX_CHARS["kernel"])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(OUT, "wb", mtime=0) as raw:
        for d in docs:
            raw.write((json.dumps(d, ensure_ascii=False) + "\n").encode("utf-8"))
    by = {}
    for d in docs:
        n, c = by.get(d["source"], (0, 0))
        by[d["source"]] = (n + 1, c + len(d["text"]))
    for s, (n, c) in by.items():
        print(f"{s}: {n} documents, {c / 1e6:.2f} M characters", file=sys.stderr)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB)", file=sys.stderr)


if __name__ == "__main__":
    main()
