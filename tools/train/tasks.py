"""Synthetic long-context tasks for attend-mini, modelled on RULER (Hsieh et al., 2024) and the
passkey test of Landmark Attention (Mohtashami & Jaggi, 2023).

Pure standard-library Python (runs on the development machine and on the GPU machine).
Every instance is a deterministic function of (task, split, seed, haystack size, depth).

Format of every instance: plain text, no chat template:

    <prompt text ...>\nAnswer: <answer><|endoftext|>

`Sample.prompt` ends with "Answer:" and `Sample.answer` is the continuation, starting with a
space (" 1234567"); a model is scored by exact match of its greedy continuation, up to the end
of text token, against `answer` (leading/trailing whitespace ignored).

Train / held-out split (the held-out side is never produced for training):
  * templates: every task has TRAIN and HELDOUT template variants (intro, needle sentence,
    question). The held-out variants include the canonical RULER / Landmark wordings.
  * key formats: word keys are adjective-noun pairs; the adjectives and nouns are split into
    disjoint train / held-out lists (see WORDS below). UUID / letter keys are random.
  * noise haystacks: the Landmark noise ("The grass is green. ...") is held out; training uses
    other repetitive noise sentences.
  * real-text haystacks come from the train / held-out documents of data/split.json.

Tasks (name: RULER counterpart):
  passkey          : Landmark passkey (noise haystack, 5-digit key)
  niah_single      : niah_single_2 (real-text haystack, word key, 7-digit number)
  niah_single_uuid : niah_single_3 (real-text haystack, word key, UUID value)
  niah_multikey    : niah_multikey_1 (4 needles with different keys, one is asked)
  niah_multikey_dense : niah_multikey_2/3 (the haystack is made only of needles)
  niah_multivalue  : niah_multivalue (one key, 4 values, all are asked)
  niah_multiquery  : niah_multiquery (4 keys, all are asked)
  vt               : variable tracking (1 chain of 5 variables, noise haystack)
  fwe              : frequent words extraction (Zipf-distributed coded words, top 3)
  kv               : key-value retrieval with random UUIDs (Lost in the Middle, JSON)
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import re
from dataclasses import dataclass, field

EOT = "<|endoftext|>"
ANSWER_CUE = "Answer:"

# ----------------------------------------------------------------------------------------------
# Word lists for keys. The split is by position: every 5th word (index % 5 == 4) is held out.
# ----------------------------------------------------------------------------------------------
_ADJ = """abandoned able absolute academic acceptable acclaimed accurate aching acidic acrobatic adorable
adventurous aggressive agile alert alive amazing amused ancient angry animated annual anxious aquatic
arctic arid aromatic artistic ashamed astonishing athletic attentive austere automatic average awesome
awkward bashful beloved bitter blank blissful bold bouncy brave breezy brief bright brilliant brisk
broken bumpy busy calm candid careful cautious cheerful chilly chubby classic clever cloudy clumsy
colossal common complex concrete confused cool cosmic costly courageous cozy crafty creamy crisp
crooked crowded cruel curious curly cute damp dapper daring dazzling decent deep defiant delicate
dense devoted diligent dizzy dreamy dusty eager early earnest elastic elegant elderly electric
elusive empty enchanted endless energetic enormous envious evergreen exotic faded faint faithful
famous fancy fearless feisty fierce filthy flashy flawless fluffy foggy fragile frantic frosty frozen
funny fuzzy gentle giant gifted gigantic glamorous gleaming gloomy glossy golden graceful grand
grateful greasy grumpy guilty handsome happy harmless hasty hearty heavy helpful hidden hollow honest
hopeful humble hungry icy idle immense impish jagged jolly joyful juicy jumpy keen kind knotty lanky
lavish lazy little lively lonely loud lucky lush magnetic majestic mellow merry mighty misty modest
mossy muddy murky mysterious narrow nervous nimble noble noisy nutty obedient odd orange ornate
patient peaceful perky pesky plain playful plucky polite proud puny purple quaint quick quiet radiant
rapid rare restless rich rigid ripe roaring robust rosy rough royal rusty sandy savage scarce secret
serene shabby shaggy shiny silent silky silly sleepy slim slippery smooth snappy sneaky soft solemn
sparkling speedy spicy spotless square stale steady steep sticky stormy striped sturdy sunny superb
swift tall tame tangy tender thirsty thorny tidy tiny tired tough tranquil tricky trusty twisted
velvet vibrant vivid wacky warm wary wealthy weary whimsical wicked wild windy wise witty wobbly
wooden woolly worried yellow young zany zealous zesty""".split()

_NOUN = """acorn album anchor ant apple apron arrow attic avocado badge bagel balloon bamboo banana
banjo barn basket bat beacon beaver bell bench bicycle biscuit blanket blossom boat bonnet boot
bottle boulder bracelet branch bridge broom bubble bucket buffalo bugle bunny butterfly button cabin
cactus camel camera canal candle canoe canyon carpet carrot castle cat cello chair cherry chimney
cliff clock cloud clover coconut comet compass cookie coral cottage cow crab crayon cricket crow
crown cup curtain cushion daisy deer desert diamond dolphin donkey door dragon drum duck eagle easel
elephant elm engine falcon feather fern ferret fiddle fig flag flamingo flute forest fountain fox
frog garden garlic gate giraffe glacier globe goat goose grape guitar hammer harbor harp hat hawk
hedgehog helmet heron hill honey horse hut igloo island jacket jaguar jar jelly kettle key kite
koala ladder lake lamp lantern lemon leopard lily lion lizard llama lobster locket magnet mango maple
meadow melon mirror mitten monkey moose mountain mouse mug mushroom needle nest notebook oak oar
ocean octopus olive orchard otter owl paddle palace panda parrot peach peacor pear pebble pelican
pencil penguin pepper piano pigeon pillow pine pirate planet plum pony potato puddle pumpkin puppy
quilt rabbit raccoon radish rainbow raven ribbon river robin rocket rose saddle sailboat salmon
sandal scarf seal shell ship shovel skunk sled snail spider spoon squirrel star statue stone
strawberry swan sweater table teapot tiger toad tomato torch tower tractor train tulip turtle
umbrella valley vase violin volcano wagon walnut walrus whale whistle willow window wolf yacht zebra""".split()


def _split_words(words):
    return [w for i, w in enumerate(words) if i % 5 != 4], [w for i, w in enumerate(words) if i % 5 == 4]


WORDS = {}
WORDS["train"] = dict(zip(("adj", "noun"), (_split_words(_ADJ)[0], _split_words(_NOUN)[0])))
WORDS["heldout"] = dict(zip(("adj", "noun"), (_split_words(_ADJ)[1], _split_words(_NOUN)[1])))

# Plain words for frequent-words extraction and noise; not part of the key split.
_HEX = "0123456789abcdef"


def word_key(rng: random.Random, split: str) -> str:
    w = WORDS[split]
    return f"{rng.choice(w['adj'])}-{rng.choice(w['noun'])}"


def distinct_keys(rng: random.Random, split: str, n: int) -> list[str]:
    keys: list[str] = []
    while len(keys) < n:
        k = word_key(rng, split)
        if k not in keys and all(k.split("-")[1] != o.split("-")[1] and k.split("-")[0] != o.split("-")[0] for o in keys):
            keys.append(k)
    return keys


def number(rng: random.Random, digits: int) -> str:
    return str(rng.randrange(10 ** (digits - 1), 10 ** digits))


def distinct_numbers(rng: random.Random, n: int, digits: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        v = number(rng, digits)
        if v not in out:
            out.append(v)
    return out


def uuid(rng: random.Random) -> str:
    h = "".join(rng.choice(_HEX) for _ in range(32))
    h = h[:12] + "4" + h[13:16] + rng.choice("89ab") + h[17:]
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def var_name(rng: random.Random) -> str:
    return "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(5))


# ----------------------------------------------------------------------------------------------
# Templates. {kind} = the value noun ("number"/"numbers", "UUID"...), {key}, {value}.
# HELDOUT[0] is the canonical RULER / Landmark wording.
# ----------------------------------------------------------------------------------------------
NIAH_TEMPLATES = {
    # (intro, needle, question-single, question-plural(all values for one key), question-multiquery)
    "heldout": [
        dict(intro="Some special magic {kinds} are hidden within the following text. Make sure to memorize it. I will quiz you about the {kinds} afterwards.",
             needle="One of the special magic {kinds} for {key} is: {value}.",
             q1="What is the special magic {kind} for {key} mentioned in the provided text?",
             qall="What are all the special magic {kinds} for {key} mentioned in the provided text?",
             qmulti="What are the special magic {kinds} for {keys} mentioned in the provided text?"),
        dict(intro="A few confidential {kinds} have been tucked away in the document below. Keep an eye out for them; you will be asked about them afterwards.",
             needle="Note that the confidential {kind} belonging to {key} is {value}.",
             q1="Which confidential {kind} belongs to {key} according to the document?",
             qall="List every confidential {kind} that belongs to {key} according to the document.",
             qmulti="Which confidential {kinds} belong to {keys} according to the document?"),
    ],
    "train": [
        dict(intro="Some secret {kinds} are hidden in the text below. Remember them, because you will be asked about them later.",
             needle="The secret {kind} for {key} is {value}.",
             q1="What is the secret {kind} for {key}?",
             qall="What are all the secret {kinds} for {key}?",
             qmulti="What are the secret {kinds} for {keys}?"),
        dict(intro="The following document contains hidden {kinds}. Read it carefully.",
             needle="Remember: the hidden {kind} of {key} is {value}.",
             q1="According to the document, what is the hidden {kind} of {key}?",
             qall="According to the document, which hidden {kinds} does {key} have?",
             qmulti="According to the document, what are the hidden {kinds} of {keys}?"),
        dict(intro="Inside the text there are special {kinds}. Find them.",
             needle="One special {kind} for {key} is: {value}.",
             q1="What special {kind} for {key} appears in the text?",
             qall="Which special {kinds} for {key} appear in the text?",
             qmulti="Which special {kinds} for {keys} appear in the text?"),
        dict(intro="Below is a long text. Somewhere in it, magic {kinds} have been written down.",
             needle="The magic {kind} assigned to {key} is {value}.",
             q1="What magic {kind} was assigned to {key}?",
             qall="Which magic {kinds} were assigned to {key}?",
             qmulti="Which magic {kinds} were assigned to {keys}?"),
        dict(intro="Memorize the important {kinds} mentioned in the following passage.",
             needle="Important: {key} has the {kind} {value}.",
             q1="Which {kind} does {key} have?",
             qall="Which {kinds} does {key} have?",
             qmulti="Which {kinds} do {keys} have?"),
        dict(intro="This text hides some special codes. A code is a {kind} that belongs to a name.",
             needle="({key} -> {value})",
             q1="What is the {kind} that belongs to {key}?",
             qall="What are all the {kinds} that belong to {key}?",
             qmulti="What are the {kinds} that belong to {keys}?"),
        dict(intro="Pay attention to the registry entries scattered through the following text.",
             needle="Registry entry: the {kind} recorded for {key} is {value}.",
             q1="In the registry, what {kind} is recorded for {key}?",
             qall="In the registry, what {kinds} are recorded for {key}?",
             qmulti="In the registry, what {kinds} are recorded for {keys}?"),
        dict(intro="Read the text. It contains a few lucky {kinds} that you must recall.",
             needle="By the way, the lucky {kind} of {key} is {value}!",
             q1="Recall the lucky {kind} of {key}.",
             qall="Recall all the lucky {kinds} of {key}.",
             qmulti="Recall the lucky {kinds} of {keys}.",),
        dict(intro="Some magic values appear in the text below; each one belongs to a key.",
             needle="Key {key} maps to the value {value}.",
             q1="Which value does key {key} map to?",
             qall="Which values does key {key} map to?",
             qmulti="Which values do keys {keys} map to?"),
        dict(intro="There are special {kinds} hidden within the following text. I will ask about them.",
             needle="{key}'s special {kind} is {value}.",
             q1="What is {key}'s special {kind}?",
             qall="What are {key}'s special {kinds}?",
             qmulti="What are the special {kinds} of {keys}?"),
    ],
}

KINDS = {"number": ("number", "numbers"), "uuid": ("UUID", "UUIDs")}

PASSKEY_TEMPLATES = {
    "heldout": [
        dict(intro="There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you about the important information there.",
             needle="The pass key is {value}. Remember it. {value} is the pass key.",
             q="What is the pass key?"),
        dict(intro="A single access code is buried in the filler text below. Locate it.",
             needle="Your access code is {value}. Do not forget {value}.",
             q="What is the access code?"),
    ],
    "train": [
        dict(intro="Find the password hidden in the text below and remember it.",
             needle="The password is {value}. Keep it safe: {value} is the password.",
             q="What is the password?"),
        dict(intro="Somewhere in this text there is a key. Memorize it.",
             needle="The key is {value}. {value} is the key.",
             q="What is the key?"),
        dict(intro="There is a secret number in the following text. Find it.",
             needle="Here is the secret number: {value}. Remember {value}.",
             q="What is the secret number?"),
        dict(intro="Important information is hidden inside a lot of repeated text. Find the pin.",
             needle="The pin is {value}. The pin, {value}, must be remembered.",
             q="What is the pin?"),
        dict(intro="Read the text and remember the code that is given in it.",
             needle="Remember this code: {value}.",
             q="Which code was given in the text?"),
        dict(intro="A passcode is hidden in the noise below.",
             needle="PASSCODE = {value}. The passcode is {value}.",
             q="What is the passcode?"),
    ],
}

NOISE = {
    "heldout": ["The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."],
    "train": [
        "The river is wide. The hill is steep. The wind is cold. On we walk. Over and back again.",
        "The road is long. The night is dark. The moon is white. Off we go. Round and round again.",
        "The tree is tall. The sea is deep. The sand is warm. Here it comes. Up and down again.",
        "The bird is small. The field is wide. The rain is soft. There we are. In and out again.",
        "The stone is grey. The lake is calm. The fire is red. Now we rest. Back and forth again.",
        "The snow is white. The path is narrow. The air is fresh. Let us go. Near and far again.",
    ],
}

VT_TEMPLATES = {
    "heldout": [
        dict(intro="Memorize and track the chain(s) of variable assignment hidden in the following text.",
             first="VAR {a} = {value}.", chain="VAR {b} = VAR {a}.",
             q="Question: Find all variables that are assigned the value {value} in the text above."),
        dict(intro="Follow the assignments hidden in the text below.",
             first="SET {a} TO {value}.", chain="SET {b} TO {a}.",
             q="Question: Which variables end up holding the value {value}?"),
    ],
    "train": [
        dict(intro="Track the variable assignments in the text.",
             first="let {a} = {value};", chain="let {b} = {a};",
             q="Question: Which variables are equal to {value}?"),
        dict(intro="Some variables are defined in the following text.",
             first="Variable {a} is set to {value}.", chain="Variable {b} is set to the value of {a}.",
             q="Question: List the variables whose value is {value}."),
        dict(intro="Keep track of the assignment chain hidden in the text.",
             first="{a} := {value}", chain="{b} := {a}",
             q="Question: Name all variables that hold {value}."),
        dict(intro="Watch the assignments below.",
             first="ASSIGN {value} TO {a}.", chain="ASSIGN {a} TO {b}.",
             q="Question: Which variables were assigned {value}?"),
    ],
}

FWE_TEMPLATES = {
    "heldout": [
        dict(intro="Read the following coded text and track the frequency of each coded word. Find the three most frequently appeared coded words.",
             q="Question: Do not provide any explanation. Please ignore the dots '....'. What are the three most frequently appeared words in the above coded text?"),
    ],
    "train": [
        dict(intro="Count how often each coded word occurs in the text below.",
             q="Question: Which three coded words occur most often, from most to least frequent?"),
        dict(intro="Below is a list of made-up words. Some occur far more often than others.",
             q="Question: Give the three most frequent made-up words, most frequent first."),
    ],
}

KV_TEMPLATES = {
    "heldout": [
        dict(intro="Extract the value corresponding to the specified key in the JSON object below.",
             q='Key: "{key}"\nWhat is the corresponding value?', style="json"),
    ],
    "train": [
        dict(intro="Find the value that belongs to the given key in the JSON object below.",
             q='What is the value for the key "{key}"?', style="json"),
        dict(intro="The following table maps keys to values.",
             q="Which value is paired with {key}?", style="lines"),
        dict(intro="Look up the key in the dictionary below.",
             q='Look up "{key}".', style="json"),
    ],
}

# Sources of the held-out real-text haystacks used by the evaluation (prose, like RULER's essays).
EVAL_HAYSTACK_SOURCES = ("brown", "bible", "devil")

# ----------------------------------------------------------------------------------------------
# Haystack from real documents
# ----------------------------------------------------------------------------------------------
_SENT_RE = re.compile(r"(?<=[.!?;:])(\s+)|(\n+)")


def split_units(text: str) -> list[str]:
    """Split text into units (sentences / lines) that each keep their trailing whitespace, so that
    "".join(units) == text. Needles are inserted between units."""
    units: list[str] = []
    pos = 0
    for m in _SENT_RE.finditer(text):
        end = m.end()
        if end - pos > 0:
            units.append(text[pos:end])
        pos = end
    if pos < len(text):
        units.append(text[pos:])
    return units


class Corpus:
    """Documents of one split, used as haystacks (and as plain text by the trainer)."""

    def __init__(self, docs: list[dict], sources: tuple[str, ...] | None = None):
        self.docs = [d for d in docs if sources is None or d["source"] in sources]
        self.docs.sort(key=lambda d: d["id"])
        if not self.docs:
            raise ValueError("empty corpus")
        self._units: dict[int, list[str]] = {}

    @staticmethod
    def load_jsonl_xz(path: str) -> list[dict]:
        """Documents of a .jsonl.xz or a .jsonl.gz file (by the extension)."""
        import gzip
        import lzma
        opener = gzip.open if path.endswith(".gz") else lzma.open
        with opener(path, "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def units(self, i: int) -> list[str]:
        u = self._units.get(i)
        if u is None:
            u = split_units(self.docs[i]["text"])
            self._units[i] = u
        return u

    def haystack(self, rng: random.Random, nchars: int) -> list[str]:
        """Units (each ending in whitespace) from random documents, starting at a random paragraph
        start, with about `nchars` characters in total."""
        out: list[str] = []
        total = 0
        while total < nchars:
            i = rng.randrange(len(self.docs))
            u = self.units(i)
            starts = [0] + [j for j in range(1, len(u)) if u[j - 1].endswith("\n")]
            j = rng.choice(starts)
            while j < len(u) and total < nchars:
                s = u[j]
                if not s[-1:].isspace():
                    s = s + " "
                out.append(s)
                total += len(s)
                j += 1
            if out and not out[-1].endswith("\n\n"):
                out[-1] = out[-1].rstrip() + "\n\n"
                total += 1
        return out


def noise_units(rng: random.Random, split: str, nchars: int) -> list[str]:
    base = rng.choice(NOISE[split])
    sents = [s + " " for s in re.split(r"(?<=\.) ", base)]
    out: list[str] = []
    total = 0
    while total < nchars:
        for s in sents:
            out.append(s)
            total += len(s)
    return out


def insert_at(units: list[str], needles: list[tuple[float, str]]) -> list[str]:
    """Insert needle sentences at relative depths (0 = start, 1 = end) between units."""
    units = list(units)
    n = len(units)
    # insert from the deepest so that earlier indices stay valid
    for depth, text in sorted(needles, key=lambda x: -x[0]):
        idx = min(n, max(0, int(round(depth * n))))
        units.insert(idx, text + " ")
    return units


# ----------------------------------------------------------------------------------------------
@dataclass
class Sample:
    task: str
    prompt: str           # ends with "Answer:"
    answer: str           # " value" (leading space); followed by <|endoftext|> in training
    values: list[str]     # individual reference strings (for RULER-style recall)
    info: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.prompt + self.answer


def _fmt(t: str, **kw) -> str:
    return t.format(**kw)


def _assemble(intro: str, body: str, question: str) -> str:
    return f"{intro}\n\n{body.rstrip()}\n\n{question}\n{ANSWER_CUE}"


def _pick_template(rng, table, split, variant):
    lst = table[split]
    return lst[variant % len(lst)] if variant is not None else rng.choice(lst)


def gen_niah(rng: random.Random, split: str, corpus: Corpus | None, nchars: int, *, task: str,
             depth: float | None = None, variant: int | None = None, value_kind: str = "number",
             n_keys: int = 1, n_values: int = 1, n_queries: int = 1, dense: bool = False,
             digits: int | None = None) -> Sample:
    tpl = _pick_template(rng, NIAH_TEMPLATES, split, variant)
    kind, kinds = KINDS[value_kind]
    if digits is None:
        digits = 7 if split == "heldout" else rng.randint(4, 9)

    def newval(used):
        while True:
            v = uuid(rng) if value_kind == "uuid" else number(rng, digits)
            if v not in used:
                used.add(v)
                return v

    keys = distinct_keys(rng, split, n_keys)
    used: set[str] = set()
    needles = []  # (key, value)
    for ki, k in enumerate(keys):
        nv = n_values if ki == 0 else 1
        for _ in range(nv):
            needles.append((k, newval(used)))
    fill = lambda **kw: _fmt(tpl["needle"], kind=kind, kinds=kinds, **kw)
    if dense:
        # haystack made only of needles with other keys (RULER niah_multikey_2/3)
        n_sent = max(len(needles), nchars // max(1, len(fill(key=keys[0], value=needles[0][1])) + 1))
        dkeys = set(keys)
        units = []
        while len(units) < n_sent:
            k = word_key(rng, split)
            if k in dkeys:
                continue
            dkeys.add(k)
            units.append(fill(key=k, value=newval(used)) + " ")
    else:
        units = corpus.haystack(rng, nchars) if corpus is not None else noise_units(rng, split, nchars)
    # depths: the first needle (the asked one for single/multikey) at `depth`, others random
    placed = []
    for i, (k, v) in enumerate(needles):
        d = depth if (i == 0 and depth is not None) else rng.random()
        placed.append((d, fill(key=k, value=v)))
    # keep the order of appearance of same-key values (multivalue answers are in text order)
    units = insert_at(units, placed)
    body = "".join(units)
    order = sorted(range(len(placed)), key=lambda i: body.find(placed[i][1]))
    if n_queries > 1:
        qkeys = keys[:n_queries]
        rng.shuffle(qkeys)
        keys_txt = ", ".join(qkeys[:-1]) + " and " + qkeys[-1]
        question = _fmt(tpl["qmulti"], kind=kind, kinds=kinds, keys=keys_txt)
        vals = [dict(needles)[k] for k in qkeys]
    elif n_values > 1:
        question = _fmt(tpl["qall"], kind=kind, kinds=kinds, key=keys[0])
        vals = [needles[i][1] for i in order if needles[i][0] == keys[0]]
    else:
        question = _fmt(tpl["q1"], kind=kind, kinds=kinds, key=keys[0])
        vals = [needles[0][1]]
    intro = _fmt(tpl["intro"], kind=kind, kinds=kinds)
    prompt = _assemble(intro, body, question)
    return Sample(task, prompt, " " + ", ".join(vals), vals,
                  dict(depth=depth, keys=keys, template=NIAH_TEMPLATES[split].index(tpl)))


def gen_passkey(rng, split, corpus, nchars, *, depth=None, variant=None, digits=5, **_):
    tpl = _pick_template(rng, PASSKEY_TEMPLATES, split, variant)
    value = number(rng, digits)
    units = noise_units(rng, split, nchars)
    d = rng.random() if depth is None else depth
    units = insert_at(units, [(d, _fmt(tpl["needle"], value=value))])
    prompt = _assemble(tpl["intro"], "".join(units), tpl["q"])
    return Sample("passkey", prompt, " " + value, [value], dict(depth=depth, template=PASSKEY_TEMPLATES[split].index(tpl)))


def gen_vt(rng, split, corpus, nchars, *, variant=None, n_hops=4, n_chains=1, noise=True, **_):
    tpl = _pick_template(rng, VT_TEMPLATES, split, variant)
    units = noise_units(rng, split, nchars) if (noise or corpus is None) else corpus.haystack(rng, nchars)
    names: list[str] = []
    while len(names) < n_chains * (n_hops + 1):
        v = var_name(rng)
        if v not in names:
            names.append(v)
    values = distinct_numbers(rng, n_chains, 5)
    placed = []
    chains = []
    for c in range(n_chains):
        chain = names[c * (n_hops + 1):(c + 1) * (n_hops + 1)]
        chains.append(chain)
        depths = sorted(rng.random() for _ in range(n_hops + 1))
        placed.append((depths[0], _fmt(tpl["first"], a=chain[0], value=values[c])))
        for h in range(1, n_hops + 1):
            placed.append((depths[h], _fmt(tpl["chain"], a=chain[h - 1], b=chain[h])))
    # stable insertion: equal depths keep chain order because we insert deepest first and
    # sort is stable on -depth; break exact ties by nudging
    units = insert_at(units, [(d + i * 1e-9, t) for i, (d, t) in enumerate(placed)])
    prompt = _assemble(tpl["intro"], "".join(units), _fmt(tpl["q"], value=values[0]))
    return Sample("vt", prompt, " " + " ".join(chains[0]), list(chains[0]),
                  dict(template=VT_TEMPLATES[split].index(tpl), n_chains=n_chains))


def coded_word(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 6)))


def gen_fwe(rng, split, corpus, nchars, *, variant=None, alpha=2.0, **_):
    tpl = _pick_template(rng, FWE_TEMPLATES, split, variant)
    n_words = max(30, nchars // 6)
    vocab: list[str] = []
    n_vocab = max(8, min(200, n_words // 5))
    while len(vocab) < n_vocab:
        w = coded_word(rng)
        if w not in vocab:
            vocab.append(w)
    # Zipf-like counts with strict margins between the top 4 ranks
    counts = [max(1, int(n_words / (r + 1) ** alpha / sum(1 / (i + 1) ** alpha for i in range(len(vocab)))))
              for r in range(len(vocab))]
    counts[0] = max(counts[0], 6)
    for r in range(1, 3):  # strict margins between the top 3 and the rest
        counts[r] = max(3 - r, min(counts[r], counts[r - 1] - max(1, counts[r - 1] // 5)))
    for r in range(3, len(vocab)):
        counts[r] = max(1, min(counts[r], counts[2] - max(1, counts[2] // 5)))
    words = [w for w, c in zip(vocab, counts) for _ in range(c)]
    rng.shuffle(words)
    body = []
    for i, w in enumerate(words):
        body.append(w)
        if i % 20 == 19:
            body.append("....")
    top = vocab[:3]
    assert counts[0] > counts[1] > counts[2] > max(counts[3:])
    prompt = _assemble(tpl["intro"], " ".join(body), tpl["q"])
    return Sample("fwe", prompt, " " + " ".join(top), top, dict(template=FWE_TEMPLATES[split].index(tpl), counts=counts[:4]))


def gen_kv(rng, split, corpus, nchars, *, depth=None, variant=None, **_):
    tpl = _pick_template(rng, KV_TEMPLATES, split, variant)
    n = max(2, nchars // 84)
    pairs = [(uuid(rng), uuid(rng)) for _ in range(n)]
    qi = rng.randrange(n) if depth is None else min(n - 1, int(round(depth * (n - 1))))
    k, v = pairs[qi]
    if tpl["style"] == "json":
        body = "{" + ",\n ".join(f'"{a}": "{b}"' for a, b in pairs) + "}"
    else:
        body = "\n".join(f"{a} | {b}" for a, b in pairs)
    prompt = _assemble(tpl["intro"], body, _fmt(tpl["q"], key=k))
    return Sample("kv", prompt, " " + v, [v], dict(depth=depth, index=qi, n_pairs=n, template=KV_TEMPLATES[split].index(tpl)))


# task name -> (generator, kwargs, haystack kind: "text" | "noise" | "none")
TASKS = {
    "passkey": (gen_passkey, {}, "noise"),
    "niah_single": (gen_niah, dict(task="niah_single"), "text"),
    "niah_single_uuid": (gen_niah, dict(task="niah_single_uuid", value_kind="uuid"), "text"),
    "niah_multikey": (gen_niah, dict(task="niah_multikey", n_keys=4), "text"),
    "niah_multikey_dense": (gen_niah, dict(task="niah_multikey_dense", n_keys=1, dense=True), "none"),
    "niah_multivalue": (gen_niah, dict(task="niah_multivalue", n_values=4), "text"),
    "niah_multiquery": (gen_niah, dict(task="niah_multiquery", n_keys=4, n_queries=4), "text"),
    "vt": (gen_vt, {}, "noise"),
    "fwe": (gen_fwe, {}, "none"),
    "kv": (gen_kv, {}, "none"),
}

# Training-only variations (more needles / chains / queries than the evaluation uses); never
# changes templates or key formats, which stay on the train side.
TRAIN_VARIATIONS = {
    "niah_single": lambda rng: dict(value_kind=rng.choice(["number", "number", "uuid"])),
    "niah_multikey": lambda rng: dict(n_keys=rng.randint(2, 8)),
    "niah_multivalue": lambda rng: dict(n_values=rng.randint(2, 5)),
    "niah_multiquery": lambda rng: dict(n_keys=rng.randint(2, 6), n_queries=None),
    "vt": lambda rng: dict(n_hops=rng.randint(1, 5), n_chains=rng.randint(1, 3), noise=rng.random() < 0.6),
    "niah_multikey_dense": lambda rng: dict(value_kind=rng.choice(["number", "uuid"])),
}


def generate(task: str, split: str, seed: int, nchars: int, corpus: Corpus | None = None,
             depth: float | None = None, variant: int | None = None, train_variation: bool = False) -> Sample:
    """One instance, a pure function of the arguments. `nchars` sizes the haystack (characters)."""
    if split not in ("train", "heldout"):
        raise ValueError(split)
    fn, kw, hay = TASKS[task]
    kw = dict(kw)
    rng = random.Random(f"{task}|{split}|{seed}")
    if train_variation and task in TRAIN_VARIATIONS:
        if split != "train":
            raise ValueError("train variations are for the train split only")
        extra = TRAIN_VARIATIONS[task](rng)
        if extra.get("n_queries", 1) is None:
            extra["n_queries"] = rng.randint(2, extra["n_keys"])
        kw.update(extra)
    if hay == "text" and corpus is None:
        raise ValueError(f"{task} needs a corpus")
    return fn(rng, split, corpus if hay == "text" or task == "vt" else None, nchars, depth=depth, variant=variant, **kw)


def fit_length(task: str, split: str, seed: int, target_tokens: int, count_tokens, corpus: Corpus | None = None,
               depth: float | None = None, variant: int | None = None, train_variation: bool = False,
               chars_per_token: float = 3.5, tol: float = 0.03, max_iter: int = 12) -> Sample:
    """Generate the instance whose prompt+answer is as long as possible but at most `target_tokens`
    tokens (count_tokens(text) -> int, text without special tokens; +2 is added for the BOS/EOS
    tokens). Binary search over the haystack size, as RULER does."""
    lo, hi = 0, None
    n = max(64, int(target_tokens * chars_per_token))
    best = None
    for _ in range(max_iter):
        s = generate(task, split, seed, n, corpus, depth, variant, train_variation)
        t = count_tokens(s.text) + 2
        if t <= target_tokens:
            best, lo = s, n
            if t >= target_tokens * (1 - tol):
                break
        else:
            hi = n
        if hi is None:
            n = int(n * max(1.05, min(2.0, target_tokens / max(t, 1))))
        else:
            n = (lo + hi) // 2
            if hi - lo <= 16:
                break
    if best is None:
        raise RuntimeError(f"cannot fit {task} into {target_tokens} tokens")
    best.info["tokens"] = count_tokens(best.text) + 2
    best.info["nchars"] = lo  # generate(task, split, seed, lo, corpus, depth, variant) reproduces it
    return best


def score(sample: Sample, prediction: str) -> dict:
    """exact: the whole answer matches (after stripping whitespace); recall: RULER string-match
    score = fraction of reference values that occur in the prediction."""
    pred = prediction.strip()
    exact = float(pred == sample.answer.strip())
    recall = sum(v.lower() in pred.lower() for v in sample.values) / len(sample.values)
    return dict(exact=exact, recall=recall)


def instance_id(task: str, split: str, seed: int) -> str:
    return hashlib.sha1(f"{task}|{split}|{seed}".encode()).hexdigest()[:12]


if __name__ == "__main__":
    import argparse
    import os
    import sys

    ap = argparse.ArgumentParser(description="materialize held-out evaluation instances from their specs")
    ap.add_argument("cmd", choices=["materialize"])
    ap.add_argument("specs", help="data/heldout/eval_specs.jsonl")
    ap.add_argument("out", help="output .jsonl with task, length, depth, prompt, answer")
    ap.add_argument("--heldout", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "heldout", "heldout.jsonl.gz"))
    ap.add_argument("--tasks", default=None, help="comma-separated tasks to keep (default: all)")
    ap.add_argument("--unseen", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "heldout", "unseen.jsonl.gz"))
    args = ap.parse_args()
    import wording  # the para_* tasks (held-out wording, haystacks from unseen corpora)
    TASKS.update(wording.TASKS)  # run as __main__, this module is not the `tasks` that wording registers into
    corpus = Corpus(Corpus.load_jsonl_xz(args.heldout), EVAL_HAYSTACK_SOURCES)
    unseen = wording.unseen_corpus(args.unseen) if os.path.exists(args.unseen) else None
    n = 0
    keep = set(args.tasks.split(",")) if args.tasks else None
    import gzip
    out = gzip.GzipFile(args.out, "wb", mtime=0) if args.out.endswith(".gz") else open(args.out, "wb")
    with open(args.specs) as f, out as g:
        for line in f:
            sp = json.loads(line)
            if keep is not None and sp["task"] not in keep:
                continue
            c = unseen if sp["task"] in wording.TASKS else corpus
            s = generate(sp["task"], "heldout", sp["seed"], sp["nchars"], c, sp["depth"], sp["variant"])
            assert s.answer == sp["answer"], (sp, s.answer)
            g.write((json.dumps(dict(task=sp["task"], length=sp["length"], depth=sp["depth"], seed=sp["seed"],
                                     prompt=s.prompt, answer=s.answer, values=s.values)) + "\n").encode("utf-8"))
            n += 1
    print(f"{n} instances written to {args.out}", file=sys.stderr)
