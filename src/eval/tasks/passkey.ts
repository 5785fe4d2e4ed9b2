/**
 * Passkey retrieval (Mohtashami & Jaggi, 2023, "Landmark Attention", the test RULER's niah_single_1 generalizes): a
 * 5-digit pass key in the repeated held-out noise "The grass is green. ...", at `depth`. Held-out formats of
 * attend-mini (tools/train/tasks.py `gen_passkey`, PASSKEY_TEMPLATES['heldout']; template 0 is Landmark's wording).
 * Metric: string_match_all with one answer.
 */
import { noiseUnits, insertAt } from '../haystack.js';
import type { TaskGenerator } from '../types.js';
import { assemble, fitHaystack, newTokensFor, promptTokens, randomNumber, taskRandom } from './common.js';

/** tasks.py PASSKEY_TEMPLATES['heldout']. */
export const PASSKEY_TEMPLATES = [
  {
    intro: 'There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you about the important information there.',
    needle: 'The pass key is {value}. Remember it. {value} is the pass key.',
    q: 'What is the pass key?',
  },
  {
    intro: 'A single access code is buried in the filler text below. Locate it.',
    needle: 'Your access code is {value}. Do not forget {value}.',
    q: 'What is the access code?',
  },
];

export const passkey: TaskGenerator = {
  name: 'passkey',
  description: 'a 5-digit pass key in repeated held-out noise (Landmark attention passkey)',
  hasDepth: true,
  generate({ seed, contextLength, depth, tokenizer }) {
    const rng = taskRandom('passkey', seed, 'content');
    const tpl = PASSKEY_TEMPLATES[seed % PASSKEY_TEMPLATES.length];
    const value = randomNumber(rng, 5);
    const needle = { depth: depth ?? rng.next(), text: tpl.needle.replaceAll('{value}', value) };
    const fit = fitHaystack(
      contextLength,
      noiseUnits,
      (units) => assemble(tpl.intro, insertAt(units, [needle]).join(''), tpl.q),
      (parts) => promptTokens(tokenizer, parts),
      'passkey',
    );
    return {
      task: 'passkey',
      contextLength,
      ...(depth !== undefined ? { depth } : {}),
      seed,
      ...fit.value,
      answers: [value],
      metric: 'all',
      maxNewTokens: newTokensFor(tokenizer, value),
    };
  },
};
