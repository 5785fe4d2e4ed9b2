/**
 * Perplexity on long held-out documents (data/heldout, every source, as in attend-mini's model card), for methods
 * that run unbounded: the sweep runner streams the text through the model chunk by chunk, compressing as it goes.
 * The text starts at the beginning of a held-out document picked by the seed and goes on with whole documents in
 * a seeded order (each closed by a blank line) until it has at least `contextLength` tokens (with BOS); it ends at
 * a sentence / line boundary just past that, so the runner's `encode(text).slice(0, contextLength)` is exactly
 * `contextLength` tokens of real text. (All held-out documents together are ~0.83 M attend-mini tokens; a longer
 * contextLength gets all of them.)
 */
import { heldoutCorpus, randInt, shuffle, splitUnits } from '../haystack.js';
import type { PerplexityInstance, TaskGenerator } from '../types.js';
import { charWeights, fitLength, taskRandom } from './common.js';

/** Units of the documents in the seed's order, each document closed by a blank line, up to `nchars` characters. */
function documentUnits(seed: number, nchars: number): string[] {
  const { docs } = heldoutCorpus(null);
  const rng = taskRandom('perplexity', seed, 'content');
  const first = randInt(rng, docs.length);
  const order = [first, ...shuffle(rng, docs.map((_, i) => i).filter((i) => i !== first))];
  const units: string[] = [];
  for (let k = 0, chars = 0; k < order.length && chars < nchars; k++) {
    const u = splitUnits(docs[order[k]].text);
    u[u.length - 1] = u[u.length - 1].trimEnd() + '\n\n';
    units.push(...u);
    chars += docs[order[k]].text.length;
  }
  return units;
}

export const perplexity: TaskGenerator = {
  name: 'perplexity',
  description: 'perplexity over contextLength tokens of held-out documents (all sources), streamed',
  hasDepth: false,
  generate({ seed, contextLength, tokenizer }): PerplexityInstance {
    const units = documentUnits(seed, contextLength * 8);
    const count = (n: number) => tokenizer.encode(units.slice(0, n).join('')).length;
    // The longest prefix within the length (to 1%), then whole units until the length is reached.
    let { n, tokens } = fitLength(contextLength, units.length, (m) => m, count, charWeights(units, (s) => s.length), 'perplexity');
    while (tokens < contextLength && n < units.length) {
      for (let need = (contextLength - tokens + 8) * 4; need > 0 && n < units.length; n++) need -= units[n].length;
      tokens = count(n);
    }
    return { task: 'perplexity', contextLength, seed, text: units.slice(0, n).join('') };
  },
};
