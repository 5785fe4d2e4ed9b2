"""Checks of wording.py: python3 -m unittest tools/train/test_wording.py (standard library only)."""
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tasks  # noqa: E402
import wording as W  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
UNSEEN = os.path.join(ROOT, "data", "heldout", "unseen.jsonl.gz")
PARA = ("para_single", "para_multikey", "para_passkey")


class FakeCorpus:
    """A haystack source of numbered sentences, so needles are easy to find."""

    def haystack(self, rng, nchars):
        out, i = [], 0
        while sum(map(len, out)) < nchars:
            out.append(f"Filler sentence {i}. ")
            i += 1
        return out


class Wording(unittest.TestCase):
    def test_lists_disjoint(self):
        """No wording part of the held-out side is also a training part."""
        for table in (W.REFS, W.KEYLESS_REFS, W.NEEDLES, W.QUESTIONS, W.INTROS):
            self.assertFalse(set(table["train"]) & set(table["heldout"]) - {"the {a}", "my {a}"}, table["heldout"])
        self.assertFalse({a for a, _, _ in W.ATTRS["train"]} & {a for a, _, _ in W.ATTRS["heldout"]})
        self.assertFalse(set(W.CUES["train"]) & set(W.CUES["heldout"]) - {""})
        self.assertFalse(set(W.NAMES["train"]) & set(W.NAMES["heldout"]))
        self.assertFalse(set(W.KEY_STYLES["heldout"]) - {"person", "tag"} & set(W.KEY_STYLES["train"]))
        self.assertFalse(set(W._SYL["train"]) & set(W._SYL["heldout"]))

    def test_canonical_wordings_held_out(self):
        self.assertIn("What is {R} mentioned in the provided text?", W.QUESTIONS["heldout"])
        self.assertIn("One of {P} is: {v}.", W.NEEDLES["heldout"])
        self.assertIn("special magic number", [a for a, _, _ in W.ATTRS["heldout"]])
        self.assertNotIn("special magic number", [a for a, _, _ in W.ATTRS["train"]])

    def test_instances(self):
        corpus = FakeCorpus()
        for task in PARA:
            for split in ("train", "heldout"):
                for seed in range(60):
                    s = tasks.generate(task, split, seed, 3000, corpus, depth=0.5, train_variation=split == "train")
                    v = s.values[0]
                    # the answer is the bare value, with a space unless the prompt ends a line
                    self.assertEqual(s.answer, v if s.prompt.endswith("\n") else " " + v)
                    self.assertIn(v, s.prompt)
                    self.assertTrue(s.info["formatted"])
                    # held-out wording never uses a training attribute
                    attrs = {a for a, _, _ in W.ATTRS[split]}
                    self.assertIn(s.info["attr"], attrs)
                    if task == "para_passkey":
                        self.assertIsNone(s.info["key"])
                        self.assertIn(tasks.NOISE[split][0][:20], s.prompt) if split == "heldout" else None

    def test_multikey_value_unique(self):
        """The asked value occurs once; distractors never repeat it."""
        for seed in range(80):
            s = tasks.generate("para_multikey", "heldout", seed, 4000, FakeCorpus(), depth=0.3)
            self.assertEqual(s.prompt.count(s.values[0]), 1, s.prompt)

    def test_deterministic(self):
        a = tasks.generate("para_single", "heldout", 7, 2000, FakeCorpus(), depth=0.25)
        b = tasks.generate("para_single", "heldout", 7, 2000, FakeCorpus(), depth=0.25)
        self.assertEqual(a.prompt, b.prompt)

    def test_unseen_corpus(self):
        if not os.path.exists(UNSEEN):
            self.skipTest("data/heldout/unseen.jsonl.gz not prepared")
        c = W.unseen_corpus(UNSEEN)
        self.assertEqual({d["source"] for d in c.docs}, set(W.UNSEEN_SOURCES))
        s = tasks.generate("para_single", "heldout", 1, 20000, c, depth=0.75)
        self.assertIn(s.values[0], s.prompt)

    def test_rare_words(self):
        """v7's rare values: list words the corpus holds fewer than 3 times, never a held-out category's word."""
        import tempfile

        class Docs:
            docs = [{"text": "common common common rare rare"}]
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("common\nrare\nvermilion\nAlice\nit's\nabc\nzymurgy\n")
        try:
            self.assertEqual(W.set_rare_words(f.name, Docs()), 2)
            self.assertEqual(W.RARE, ["rare", "zymurgy"])  # vermilion is a held-out colour
            rng = random.Random(3)
            vals = [W.make_value(rng, "word", "animal", "train") for _ in range(2000)]
            rare = sum(v in W.RARE for v in vals) / len(vals)
            self.assertAlmostEqual(rare, W.RARE_SHARE, delta=0.04)
            held = [W.make_value(rng, "word", "colour", "heldout") for _ in range(200)]
            self.assertTrue(all(v in W.WORDS["colour"] for v in held))
        finally:
            W.RARE.clear()
            os.unlink(f.name)

    def test_needle_grammar(self):
        rng = random.Random(0)
        n = W._needle(rng, "train", "the lucky number for Alice", "lucky number", "Alice", "42")
        self.assertIn("42", n)
        self.assertNotIn("{", n)


if __name__ == "__main__":
    unittest.main()
