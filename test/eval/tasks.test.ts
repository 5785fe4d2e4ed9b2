/**
 * The task generators of `attend bench` (src/eval/tasks/), with the real attend-mini tokenizer: every task at 512
 * and 2048 tokens (and depths 0, 0.5, 1 where it has one) is deterministic, fits its length (at most it, within
 * 5% below), splits where the runner tokenizes apart without changing the ids, places its needle at the depth, is
 * answered fully by an oracle that reads the answer out of the prompt by the task's rule (independent regexes
 * here), and hardly at all by a random predictor of the answer's shape; and it uses attend-mini's held-out side
 * only: held-out key words and templates (checked verbatim against tools/train/tasks.py, with the training ones
 * ported here), held-out noise and held-out documents (data/split.json).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { AttendError } from '../../src/errors.js';
import { HAYSTACK_SOURCES, HELDOUT_NOISE, heldoutDocuments, insertAt, splitUnits } from '../../src/eval/haystack.js';
import { score } from '../../src/eval/scoring.js';
import { promptTokens } from '../../src/eval/tasks/common.js';
import { FWE_TEMPLATE } from '../../src/eval/tasks/fwe.js';
import { TASKS, taskByName } from '../../src/eval/tasks/index.js';
import { NIAH_TEMPLATES } from '../../src/eval/tasks/niah.js';
import { PASSKEY_TEMPLATES } from '../../src/eval/tasks/passkey.js';
import { QA_FIELDS, QA_INSTRUCTION } from '../../src/eval/tasks/qa.js';
import { VT_TEMPLATES } from '../../src/eval/tasks/vt.js';
import { HELDOUT_WORDS, TRAIN_WORDS } from '../../src/eval/tasks/words.js';
import type { PerplexityInstance, TaskInstance } from '../../src/eval/types.js';
import { Random } from '../../src/generate/random.js';
import { TextTokenizer } from '../../src/io/tokenizer.js';

const ROOT = join(import.meta.dirname, '..', '..');
const tokenizer = TextTokenizer.load(join(ROOT, 'models', 'attend-mini'));
const TASKS_PY = readFileSync(join(ROOT, 'tools', 'train', 'tasks.py'), 'utf8');

/** attend-mini's training templates and noise (tools/train/tasks.py, the 'train' side), checked verbatim below. */
const TRAIN = {
  niah: [
    'Some secret {kinds} are hidden in the text below. Remember them, because you will be asked about them later.',
    'The secret {kind} for {key} is {value}.',
    'What is the secret {kind} for {key}?',
    'What are all the secret {kinds} for {key}?',
    'What are the secret {kinds} for {keys}?',
    'The following document contains hidden {kinds}. Read it carefully.',
    'Remember: the hidden {kind} of {key} is {value}.',
    'According to the document, what is the hidden {kind} of {key}?',
    'According to the document, which hidden {kinds} does {key} have?',
    'According to the document, what are the hidden {kinds} of {keys}?',
    'Inside the text there are special {kinds}. Find them.',
    'One special {kind} for {key} is: {value}.',
    'What special {kind} for {key} appears in the text?',
    'Which special {kinds} for {key} appear in the text?',
    'Which special {kinds} for {keys} appear in the text?',
    'Below is a long text. Somewhere in it, magic {kinds} have been written down.',
    'The magic {kind} assigned to {key} is {value}.',
    'What magic {kind} was assigned to {key}?',
    'Which magic {kinds} were assigned to {key}?',
    'Which magic {kinds} were assigned to {keys}?',
    'Memorize the important {kinds} mentioned in the following passage.',
    'Important: {key} has the {kind} {value}.',
    'Which {kind} does {key} have?',
    'Which {kinds} does {key} have?',
    'Which {kinds} do {keys} have?',
    'This text hides some special codes. A code is a {kind} that belongs to a name.',
    '({key} -> {value})',
    'What is the {kind} that belongs to {key}?',
    'What are all the {kinds} that belong to {key}?',
    'What are the {kinds} that belong to {keys}?',
    'Pay attention to the registry entries scattered through the following text.',
    'Registry entry: the {kind} recorded for {key} is {value}.',
    'In the registry, what {kind} is recorded for {key}?',
    'In the registry, what {kinds} are recorded for {key}?',
    'In the registry, what {kinds} are recorded for {keys}?',
    'Read the text. It contains a few lucky {kinds} that you must recall.',
    'By the way, the lucky {kind} of {key} is {value}!',
    'Recall the lucky {kind} of {key}.',
    'Recall all the lucky {kinds} of {key}.',
    'Recall the lucky {kinds} of {keys}.',
    'Some magic values appear in the text below; each one belongs to a key.',
    'Key {key} maps to the value {value}.',
    'Which value does key {key} map to?',
    'Which values does key {key} map to?',
    'Which values do keys {keys} map to?',
    'There are special {kinds} hidden within the following text. I will ask about them.',
    "{key}'s special {kind} is {value}.",
    "What is {key}'s special {kind}?",
    "What are {key}'s special {kinds}?",
    'What are the special {kinds} of {keys}?',
  ],
  passkey: [
    'Find the password hidden in the text below and remember it.',
    'The password is {value}. Keep it safe: {value} is the password.',
    'What is the password?',
    'Somewhere in this text there is a key. Memorize it.',
    'The key is {value}. {value} is the key.',
    'What is the key?',
    'There is a secret number in the following text. Find it.',
    'Here is the secret number: {value}. Remember {value}.',
    'What is the secret number?',
    'Important information is hidden inside a lot of repeated text. Find the pin.',
    'The pin is {value}. The pin, {value}, must be remembered.',
    'What is the pin?',
    'Read the text and remember the code that is given in it.',
    'Remember this code: {value}.',
    'Which code was given in the text?',
    'A passcode is hidden in the noise below.',
    'PASSCODE = {value}. The passcode is {value}.',
    'What is the passcode?',
  ],
  vt: [
    'Track the variable assignments in the text.',
    'let {a} = {value};',
    'let {b} = {a};',
    'Question: Which variables are equal to {value}?',
    'Some variables are defined in the following text.',
    'Variable {a} is set to {value}.',
    'Variable {b} is set to the value of {a}.',
    'Question: List the variables whose value is {value}.',
    'Keep track of the assignment chain hidden in the text.',
    '{a} := {value}',
    '{b} := {a}',
    'Question: Name all variables that hold {value}.',
    'Watch the assignments below.',
    'ASSIGN {value} TO {a}.',
    'ASSIGN {a} TO {b}.',
    'Question: Which variables were assigned {value}?',
  ],
  fwe: [
    'Count how often each coded word occurs in the text below.',
    'Question: Which three coded words occur most often, from most to least frequent?',
    'Below is a list of made-up words. Some occur far more often than others.',
    'Question: Give the three most frequent made-up words, most frequent first.',
  ],
  noise: [
    'The river is wide. The hill is steep. The wind is cold. On we walk. Over and back again.',
    'The road is long. The night is dark. The moon is white. Off we go. Round and round again.',
    'The tree is tall. The sea is deep. The sand is warm. Here it comes. Up and down again.',
    'The bird is small. The field is wide. The rain is soft. There we are. In and out again.',
    'The stone is grey. The lake is calm. The fire is red. Now we rest. Back and forth again.',
    'The snow is white. The path is narrow. The air is fresh. Let us go. Near and far again.',
  ],
};

/** A template as a regex over any fill of its placeholders. */
function templateRegex(t: string): RegExp {
  const fills: Record<string, string> = {
    kind: '(?:number|UUID)', kinds: '(?:numbers|UUIDs)', key: '[a-z]+-[a-z]+', keys: '[a-z ,-]+',
    value: '[0-9a-f-]+', a: '[A-Z]{5}', b: '[A-Z]{5}',
  };
  const parts = t.split(/\{(\w+)\}/);
  return new RegExp(parts.map((p, i) => (i % 2 ? fills[p] : p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join(''));
}
const TRAIN_REGEXES = [...TRAIN.niah, ...TRAIN.passkey, ...TRAIN.vt, ...TRAIN.fwe].map(templateRegex);

// ---------------------------------------------------------------------------------------------------------------
// Oracles: the answer read out of the prompt by the task's rule, with regexes written here.

const NEEDLE_RES = [
  /One of the special magic (?:numbers|UUIDs) for ([a-z]+-[a-z]+) is: ([0-9a-f-]+)\./g,
  /Note that the confidential (?:number|UUID) belonging to ([a-z]+-[a-z]+) is ([0-9a-f-]+)\./g,
];

function niahNeedles(context: string): { key: string; value: string; at: number }[] {
  return NEEDLE_RES.flatMap((re) => [...context.matchAll(re)].map((m) => ({ key: m[1], value: m[2], at: m.index })))
    .sort((a, b) => a.at - b.at);
}

function oracle(inst: TaskInstance): string[] {
  const { context, question } = inst;
  switch (inst.task) {
    case 'passkey':
      return [/(?:The pass key is|Your access code is) (\d+)\./.exec(context)![1]];
    case 'vt': {
      const value = /value (\d+)/.exec(question)![1];
      const edges = [...context.matchAll(/(?:VAR ([A-Z]{5}) = (?:VAR )?|SET ([A-Z]{5}) TO )([A-Z]{5}|\d+)\./g)]
        .map((m) => ({ to: m[1] ?? m[2], from: m[3] }));
      const held = [value];
      for (let grown = true; grown; ) {
        grown = false;
        for (const e of edges) if (held.includes(e.from) && !held.includes(e.to)) held.push(e.to), (grown = true);
      }
      return held.slice(1);
    }
    case 'fwe': {
      const counts = new Map<string, number>();
      for (const w of context.slice(context.indexOf('\n\n') + 2).split(/\s+/)) if (w && w !== '....') counts.set(w, (counts.get(w) ?? 0) + 1);
      return [...counts].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([w]) => w);
    }
    case 'qa': {
      const q = /Question: (.*)$/m.exec(question)![1];
      for (const [field, template] of Object.entries(QA_FIELDS)) {
        const m = new RegExp('^' + template.replace('?', '\\?').replace('{country}', '(.+)') + '$').exec(q);
        if (!m) continue;
        const doc = context.split(/\n\nDocument \d+:\n/).find((d) => d.startsWith(`${m[1]} (The World Factbook)\n`))!;
        return [new RegExp(`^${field}: (-?\\d[\\d,]*(?:\\.\\d+)?)`, 'm').exec(doc)![1]];
      }
      throw new Error(`no field for ${q}`);
    }
    default: {
      // Needle tasks: the values of the keys the question names, in text order.
      const asked = new Set(question.match(/[a-z]+-[a-z]+/g));
      return niahNeedles(context).filter((n) => asked.has(n.key)).map((n) => n.value);
    }
  }
}

/** A random answer of the right shape: every digit, hex digit, letter replaced at random (seeded). */
function randomLike(answers: string[], rng: Random): string {
  const pick = (chars: string) => chars[Math.floor(rng.next() * chars.length)];
  return answers.map((a) => a.replace(/[0-9]/g, () => pick('0123456789')).replace(/[a-f](?=[0-9a-f]*-)|(?<=-[0-9a-f]*)[a-f]/g, () => pick('0123456789abcdef'))
    .replace(/[A-Z]/g, () => pick('ABCDEFGHIJKLMNOPQRSTUVWXYZ')).replace(/^[a-z]+$/, (w) => w.replace(/[a-z]/g, () => pick('abcdefghijklmnopqrstuvwxyz'))))
    .join(', ');
}

/**
 * Where each needle sits: the characters of haystack before it over all of the haystack, needles left out (the
 * haystack is the context after the intro). With the tolerance: 10%, or half the longest sentence of the haystack
 * when that is more (a needle goes between sentences; at 512 tokens one long sentence can be 20% of the haystack).
 */
function needleDepths(context: string, needleRes: RegExp[]): { text: string; depth: number; tolerance: number }[] {
  const start = context.indexOf('\n\n') + 2;
  const found = needleRes.flatMap((re) => [...context.matchAll(re)].map((m) => ({ at: m.index, text: m[0] + ' ' })))
    .sort((a, b) => a.at - b.at);
  const clean = found.reduce((s, f) => s.replace(f.text, ''), context.slice(start));
  const longest = Math.max(...splitUnits(clean).map((u) => u.length));
  let removed = 0;
  return found.map((f) => {
    const depth = (f.at - start - removed) / clean.length;
    removed += f.text.length;
    return { text: f.text, depth, tolerance: Math.max(0.1, longest / clean.length / 2 + 0.01) };
  });
}

/** The generated tasks; the wording_* tasks draw from a fixed pool of 2K/4K/8K prompts (test/eval/wording.test.ts). */
const GENERATED = TASKS.filter((t) => !t.name.startsWith('wording_'));
const GENERATION_TASKS = GENERATED.filter((t) => t.name !== 'perplexity');
const LENGTHS = [512, 2048];
const SEEDS = [0, 1];
const instances: TaskInstance[] = [];
for (const task of GENERATION_TASKS) {
  for (const contextLength of LENGTHS) {
    for (const depth of task.hasDepth ? [0, 0.5, 1] : [undefined]) {
      for (const seed of SEEDS) instances.push(task.generate({ seed, contextLength, depth, tokenizer }) as TaskInstance);
    }
  }
}

test('the registry: every task, unknown names listed', () => {
  assert.deepEqual(TASKS.map((t) => t.name), ['passkey', 'niah_single', 'niah_single_uuid', 'niah_multikey', 'niah_multivalue', 'niah_multiquery', 'vt', 'fwe', 'qa', 'perplexity', 'wording_single', 'wording_multikey', 'wording_passkey']);
  assert.equal(taskByName('vt').name, 'vt');
  assert.throws(() => taskByName('nope'), (e: Error) => e instanceof AttendError && /nope/.test(e.message) && /niah_multiquery/.test(e.message));
});

test('deterministic: the same options give the same instance, another seed another', () => {
  for (const task of GENERATED) {
    const opts = { seed: 7, contextLength: 512, depth: task.hasDepth ? 0.25 : undefined, tokenizer };
    const a = task.generate(opts);
    assert.deepEqual(task.generate(opts), a, task.name);
    assert.equal(JSON.stringify(task.generate(opts)), JSON.stringify(a), task.name);
    assert.notDeepEqual(task.generate({ ...opts, seed: 8 }), a, task.name);
  }
  // The needle does not depend on the length or the depth (the same seed moves the same needle).
  const a = taskByName('niah_single').generate({ seed: 3, contextLength: 512, depth: 0, tokenizer }) as TaskInstance;
  const b = taskByName('niah_single').generate({ seed: 3, contextLength: 2048, depth: 1, tokenizer }) as TaskInstance;
  assert.deepEqual(a.answers, b.answers);
  assert.equal(a.question, b.question);
});

test('every prompt fits its length, within 5% below, split where separate tokenization keeps the ids', () => {
  for (const inst of instances) {
    const what = `${inst.task} ${inst.contextLength} ${inst.depth} ${inst.seed}`;
    const n = promptTokens(tokenizer, inst);
    assert.ok(n <= inst.contextLength && n >= 0.95 * inst.contextLength, `${what}: ${n} tokens`);
    assert.deepEqual(tokenizer.encode(inst.context + inst.question),
      [...tokenizer.encode(inst.context), ...tokenizer.encode(inst.question, { addSpecialTokens: false })], what);
    assert.ok(inst.question.startsWith('\n\n') && inst.question.endsWith('\nAnswer:'), what);
    assert.ok(!inst.context.includes('Answer:'), what);
    assert.ok(inst.answers.length > 0 && inst.maxNewTokens > 0, what);
    // Enough new tokens for the reference answer.
    assert.ok(tokenizer.encode(' ' + inst.answers.join(', '), { addSpecialTokens: false }).length < inst.maxNewTokens, what);
    assert.equal(inst.metric, inst.task === 'qa' ? 'part' : 'all', what);
  }
});

test('the needles sit at the stated depth (±10%); the QA gold document at round(depth · distractors)', () => {
  const passkeyRe = /(?:The pass key is (\d+)\. Remember it\. \1 is the pass key|Your access code is (\d+)\. Do not forget \2)\./g;
  for (const inst of instances.filter((i) => i.depth !== undefined)) {
    const what = `${inst.task} ${inst.contextLength} ${inst.depth} ${inst.seed}`;
    const d = inst.depth!;
    if (inst.task === 'qa') {
      const docs = inst.context.split(/\n\nDocument \d+:\n/).slice(1);
      const gold = docs.findIndex((doc) => doc.includes(inst.answers[0]));
      assert.equal(gold, Math.round(d * (docs.length - 1)), what);
      continue;
    }
    const needles = needleDepths(inst.context, inst.task === 'passkey' ? [passkeyRe] : NEEDLE_RES)
      .filter((n) => inst.answers.some((a) => n.text.includes(a)));
    // The first needle (the asked one; for multi-value / multi-query one of the asked ones) is at the depth.
    const off = needles.map((n) => Math.abs(n.depth - d));
    assert.ok(Math.min(...off) <= needles[0].tolerance, `${what}: ${off} (tolerance ${needles[0].tolerance})`);
    if (inst.contextLength >= 2048) assert.ok(Math.min(...off) <= 0.1, what);
  }
});

test('an oracle reading the prompt scores 100%; its answers are the instance answers', () => {
  for (const inst of instances) {
    const what = `${inst.task} ${inst.contextLength} ${inst.depth} ${inst.seed}`;
    const read = oracle(inst);
    if (inst.task === 'qa') assert.equal(read[0], inst.answers[0], what);
    else assert.deepEqual([...read].sort(), [...inst.answers].sort(), what);
    assert.equal(score(inst, ' ' + read.join(', ')), 1, what);
  }
  // The answers have the shapes of the tasks.
  for (const inst of instances) {
    const shape = { passkey: /^\d{5}$/, vt: /^[A-Z]{5}$/, fwe: /^[a-z]{3,6}$/, niah_single_uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, qa: /^-?[\d,.]{3,}$/ }[inst.task as string] ?? /^\d{7}$/;
    for (const a of inst.answers) assert.match(a, shape, inst.task);
    const count = { niah_multivalue: 4, niah_multiquery: 4, vt: 5, fwe: 3 }[inst.task as string];
    if (count) assert.equal(inst.answers.length, count, inst.task);
  }
});

test('a random predictor of the right shape scores near chance (0)', () => {
  const rng = new Random(99);
  for (const task of GENERATION_TASKS) {
    const mine = instances.filter((i) => i.task === task.name);
    let total = 0;
    for (const inst of mine) for (let k = 0; k < 5; k++) total += score(inst, randomLike(inst.answers, rng));
    assert.ok(total / (mine.length * 5) < 0.05, `${task.name}: ${total / (mine.length * 5)}`);
  }
});

test('held-out only: key words, templates and noise of the held-out side', () => {
  // The ported lists match tasks.py: the held-out templates and every training string are in it verbatim.
  const heldout = [
    ...NIAH_TEMPLATES.flatMap((t) => Object.values(t)), ...PASSKEY_TEMPLATES.flatMap((t) => Object.values(t)),
    ...VT_TEMPLATES.flatMap((t) => Object.values(t)), ...Object.values(FWE_TEMPLATE), HELDOUT_NOISE,
  ];
  for (const s of [...heldout, ...Object.values(TRAIN).flat()]) assert.ok(TASKS_PY.includes(s), s);
  const list = (name: string) => /_?NAME = """([^"]*)"""/.source.replace('NAME', name);
  const adj = new RegExp(list('_ADJ')).exec(TASKS_PY)![1].split(/\s+/).filter(Boolean);
  const noun = new RegExp(list('_NOUN')).exec(TASKS_PY)![1].split(/\s+/).filter(Boolean);
  assert.deepEqual(HELDOUT_WORDS.adj, adj.filter((_, i) => i % 5 === 4));
  assert.deepEqual(HELDOUT_WORDS.noun, noun.filter((_, i) => i % 5 === 4));
  assert.deepEqual(TRAIN_WORDS.adj, adj.filter((_, i) => i % 5 !== 4));
  for (const w of [...HELDOUT_WORDS.adj, ...HELDOUT_WORDS.noun]) assert.ok(!TRAIN_WORDS.adj.includes(w) && !TRAIN_WORDS.noun.includes(w), w);

  for (const inst of instances) {
    const what = `${inst.task} ${inst.contextLength} ${inst.depth} ${inst.seed}`;
    const prompt = inst.context + inst.question;
    for (const re of TRAIN_REGEXES) assert.ok(!re.test(prompt), `${what}: training template ${re}`);
    for (const { key } of niahNeedles(inst.context)) {
      const [a, n] = key.split('-');
      assert.ok(HELDOUT_WORDS.adj.includes(a) && HELDOUT_WORDS.noun.includes(n), `${what}: key ${key}`);
    }
    if (inst.task === 'passkey' || inst.task === 'vt') {
      assert.ok(inst.context.includes(HELDOUT_NOISE), what);
      for (const noise of TRAIN.noise) for (const s of noise.split(/(?<=\.) /)) assert.ok(!prompt.includes(s), `${what}: ${s}`);
    }
  }
});

test('haystacks and documents are the held-out split (data/split.json), from the prose sources', () => {
  const split = JSON.parse(readFileSync(join(ROOT, 'data', 'split.json'), 'utf8')) as { heldout_ids: string[] };
  const docs = heldoutDocuments();
  assert.deepEqual(docs.map((d) => d.id), [...split.heldout_ids].sort());
  const prose = docs.filter((d) => HAYSTACK_SOURCES.includes(d.source)).map((d) => d.text).join('\n');
  for (const inst of instances.filter((i) => i.task.startsWith('niah'))) {
    // Every whole line of the haystack (needles taken out) is held-out prose.
    const hay = inst.context.slice(inst.context.indexOf('\n\n') + 2);
    const clean = NEEDLE_RES.reduce((s, re) => s.replace(re, ''), hay);
    const lines = clean.split('\n').map((l) => l.trim()).filter((l) => l.length > 40);
    const inside = lines.slice(1, -1).filter((l) => prose.includes(l.replace(/ {2,}/g, ' ')));
    assert.ok(inside.length >= 0.8 * Math.max(0, lines.length - 2), `${inst.task}: ${inside.length} of ${lines.length}`);
  }
  // Units keep the text; needles go between units, deepest first.
  const text = docs[0].text.slice(0, 5000);
  assert.equal(splitUnits(text).join(''), text);
  assert.deepEqual(insertAt(['a ', 'b ', 'c '], [{ depth: 1, text: 'Z' }, { depth: 0, text: 'X' }, { depth: 0, text: 'Y' }]),
    ['X ', 'Y ', 'a ', 'b ', 'c ', 'Z ']);
});

test('perplexity: held-out text of at least contextLength tokens, ending soon after', () => {
  const docs = heldoutDocuments();
  for (const contextLength of LENGTHS) {
    for (const seed of SEEDS) {
      const inst = taskByName('perplexity').generate({ seed, contextLength, tokenizer }) as PerplexityInstance;
      assert.equal(inst.task, 'perplexity');
      const n = tokenizer.encode(inst.text).length;
      assert.ok(n >= contextLength && n <= 1.2 * contextLength, `${contextLength}: ${n}`);
      assert.ok(docs.some((d) => d.text.startsWith(inst.text.slice(0, 200))), 'starts at a held-out document');
    }
  }
});
