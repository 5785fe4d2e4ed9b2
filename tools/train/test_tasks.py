"""Unit checks for tasks.py: answers are correct by construction (re-derived here by parsing the
prompt independently), held-out templates / key words / noise never appear in training
instances, instances are deterministic, depths are honoured, fit_length respects the budget.

    python3 -m unittest tools/train/test_tasks.py      (standard library only)
"""
import collections
import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tasks  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def small_corpus(tag):
    docs = []
    for i in range(12):
        sents = [f"{tag} sentence {j} of document {i} talks about rivers and hills." for j in range(60)]
        paras = ["\n".join(sents[k:k + 6]) for k in range(0, 60, 6)]
        docs.append(dict(id=f"t/{tag}{i}", source="brown", title=str(i), text="\n\n".join(paras) + "\n"))
    return tasks.Corpus(docs)


def body_of(prompt):
    # intro \n\n body \n\n question \n Answer:
    parts = prompt.split("\n\n")
    return "\n\n".join(parts[1:-1])


def template_regex(t, **fixed):
    """Regex of a template with named groups for the non-fixed fields."""
    out, pos = [], 0
    for m in re.finditer(r"\{(\w+)\}", t):
        out.append(re.escape(t[pos:m.start()]))
        f = m.group(1)
        if f in fixed:
            out.append(re.escape(fixed[f]))
        else:
            out.append(r"(?P<%s>[\w-]+)" % f if f not in ("a", "b") else r"(?P<%s>[A-Z]{5})" % f)
        pos = m.end()
    out.append(re.escape(t[pos:]))
    return re.compile("".join(out).replace("(?P<value>[\\w-]+)", "(?P<value>[0-9a-f-]+)"))


class TestTasks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.corp = {"train": small_corpus("Train"), "heldout": small_corpus("Held")}
        path = os.path.join(ROOT, "data", "heldout", "heldout.jsonl.xz")
        cls.real = tasks.Corpus(tasks.Corpus.load_jsonl_xz(path), ("brown", "bible", "devil")) if os.path.exists(path) else None

    def gen(self, task, split, seed, n=3000, **kw):
        return tasks.generate(task, split, seed, n, self.corp[split], **kw)

    # -- answers by construction --------------------------------------------------------------
    def check_niah(self, s, split):
        tpl = tasks.NIAH_TEMPLATES[split][s.info["template"]]
        kind, kinds = ("UUID", "UUIDs") if "-" in s.values[0] else ("number", "numbers")
        rx = template_regex(tpl["needle"], kind=kind, kinds=kinds)
        found = [(m.group("key"), m.group("value")) for m in rx.finditer(body_of(s.prompt))]
        self.assertTrue(found)
        question = s.prompt.split("\n\n")[-1]
        by_key = collections.defaultdict(list)
        for k, v in found:
            by_key[k].append(v)
        asked = [k for k in by_key if re.search(r"(?<![\w-])" + re.escape(k) + r"(?![\w-])", question)]
        asked.sort(key=lambda k: question.index(k))
        if len(asked) > 1:  # multi-query: answer in question order
            expect = [by_key[k][0] for k in asked]
        else:
            expect = by_key[asked[0]]
        self.assertEqual(s.answer, " " + ", ".join(expect))
        self.assertEqual(s.values, expect)

    def test_niah_family(self):
        for split in ("train", "heldout"):
            for task in ("niah_single", "niah_single_uuid", "niah_multikey", "niah_multikey_dense",
                         "niah_multivalue", "niah_multiquery"):
                for seed in range(25):
                    s = self.gen(task, split, seed, train_variation=(split == "train" and seed % 2 == 0))
                    self.check_niah(s, split)
                    self.assertTrue(s.prompt.endswith("\nAnswer:"))
                    self.assertTrue(s.answer.startswith(" "))

    def test_passkey(self):
        for split in ("train", "heldout"):
            for seed in range(30):
                s = self.gen("passkey", split, seed)
                tpl = tasks.PASSKEY_TEMPLATES[split][s.info["template"]]
                needle = tpl["needle"].format(value=s.values[0])
                self.assertEqual(body_of(s.prompt).count(needle), 1)
                vals = re.findall(r"\d{5}", body_of(s.prompt))
                self.assertEqual(len(set(vals)), 1)
                self.assertEqual(s.answer, " " + vals[0])

    def test_vt(self):
        for split in ("train", "heldout"):
            for seed in range(40):
                s = self.gen("vt", split, seed, train_variation=(split == "train"))
                tpl = tasks.VT_TEMPLATES[split][s.info["template"]]
                body = body_of(s.prompt)
                first = template_regex(tpl["first"])
                chain = template_regex(tpl["chain"])
                value = re.search(r"\d{5}", s.prompt.split("\n\n")[-1]).group(0)
                holders = [m.group("a") for m in first.finditer(body) if m.group("value") == value]
                self.assertEqual(len(holders), 1)
                changed = True
                while changed:
                    changed = False
                    for m in chain.finditer(body):
                        if m.group("a") in holders and m.group("b") not in holders:
                            holders.append(m.group("b"))
                            changed = True
                self.assertEqual(s.answer, " " + " ".join(holders))

    def test_fwe(self):
        for split in ("train", "heldout"):
            for seed in range(20):
                s = self.gen("fwe", split, seed, n=2000 + 500 * seed)
                words = [w for w in body_of(s.prompt).split() if w != "...."]
                c = collections.Counter(words).most_common()
                self.assertGreater(c[2][1], c[3][1])
                self.assertEqual(s.answer, " " + " ".join(w for w, _ in c[:3]))

    def test_kv(self):
        for split in ("train", "heldout"):
            for seed in range(20):
                s = self.gen("kv", split, seed)
                body = body_of(s.prompt)
                if body.startswith("{"):
                    d = json.loads(body)
                else:
                    d = dict(line.split(" | ") for line in body.split("\n"))
                key = re.search(r"[0-9a-f]{8}-[0-9a-f-]{27}", s.prompt.split("\n\n")[-1]).group(0)
                self.assertEqual(s.answer, " " + d[key])

    # -- split hygiene --------------------------------------------------------------------------
    def test_heldout_never_in_train(self):
        held_strings = []
        for table in (tasks.NIAH_TEMPLATES, tasks.PASSKEY_TEMPLATES, tasks.VT_TEMPLATES, tasks.FWE_TEMPLATES, tasks.KV_TEMPLATES):
            for t in table["heldout"]:
                held_strings.append(t["intro"].split("{")[0][:40])
        held_strings += [tasks.NOISE["heldout"][0][:40], "special magic"]
        held_words = set(tasks.WORDS["heldout"]["adj"]) | set(tasks.WORDS["heldout"]["noun"])
        self.assertFalse(held_words & (set(tasks.WORDS["train"]["adj"]) | set(tasks.WORDS["train"]["noun"])))
        for task in tasks.TASKS:
            for seed in range(30):
                s = self.gen(task, "train", seed, train_variation=True)
                for h in held_strings:
                    self.assertNotIn(h, s.prompt, (task, h))
                for k in s.info.get("keys", []):
                    a, n = k.split("-")
                    self.assertIn(a, tasks.WORDS["train"]["adj"])
                    self.assertIn(n, tasks.WORDS["train"]["noun"])
                keys = re.findall(r"\b([a-z]+)-([a-z]+)\b", s.prompt)
                for a, n in keys:
                    self.assertFalse(a in held_words and n in held_words, (task, a, n))

    def test_train_variation_only_on_train(self):
        with self.assertRaises(ValueError):
            tasks.generate("niah_single", "heldout", 0, 1000, self.corp["heldout"], train_variation=True)

    # -- determinism, depth, fitting -------------------------------------------------------------
    def test_deterministic(self):
        for task in tasks.TASKS:
            a = self.gen(task, "heldout", 7, depth=0.25)
            b = self.gen(task, "heldout", 7, depth=0.25)
            self.assertEqual(a.text, b.text)
            c = self.gen(task, "heldout", 8, depth=0.25)
            self.assertNotEqual(a.text, c.text)

    def test_depth(self):
        for depth in (0.0, 0.25, 0.5, 0.75, 1.0):
            s = self.gen("niah_single", "heldout", 3, n=20000, depth=depth)
            body = body_of(s.prompt)
            pos = body.find(s.values[0]) / len(body)
            self.assertLess(abs(pos - depth), 0.03, (depth, pos))
            p = self.gen("passkey", "heldout", 3, n=20000, depth=depth)
            body = body_of(p.prompt)
            pos = body.find(p.values[0]) / len(body)
            self.assertLess(abs(pos - depth), 0.03, (depth, pos))

    def test_fit_length(self):
        count = lambda t: len(t) // 4 + t.count(" ") // 3
        for task in tasks.TASKS:
            for target in (1024, 4096, 8192):
                s = tasks.fit_length(task, "heldout", 5, target, count, self.corp["heldout"], depth=0.5)
                self.assertLessEqual(s.info["tokens"], target)
                self.assertGreater(s.info["tokens"], target * 0.9, (task, target, s.info["tokens"]))

    def test_real_heldout_haystack(self):
        if self.real is None:
            self.skipTest("data/heldout not prepared")
        for seed in range(10):
            s = tasks.generate("niah_multivalue", "heldout", seed, 30000, self.real, depth=0.5)
            self.check_niah(s, "heldout")

    def test_score(self):
        s = self.gen("niah_multivalue", "heldout", 1)
        self.assertEqual(tasks.score(s, s.answer + "\n")["exact"], 1.0)
        self.assertEqual(tasks.score(s, " " + s.values[0])["recall"], 0.25)


if __name__ == "__main__":
    unittest.main()
