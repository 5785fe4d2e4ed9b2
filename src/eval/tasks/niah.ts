/**
 * Needle in a haystack, the RULER family (Hsieh et al., 2024, "RULER: What's the Real Context Size of Your
 * Long-Context Language Models?", NVIDIA/RULER scripts/data/synthetic/niah.py), in the held-out formats of
 * attend-mini (tools/train/tasks.py `gen_niah`, HELDOUT templates; template 0 is RULER's wording):
 *
 *   niah_single       RULER niah_single_2: real-text haystack, one needle, word key, 7-digit number
 *   niah_single_uuid  RULER niah_single_3: the same with a UUID value
 *   niah_multikey     RULER niah_multikey_1: 4 needles with different keys, one is asked
 *   niah_multivalue   RULER niah_multivalue: 4 values for one key, all are asked
 *   niah_multiquery   RULER niah_multiquery: 4 needles with different keys, all are asked
 *
 * Keys are held-out adjective-noun pairs (words.ts), the haystack is held-out prose (haystack.ts). The first needle
 * (the asked one; for multi-value and multi-query one of the asked ones) sits at `depth`, the others at random
 * depths. Metric: string_match_all; the answers of multi-value are in text order.
 */
import type { Random } from '../../generate/random.js';
import { choice, type Needle, heldoutCorpus, insertAt, shuffle } from '../haystack.js';
import type { TaskGenerator, TaskInstance, TaskOptions } from '../types.js';
import { assemble, fitHaystack, newTokensFor, promptTokens, randomNumber, taskRandom } from './common.js';
import { HELDOUT_WORDS } from './words.js';

/** tasks.py NIAH_TEMPLATES['heldout']. */
export const NIAH_TEMPLATES = [
  {
    intro: 'Some special magic {kinds} are hidden within the following text. Make sure to memorize it. I will quiz you about the {kinds} afterwards.',
    needle: 'One of the special magic {kinds} for {key} is: {value}.',
    q1: 'What is the special magic {kind} for {key} mentioned in the provided text?',
    qall: 'What are all the special magic {kinds} for {key} mentioned in the provided text?',
    qmulti: 'What are the special magic {kinds} for {keys} mentioned in the provided text?',
  },
  {
    intro: 'A few confidential {kinds} have been tucked away in the document below. Keep an eye out for them; you will be asked about them afterwards.',
    needle: 'Note that the confidential {kind} belonging to {key} is {value}.',
    q1: 'Which confidential {kind} belongs to {key} according to the document?',
    qall: 'List every confidential {kind} that belongs to {key} according to the document.',
    qmulti: 'Which confidential {kinds} belong to {keys} according to the document?',
  },
];

const KINDS = { number: ['number', 'numbers'], uuid: ['UUID', 'UUIDs'] } as const;

/** Replaces every {name} by vars[name]. */
export function fill(template: string, vars: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (m, k: string) => vars[k] ?? m);
}

/** n adjective-noun keys sharing no adjective and no noun (tasks.py distinct_keys). */
export function distinctKeys(rng: Random, n: number): string[] {
  const adj = shuffle(rng, [...HELDOUT_WORDS.adj]);
  const noun = shuffle(rng, [...HELDOUT_WORDS.noun]);
  return Array.from({ length: n }, (_, i) => `${adj[i]}-${noun[i]}`);
}

/** A random version-4 UUID string (tasks.py uuid). */
export function randomUuid(rng: Random): string {
  const hex = '0123456789abcdef';
  const h = Array.from({ length: 32 }, () => choice(rng, [...hex]));
  h[12] = '4';
  h[16] = choice(rng, [...'89ab']);
  const s = h.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

interface NiahSpec {
  name: string;
  description: string;
  valueKind: 'number' | 'uuid';
  keys: number;
  /** Values of the first key. */
  values: number;
  /** Keys asked (all values of each). */
  queries: number;
}

function generateNiah(spec: NiahSpec, opts: TaskOptions): TaskInstance {
  const { seed, contextLength, depth, tokenizer } = opts;
  const rng = taskRandom(spec.name, seed, 'content');
  const tpl = NIAH_TEMPLATES[seed % NIAH_TEMPLATES.length];
  const [kind, kinds] = KINDS[spec.valueKind];
  const keys = distinctKeys(rng, spec.keys);
  const used = new Set<string>();
  const newValue = () => {
    for (;;) {
      const v = spec.valueKind === 'uuid' ? randomUuid(rng) : randomNumber(rng, 7);
      if (!used.has(v)) return used.add(v), v;
    }
  };
  const pairs: [string, string][] = [];
  keys.forEach((key, i) => {
    for (let j = 0; j < (i === 0 ? spec.values : 1); j++) pairs.push([key, newValue()]);
  });
  const needles: Needle[] = pairs.map(([key, value], i) => ({
    depth: i === 0 && depth !== undefined ? depth : rng.next(),
    text: fill(tpl.needle, { kind, kinds, key, value }),
  }));
  let question: string;
  let asked: [string, string][];
  if (spec.queries > 1) {
    const qkeys = shuffle(rng, keys.slice(0, spec.queries));
    question = fill(tpl.qmulti, { kind, kinds, keys: `${qkeys.slice(0, -1).join(', ')} and ${qkeys[qkeys.length - 1]}` });
    asked = qkeys.map((k) => pairs.find(([key]) => key === k)!);
  } else {
    question = fill(spec.values > 1 ? tpl.qall : tpl.q1, { kind, kinds, key: keys[0] });
    asked = pairs.filter(([key]) => key === keys[0]);
  }
  const intro = fill(tpl.intro, { kind, kinds });
  const corpus = heldoutCorpus();
  const fit = fitHaystack(
    contextLength,
    (nchars) => corpus.haystack(taskRandom(spec.name, seed, 'haystack'), nchars),
    (units) => assemble(intro, insertAt(units, needles).join(''), question),
    (parts) => promptTokens(tokenizer, parts),
    spec.name,
  );
  const { context } = fit.value;
  // Multi-value answers in the order they appear in the text (tasks.py does the same).
  const answers = spec.values > 1
    ? asked.map(([key, value]) => ({ value, at: context.indexOf(fill(tpl.needle, { kind, kinds, key, value })) }))
      .sort((a, b) => a.at - b.at).map((a) => a.value)
    : asked.map(([, value]) => value);
  return {
    task: spec.name,
    contextLength,
    ...(depth !== undefined ? { depth } : {}),
    seed,
    ...fit.value,
    answers,
    metric: 'all',
    maxNewTokens: newTokensFor(tokenizer, answers.join(', ')),
  };
}

function niahTask(spec: NiahSpec): TaskGenerator {
  return { name: spec.name, description: spec.description, hasDepth: true, generate: (opts) => generateNiah(spec, opts) };
}

export const niahSingle = niahTask({
  name: 'niah_single',
  description: 'one 7-digit number under a word key in held-out prose (RULER niah_single_2)',
  valueKind: 'number', keys: 1, values: 1, queries: 1,
});

export const niahSingleUuid = niahTask({
  name: 'niah_single_uuid',
  description: 'one UUID under a word key in held-out prose (RULER niah_single_3)',
  valueKind: 'uuid', keys: 1, values: 1, queries: 1,
});

export const niahMultikey = niahTask({
  name: 'niah_multikey',
  description: '4 needles with different keys, one is asked (RULER niah_multikey_1)',
  valueKind: 'number', keys: 4, values: 1, queries: 1,
});

export const niahMultivalue = niahTask({
  name: 'niah_multivalue',
  description: '4 numbers under one key, all are asked (RULER niah_multivalue)',
  valueKind: 'number', keys: 1, values: 4, queries: 1,
});

export const niahMultiquery = niahTask({
  name: 'niah_multiquery',
  description: '4 needles with different keys, all are asked (RULER niah_multiquery)',
  valueKind: 'number', keys: 4, values: 1, queries: 4,
});
