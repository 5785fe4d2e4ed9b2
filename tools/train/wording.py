"""Retrieval tasks in many wordings, for a model that retrieves in any phrasing (project issue 9).

tasks.py's generators use a dozen fixed templates, all ending in "Answer:"; a model trained only on them
fails on a new wording. Here every part of an instance is drawn from its own list, and the parts combine
freely, so training sees tens of thousands of distinct wordings:

    [intro] [question, sometimes before the text too] haystack-with-needles  question [answer cue]  ->  value

  * attribute  what the value is: "lucky number", "password", "favourite animal" ... with its value kind
               (number, word of a category, alphanumeric code, UUID);
  * key        whose value it is: nobody ("the access code"), the speaker ("my ..."), a person, an
               adjective-noun tag ("sleepy-otter"), a made-up entity ("the Varnel project");
  * reference  how the key and attribute are joined: "the X for K", "K's X", "the X assigned to K" ...;
  * needle     the sentence that states the value: "R is V.", "Note that R is V.", "V is R." ...;
  * question   "What is R?", "Tell me R.", "According to the text, what is R?" ...;
  * cue        how the prompt ends: "Answer:", "A:", "R is", nothing at all, a chat turn ...;
  * intro and layout.

Every list is split into TRAIN and HELDOUT entries written separately; an evaluation instance is built from
held-out entries only (attributes, keys, references, needles, questions, cues, intros), and on haystacks from
corpora that are in no part of training (prepare_unseen.py). The canonical RULER and Landmark wordings are on
the held-out side. The answer is the bare value followed by end-of-text, whatever the wording, so that a
continuation can be scored strictly (the value, nothing more).

Tasks: para_single (one needle in real text), para_multikey (the asked needle among others of the same
attribute with other keys, and of other attributes with the same key), para_passkey (one keyless needle in
repeated noise). Standard library only.
"""
from __future__ import annotations

import random

import tasks
from tasks import Corpus, Sample, insert_at, noise_units

# ----------------------------------------------------------------------------------------------
# Attributes: (singular, value kind, value category). Categories name the word lists below.
# ----------------------------------------------------------------------------------------------
ATTRS = {
    "train": [
        ("secret number", "number", None), ("magic number", "number", None), ("lucky number", "number", None),
        ("reference number", "number", None), ("serial number", "number", None), ("ticket number", "number", None),
        ("account number", "number", None), ("room number", "number", None), ("hidden number", "number", None),
        ("special number", "number", None), ("ID number", "number", None), ("lottery number", "number", None),
        ("PIN", "number", None), ("combination", "number", None), ("badge number", "number", None),
        ("order number", "number", None), ("tracking number", "number", None), ("code", "number", None),
        ("security code", "number", None), ("verification code", "number", None), ("door code", "number", None),
        ("locker number", "number", None), ("extension", "number", None), ("password", "number", None),
        ("key", "number", None), ("pin code", "number", None), ("number", "number", None),
        ("secret word", "word", "any"), ("password", "word", "any"), ("codeword", "word", "any"),
        ("magic word", "word", "any"), ("keyword", "word", "any"), ("favourite animal", "word", "animal"),
        ("favourite fruit", "word", "fruit"), ("favourite flower", "word", "flower"),
        ("favourite city", "word", "city"), ("favourite instrument", "word", "instrument"),
        ("lucky charm", "word", "any"), ("nickname", "word", "name"), ("favourite drink", "word", "drink"),
        ("favourite tree", "word", "tree"), ("favourite sport", "word", "sport"), ("favourite bird", "word", "bird"),
        ("chosen metal", "word", "metal"), ("spirit animal", "word", "animal"), ("home town", "word", "city"),
        ("license key", "code", None), ("product code", "code", None), ("voucher", "code", None),
        ("booking reference", "code", None), ("call sign", "code", None), ("plate number", "code", None),
        ("identifier", "uuid", None), ("token", "uuid", None), ("UUID", "uuid", None),
        # stage 5: values from the training corpus's own words (POOL), so that copying a word does not rest on
        # a few hundred familiar values; American spellings; more code-valued attributes
        ("chosen word", "word", "pool"), ("mystery word", "word", "pool"), ("hidden word", "word", "pool"),
        ("favourite word", "word", "pool"), ("favorite word", "word", "pool"), ("special word", "word", "pool"),
        ("secret term", "word", "pool"), ("code name", "word", "pool"), ("watchword", "word", "pool"),
        ("passphrase", "word", "pool"), ("favorite thing", "word", "pool"), ("answer word", "word", "pool"),
        ("key word", "word", "pool"), ("signal", "word", "pool"), ("motto", "word", "pool"),
        ("favorite animal", "word", "animal"), ("favorite fruit", "word", "fruit"), ("favorite city", "word", "city"),
        ("favorite flower", "word", "flower"), ("favorite drink", "word", "drink"), ("favorite sport", "word", "sport"),
        ("promo code", "code", None), ("gift code", "code", None), ("reservation code", "code", None),
        ("access token", "code", None), ("discount code", "code", None), ("serial code", "code", None),
        ("flight code", "code", None), ("batch code", "code", None),
    ],
    "heldout": [
        ("special magic number", "number", None), ("pass key", "number", None), ("access code", "number", None),
        ("secret code", "number", None), ("confirmation number", "number", None),
        ("membership number", "number", None), ("safe combination", "number", None),
        ("registration number", "number", None),
        ("favourite colour", "word", "colour"), ("favorite color", "word", "colour"),
        ("favourite food", "word", "food"), ("safe word", "word", "any"), ("special magic word", "word", "any"),
        ("coupon code", "code", None), ("special magic UUID", "uuid", None),
    ],
}

WORDS = {
    "animal": "otter badger heron lynx walrus gazelle marmot ibex jackal meerkat ocelot panther tapir wombat yak "
              "bison coyote ferret gecko hyena iguana koala lemur mole newt puma rhino salamander stoat weasel",
    "fruit": "apricot banana cherry damson elderberry fig guava kiwi lime mango nectarine papaya quince "
             "raspberry tangerine watermelon blackberry cranberry gooseberry lychee persimmon plum pomegranate",
    "flower": "aster begonia camellia dahlia foxglove geranium hyacinth iris jasmine lavender marigold orchid "
              "peony primrose snapdragon sunflower tulip violet zinnia bluebell crocus daffodil magnolia",
    "city": "Lisbon Oslo Nairobi Quito Hanoi Dublin Lima Zagreb Tunis Kyoto Perth Bergen Cairo Dakar Havana "
            "Tallinn Valencia Montreal Santiago Krakow Porto Seville Geneva Helsinki Manila Riga",
    "instrument": "cello oboe bassoon clarinet trombone harpsichord mandolin ukulele xylophone accordion "
                  "bagpipes sitar tuba viola banjo harmonica lute marimba piccolo saxophone",
    "drink": "espresso lemonade cider cocoa kefir lassi mead sherbet smoothie tea chai kombucha horchata "
             "milkshake ginger-ale root-beer",
    "tree": "birch cedar cypress hawthorn hazel juniper larch linden poplar redwood rowan sequoia spruce "
            "sycamore yew alder aspen beech chestnut hemlock",
    "sport": "archery badminton cricket curling fencing hockey judo lacrosse polo rowing rugby sailing "
             "squash surfing tennis volleyball wrestling cycling karate skiing",
    "bird": "albatross bittern cormorant finch goldcrest kingfisher lapwing magpie nightingale oriole "
            "puffin sandpiper skylark starling swift thrush warbler wren kestrel plover",
    "metal": "cobalt copper iridium nickel osmium palladium platinum rhodium silver tin titanium tungsten "
             "zinc bismuth chromium gallium",
    "name": "Ziggy Bubbles Skipper Pebbles Rocket Noodle Biscuit Pickles Sparky Waffles Peanut Muffin "
            "Gizmo Shadow Button Whiskers",
    "colour": "turquoise crimson amber indigo magenta ochre teal scarlet maroon lavender beige charcoal "
              "emerald violet vermilion cobalt saffron mustard",
    "food": "lasagne risotto paella dumplings ramen burrito goulash moussaka falafel pierogi tacos curry "
            "gnocchi pancakes sushi couscous",
    "any": "harbour lantern pepper velvet granite whisper meadow thunder saddle compass orchard ember "
           "pillow marble quartz ribbon canyon falcon glacier kettle pumpkin rocket tundra willow zephyr "
           "nebula cactus anchor beacon cobble dagger fossil hollow island jigsaw lagoon mosaic nutmeg "
           "paddle quiver raven sapphire tornado umber vortex walnut yonder basil cinder",
}
WORDS = {k: v.split() for k, v in WORDS.items()}
# Categories that only held-out attributes use: their words are never a training value.
HELDOUT_CATEGORIES = ("colour", "food")

# Word values of the "pool" category, and (for 40% of the other word-valued training attributes) any word value:
# lower-case words of the training corpus (set_train_words). Empty until set: the generators then fall back to
# the "any" list, so that evaluation and the unit tests need no corpus.
POOL: list[str] = []


def set_train_words(corpus: Corpus, min_count: int = 3) -> int:
    """Fill POOL from the training documents: alphabetic lower-case words of 4-12 letters seen at least
    min_count times, minus the held-out categories' words. Deterministic (sorted). Returns the pool size."""
    import collections
    import re
    counts = collections.Counter(w for d in corpus.docs for w in re.findall(r"\b[a-z]{4,12}\b", d["text"]))
    banned = {w.lower() for c in HELDOUT_CATEGORIES for w in WORDS[c]}
    POOL[:] = sorted(w for w, n in counts.items() if n >= min_count and w not in banned)
    return len(POOL)

# Stage 8 (mix "v7"): word values from an English word list (Debian `wamerican`, SCOWL), restricted to the words the
# training corpus has fewer than POOL's min_count times, minus the held-out categories' words. Stage 7 missed
# mostly rare words that the tokenizer splits into 3-5 pieces (" vermilion" -> 4 tokens) while POOL's values are
# common words of 1-2 pieces: copying an arbitrary, rarely seen multi-piece word is what was never trained.
# Also made-up lower-case words (MADE_UP_SHARE), which can only be copied. Empty unless set_rare_words ran.
RARE: list[str] = []
RARE_SHARE = 0.30
MADE_UP_SHARE = 0.10


def set_rare_words(path: str, corpus: Corpus, min_count: int = 3) -> int:
    """Fill RARE from a word list (one word per line): lower-case alphabetic words of 4-12 letters that the
    training documents hold fewer than min_count times, minus the held-out categories' words. Deterministic
    (sorted). Returns the list's size; raises if the file holds none."""
    import collections
    import re
    counts = collections.Counter(w for d in corpus.docs for w in re.findall(r"\b[a-z]{4,12}\b", d["text"]))
    banned = {w.lower() for c in HELDOUT_CATEGORIES for w in WORDS[c]}
    with open(path, encoding="utf-8") as f:
        words = {w.strip() for w in f}
    RARE[:] = sorted(w for w in words if re.fullmatch(r"[a-z]{4,12}", w) and counts[w] < min_count and w not in banned)
    if not RARE:
        raise ValueError(f"{path}: no usable words")
    return len(RARE)


def made_up_word(rng: random.Random) -> str:
    """A pronounceable made-up lower-case word of 2-4 training syllables ("venlistor")."""
    return "".join(rng.choice(_SYL["train"]) for _ in range(rng.randint(2, 4)))


# People and made-up entities for keys. Every 4th name is held out (as tasks.py does with key words).
_NAMES = ("Alice Bruno Carmen Dmitri Elena Farid Greta Hiro Ines Jonas Keiko Luca Marta Nikhil Olga Pavel "
          "Quinn Rosa Sven Tariq Uma Viktor Wanda Xavier Yara Zane Amara Boris Chloe Diego Esme Felix Gita "
          "Hamid Ivy Jakub Kira Leon Mira Nils Oscar Priya Rafael Sofia Tomas Ulla Vera Wes Ximena Yusuf").split()
NAMES = {"train": [n for i, n in enumerate(_NAMES) if i % 4 != 3],
         "heldout": [n for i, n in enumerate(_NAMES) if i % 4 == 3]}
_SYL = {"train": "bar ven tor lis mak dor fen gal hes jor kal mir nol par quen rus sal tev ul wen".split(),
        "heldout": "zim oth ack ibb yul erv ask ong".split()}


def pseudo_word(rng: random.Random, split: str) -> str:
    """A made-up proper name from the split's syllables ("Varnel")."""
    s = "".join(rng.choice(_SYL[split]) for _ in range(rng.randint(2, 3)))
    return s[0].upper() + s[1:]


KEY_STYLES = {
    # name -> function(rng, split) -> key text
    "train": {
        "person": lambda r, s: r.choice(NAMES[s]),
        "tag": lambda r, s: tasks.word_key(r, s),
        "project": lambda r, s: f"the {pseudo_word(r, s)} project",
        "company": lambda r, s: f"{pseudo_word(r, s)} Ltd",
        "place": lambda r, s: f"the town of {pseudo_word(r, s)}",
        "thing": lambda r, s: f"the {r.choice(tasks.WORDS[s]['adj'])} {r.choice(tasks.WORDS[s]['noun'])}",
    },
    "heldout": {
        "person": lambda r, s: r.choice(NAMES[s]),
        "tag": lambda r, s: tasks.word_key(r, s),
        "agent": lambda r, s: f"agent {pseudo_word(r, s)}",
        "vault": lambda r, s: f"the {pseudo_word(r, s)} vault",
    },
}

# How a key and an attribute are referred to. {a} attribute, {k} key. Keyless forms have no {k}.
REFS = {
    "train": ["the {a} for {k}", "the {a} of {k}", "{k}'s {a}", "the {a} belonging to {k}",
              "the {a} assigned to {k}", "the {a} associated with {k}", "the {a} recorded for {k}"],
    "heldout": ["the {a} linked to {k}", "the {a} that {k} has", "the {a} given to {k}"],
}
KEYLESS_REFS = {"train": ["the {a}", "my {a}", "our {a}"], "heldout": ["the {a}", "my {a}"]}

# Needle sentences. {R} reference (sentence-initial capital applied when it starts with the/my/our),
# {v} value. {P} is the RULER form's plural phrase ("the special magic numbers for K"), keyed only.
NEEDLES = {
    "train": ["{R} is {v}.", "Remember: {R} is {v}.", "Note that {R} is {v}.", "{R}: {v}.",
              "Please remember that {R} is {v}.", "For the record, {R} is {v}.", "{v} is {R}.",
              "{R} was set to {v}.", "Keep in mind that {R} is {v}.", "Important: {R} = {v}.",
              "I was told that {R} is {v}.", "{R} is {v}. Remember it.", "{R} is {v}. Again, {R} is {v}.",
              "It was decided that {R} would be {v}.", "Write this down: {R} is {v}.", "({R}: {v})",
              "By the way, {R} is {v}!", "The note said that {R} is {v}."],
    "heldout": ["One of {P} is: {v}.", "Don't forget that {R} is {v}.", "{R}, by the way, is {v}.",
                "Just so you know, {R} is {v}.", "{R} happens to be {v}.", "Make a note: {R} is {v}."],
}

QUESTIONS = {
    "train": ["What is {R}?", "What was {R}?", "Tell me {R}.", "Do you know {R}?", "Please state {R}.",
              "Recall {R}.", "What is {R} mentioned in the text?", "According to the text, what is {R}?",
              "Based on the document above, what is {R}?", "What did the text say {R} is?",
              "Find {R} in the text above.", "Give me {R}.", "What is {R}, according to the document?",
              "Which value is {R}?", "Question: what is {R}?"],
    "heldout": ["What is {R} mentioned in the provided text?", "Can you tell me {R}?",
                "Could you remind me what {R} is?", "In the passage above, what is {R}?",
                "I forgot {R}. What was it?", "What's {R}?"],
}

# How the prompt ends. {RC} is the reference with a capital (an "echo" cue, as RULER's answer prefix);
# {L} is a label drawn from LABELS ("Result:"), so that training sees many "Label:" endings, not a few.
LABELS = {
    "train": ["Result", "Solution", "Value", "Ans", "Final answer", "The value", "Assistant", "AI", "Model",
              "Prediction", "Completion", "My answer", "Your response", "Response", "Answer", "Out", "Reply to the "
              "question", "Retrieved value", "Found", "Response from the assistant", "Answer (value only)"],
    "heldout": [],
}
_LABEL_NOUNS = ("Answer Response Result Value Solution Completion Prediction Return Finding Conclusion Verdict "
                "Retrieval Lookup Recall Match Extract Extraction Note Entry Statement Report Info Data Fact "
                "Text Guess Pick Choice Selection Outcome Target Recovered Detected Located Identified").split()
_LABEL_PREFIXES = ("", "Final ", "The ", "My ", "Model ", "Assistant ", "Bot ", "System ", "Correct ", "Exact ",
                   "Short ", "Your ", "Expected ", "Best ", "Retrieved ", "Requested ")
_HELDOUT_CUE_WORDS = ("reply", "output", "your answer")
LABELS["train"] += [p + (n if not p else n.lower()) for p in _LABEL_PREFIXES for n in _LABEL_NOUNS
                    if not any(w in (p + n).lower() for w in _HELDOUT_CUE_WORDS)]
CUES = {
    "train": ["Answer:", "A:", "The answer is", "{RC} is", "", "", "Response:", "Answer: {RC} is",
              "Answer with the value only.\nAnswer:", "{L}:", "{L}:", "{L}:", "{L} -", "{RC}:", "It is",
              # stage 5: more labels and echo forms
              "{L}:", "{L}:", "{L}:", "{L}:", "{L} =", "[{L}]", "{RC} stated in the text is", "{RC} given above is",
              "{RC} in the document is", "{RC} from the passage is", "{RC} written in the text is", "So {R} is"],
    "heldout": ["Reply:", "Output:", "{RC} mentioned in the provided text is", "Your answer:", ""],
}

INTROS = {
    "train": ["Read the following text carefully.", "Below is a document. Somewhere in it is a piece of "
              "information you will be asked about.", "A piece of information is hidden in the text below.",
              "Memorize the details in the following passage.", "Here is some text.",
              "Please read the document and answer the question at the end.",
              "The following text contains {an} that you must remember.",
              "Some {A} are hidden in the text below. Remember them; you will be asked about them later.",
              "You will be asked about this text afterwards.", "Study the passage below."],
    "heldout": ["Some {A} are hidden within the following text. Make sure to memorize it. I will quiz you "
                "about the {A} afterwards.",
                "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
                "I will quiz you about the important information there.",
                "Take a look at the document below; a question about it follows.",
                "The text below hides one fact that matters."],
}
# Text around the haystack: (before, after).
FRAMES = {
    "train": [("", ""), ("", ""), ("Context:\n", ""), ("Text:\n", ""), ("Document:\n", ""), ('"""\n', '\n"""'),
              ("--- begin ---\n", "\n--- end ---")],
    "heldout": [("", ""), ("", ""), ("Passage:\n", ""), ("<document>\n", "\n</document>")],
}
QUESTION_LABELS = {"train": ["", "", "Question: ", "Q: "], "heldout": ["", "Query: "]}


def plural(a: str) -> str:
    return a + "es" if a.endswith(("s", "x", "ch", "sh")) else a + "s"


def article(a: str) -> str:
    return ("an " if a[0].lower() in "aeiou" or a.startswith(("ID", "UUID")) else "a ") + a


def cap(s: str) -> str:
    """Sentence-initial capital for references that start with an article or possessive."""
    return s[0].upper() + s[1:] if s.startswith(("the ", "my ", "our ")) else s


def code_value(rng: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    pat = rng.choice(["LLDD-DDD", "LDL-DLD", "LL-DDDD", "DDD-LLL", "LLLDDD"])
    return "".join(rng.choice(letters) if c == "L" else rng.choice("0123456789") if c == "D" else c for c in pat)


def make_value(rng: random.Random, kind: str, category: str | None, split: str) -> str:
    if kind == "number":
        return tasks.number(rng, 7 if split == "heldout" and rng.random() < 0.6 else rng.randint(3, 9))
    if kind == "word":
        if split == "train" and RARE:
            u = rng.random()
            if u < MADE_UP_SHARE:
                return made_up_word(rng)
            if u < MADE_UP_SHARE + RARE_SHARE:
                return rng.choice(RARE)
        if split == "train" and POOL and (category == "pool" or rng.random() < 0.4):
            return rng.choice(POOL)
        return rng.choice(WORDS["any" if category == "pool" else category])
    if kind == "code":
        return code_value(rng)
    return tasks.uuid(rng)


def make_key(rng: random.Random, split: str, style: str | None = None) -> str:
    styles = KEY_STYLES[split]
    return styles[style or rng.choice(sorted(styles))](rng, split)


def _ref(rng, split, attr, key):
    if key is None:
        return rng.choice(KEYLESS_REFS[split]).format(a=attr)
    return rng.choice(REFS[split]).format(a=attr, k=key)


def _needle(rng, split, ref, attr, key, value):
    forms = NEEDLES[split]
    if key is None:
        forms = [f for f in forms if "{P}" not in f]
    form = rng.choice(forms)
    p = f"the {plural(attr)} for {key}" if key is not None else ""
    text = form.replace("{P}", p).replace("{v}", value)
    # the first reference takes a capital only where it starts the sentence
    text = text.replace("{R}", cap(ref) if form.startswith("{R}") else ref, 1)
    return text.replace("{R}", ref)


def _question(rng, split, ref):
    q = rng.choice(QUESTIONS[split])
    q = q.replace("{R}", cap(ref) if q.startswith("{R}") else ref)
    return rng.choice(QUESTION_LABELS[split]) + q


def gen_para(rng: random.Random, split: str, corpus: Corpus | None, nchars: int, *, task: str,
             depth: float | None = None, n_keys: int = 1, noise: bool = False, chat: bool | None = None,
             **_) -> Sample:
    """One instance. n_keys > 1 adds distractor needles (multi-key). noise: a repeated-sentence haystack."""
    attr, kind, cat = rng.choice(ATTRS[split])
    keyless = task == "para_passkey" or (n_keys == 1 and rng.random() < 0.35)
    if keyless:
        key = None
    else:
        style = rng.choice(sorted(KEY_STYLES[split]))
        key = make_key(rng, split, style)
    ref = _ref(rng, split, attr, key)
    value = make_value(rng, kind, cat, split)
    needles = [(depth if depth is not None else rng.random(), _needle(rng, split, ref, attr, key, value))]
    used_vals, used_keys = {value}, {key}
    if n_keys > 1 and key is not None:
        for i in range(n_keys - 1):
            if i % 3 == 2:   # same key, another attribute of another kind of value
                a2, k2, c2 = rng.choice([x for x in ATTRS[split] if x[0] != attr])
                key2 = key
            else:            # same attribute, another key of the same style
                a2, k2, c2 = attr, kind, cat
                key2 = None
                for _ in range(50):
                    key2 = make_key(rng, split, style)
                    if key2 not in used_keys and key2.split()[-1] != key.split()[-1]:
                        break
                used_keys.add(key2)
            for _ in range(50):
                v2 = make_value(rng, k2, c2, split)
                if v2 not in used_vals:
                    break
            used_vals.add(v2)
            needles.append((rng.random(), _needle(rng, split, _ref(rng, split, a2, key2), a2, key2, v2)))
    if noise or corpus is None:
        units = noise_units(rng, split, nchars)
    else:
        units = corpus.haystack(rng, nchars)
    body = "".join(insert_at(units, needles)).rstrip()
    question = _question(rng, split, ref)
    cue = rng.choice(CUES[split]).replace("{RC}", cap(ref)).replace("{R}", ref)
    if "{L}" in cue:
        cue = cue.replace("{L}", rng.choice(LABELS[split]))
    intro = rng.choice(INTROS[split]).format(a=attr, A=plural(attr), an=article(attr)) if rng.random() < 0.7 else ""
    before, after = rng.choice(FRAMES[split])
    parts = [intro] if intro else []
    if rng.random() < 0.15:
        parts.append(question)
    parts.append(before + body + after)
    end = question if not cue else question + rng.choice(["\n", " "]) + cue
    parts.append(end)
    prompt = "\n\n".join(parts)
    if chat is None:
        chat = rng.random() < 0.25
    if chat:
        # the cue, if any, opens the assistant's turn
        user = "\n\n".join(parts[:-1] + [question])
        prompt = f"<|user|>\n{user}\n<|assistant|>\n" + (cue if cue else "")
    answer = value if prompt.endswith("\n") else " " + value
    return Sample(task, prompt, answer, [value],
                  dict(depth=depth, key=key, attr=attr, kind=kind, chat=chat, cue=cue, formatted=True,
                       noise=noise or corpus is None))


def _gen(task, **fixed):
    def fn(rng, split, corpus, nchars, *, depth=None, variant=None, **kw):
        return gen_para(rng, split, corpus, nchars, task=task, depth=depth, **{**fixed, **kw})
    return fn


# Registered into tasks.TASKS (name -> (generator, kwargs, haystack kind)); see tasks.generate.
TASKS = {
    "para_single": (_gen("para_single"), {}, "text"),
    "para_multikey": (_gen("para_multikey", n_keys=4), {}, "text"),
    "para_passkey": (_gen("para_passkey", noise=True), {}, "noise"),
}
TRAIN_VARIATIONS = {
    "para_single": lambda rng: dict(noise=rng.random() < 0.15),
    "para_multikey": lambda rng: dict(n_keys=rng.randint(2, 8), noise=rng.random() < 0.1),
}
tasks.TASKS.update(TASKS)
tasks.TRAIN_VARIATIONS.update(TRAIN_VARIATIONS)

UNSEEN_SOURCES = ("handbook", "kernel")


def unseen_corpus(path: str) -> Corpus:
    """The haystack corpus of the held-out-wording evaluation (data/heldout/unseen.jsonl.gz)."""
    return Corpus(Corpus.load_jsonl_xz(path), UNSEEN_SOURCES)
