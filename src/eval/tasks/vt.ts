/**
 * Variable tracking (RULER `variable_tracking`, NVIDIA/RULER scripts/data/synthetic/variable_tracking.py): one
 * chain of 4 hops, `VAR A = 12345.` then `VAR B = VAR A.` ..., its statements at random increasing depths of the
 * repeated held-out noise; the answer is every variable of the chain. Held-out formats of attend-mini
 * (tools/train/tasks.py `gen_vt`, VT_TEMPLATES['heldout']; template 0 is RULER's wording). Metric:
 * string_match_all over the 5 names.
 */
import type { Random } from '../../generate/random.js';
import { insertAt, noiseUnits } from '../haystack.js';
import type { TaskGenerator } from '../types.js';
import { assemble, fitHaystack, newTokensFor, promptTokens, randomNumber, taskRandom } from './common.js';

/** tasks.py VT_TEMPLATES['heldout']. */
export const VT_TEMPLATES = [
  {
    intro: 'Memorize and track the chain(s) of variable assignment hidden in the following text.',
    first: 'VAR {a} = {value}.',
    chain: 'VAR {b} = VAR {a}.',
    q: 'Question: Find all variables that are assigned the value {value} in the text above.',
  },
  {
    intro: 'Follow the assignments hidden in the text below.',
    first: 'SET {a} TO {value}.',
    chain: 'SET {b} TO {a}.',
    q: 'Question: Which variables end up holding the value {value}?',
  },
];

const HOPS = 4;

function varName(rng: Random): string {
  return Array.from({ length: 5 }, () => String.fromCharCode(65 + Math.floor(rng.next() * 26))).join('');
}

export const vt: TaskGenerator = {
  name: 'vt',
  description: 'variable tracking: one chain of 4 assignments in held-out noise (RULER variable_tracking)',
  hasDepth: false,
  generate({ seed, contextLength, tokenizer }) {
    const rng = taskRandom('vt', seed, 'content');
    const tpl = VT_TEMPLATES[seed % VT_TEMPLATES.length];
    const names: string[] = [];
    while (names.length < HOPS + 1) {
      const v = varName(rng);
      if (!names.includes(v)) names.push(v);
    }
    const value = randomNumber(rng, 5);
    const depths = Array.from({ length: HOPS + 1 }, () => rng.next()).sort((a, b) => a - b);
    const needles = names.map((name, h) => ({
      depth: depths[h],
      text: h === 0
        ? tpl.first.replace('{a}', name).replace('{value}', value)
        : tpl.chain.replace('{a}', names[h - 1]).replace('{b}', name),
    }));
    const question = tpl.q.replace('{value}', value);
    const fit = fitHaystack(
      contextLength,
      noiseUnits,
      (units) => assemble(tpl.intro, insertAt(units, needles).join(''), question),
      (parts) => promptTokens(tokenizer, parts),
      'vt',
    );
    return {
      task: 'vt',
      contextLength,
      seed,
      ...fit.value,
      answers: names,
      metric: 'all',
      maxNewTokens: newTokensFor(tokenizer, names.join(' ')),
    };
  },
};
