/**
 * Frequent words extraction (RULER `freq_words_extraction`, NVIDIA/RULER scripts/data/synthetic/
 * freq_words_extraction.py): a text of random coded words drawn from a Zipf distribution (α = 2), with "...." after
 * every 20th word; the answer is the three most frequent words. Port of attend-mini's held-out format
 * (tools/train/tasks.py `gen_fwe`, FWE_TEMPLATES['heldout'] = RULER's wording), whose counts keep strict margins
 * between the top three and the rest, so the answer is unique. The number of words is what is fitted to the
 * length. No held-out haystack is involved (the words are random); no depth. Metric: string_match_all.
 */
import type { Random } from '../../generate/random.js';
import { shuffle } from '../haystack.js';
import type { TaskGenerator } from '../types.js';
import { assemble, fitLength, newTokensFor, promptTokens, taskRandom } from './common.js';

/** tasks.py FWE_TEMPLATES['heldout'][0]. */
export const FWE_TEMPLATE = {
  intro: 'Read the following coded text and track the frequency of each coded word. Find the three most frequently appeared coded words.',
  q: "Question: Do not provide any explanation. Please ignore the dots '....'. What are the three most frequently appeared words in the above coded text?",
};

const ALPHA = 2;

function codedWord(rng: Random): string {
  const n = 3 + Math.floor(rng.next() * 4);
  return Array.from({ length: n }, () => String.fromCharCode(97 + Math.floor(rng.next() * 26))).join('');
}

/** The coded text of about nWords words and its top three (tasks.py gen_fwe). */
export function codedText(rng: Random, nWords: number): { body: string; top: string[]; counts: number[] } {
  nWords = Math.max(30, nWords);
  const nVocab = Math.max(8, Math.min(200, Math.floor(nWords / 5)));
  const vocab: string[] = [];
  while (vocab.length < nVocab) {
    const w = codedWord(rng);
    if (!vocab.includes(w)) vocab.push(w);
  }
  let zeta = 0;
  for (let i = 0; i < nVocab; i++) zeta += 1 / (i + 1) ** ALPHA;
  const counts = vocab.map((_, r) => Math.max(1, Math.floor(nWords / (r + 1) ** ALPHA / zeta)));
  counts[0] = Math.max(counts[0], 6);
  for (let r = 1; r < 3; r++) counts[r] = Math.max(3 - r, Math.min(counts[r], counts[r - 1] - Math.max(1, Math.floor(counts[r - 1] / 5))));
  for (let r = 3; r < nVocab; r++) counts[r] = Math.max(1, Math.min(counts[r], counts[2] - Math.max(1, Math.floor(counts[2] / 5))));
  const words = shuffle(rng, vocab.flatMap((w, r) => Array<string>(counts[r]).fill(w)));
  const body = words.map((w, i) => (i % 20 === 19 ? `${w} ....` : w)).join(' ');
  return { body, top: vocab.slice(0, 3), counts };
}

export const fwe: TaskGenerator = {
  name: 'fwe',
  description: 'frequent words extraction: the 3 most frequent coded words of a Zipf text (RULER freq_words_extraction)',
  hasDepth: false,
  generate({ seed, contextLength, tokenizer }) {
    const build = (n: number) => {
      const { body, top } = codedText(taskRandom('fwe', seed, 'content'), n);
      return { parts: assemble(FWE_TEMPLATE.intro, body, FWE_TEMPLATE.q), top };
    };
    // About 2.7 tokens per coded word with its space and the dots.
    const fit = fitLength(contextLength, contextLength, build, (v) => promptTokens(tokenizer, v.parts), (n) => 2.7 * n, 'fwe');
    const { parts, top } = fit.value;
    return {
      task: 'fwe',
      contextLength,
      seed,
      ...parts,
      answers: top,
      metric: 'all',
      maxNewTokens: newTokensFor(tokenizer, top.join(' ')),
    };
  },
};
