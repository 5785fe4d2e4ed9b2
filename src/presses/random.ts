/** Random (baseline, as kvpress's RandomPress): uniform scores from a seeded generator. */
import { Random } from '../generate/random.js';
import type { LayerView, Press } from './press.js';

export class RandomPress implements Press {
  readonly name = 'random';
  readonly needs = {};
  private readonly random: Random;

  constructor(readonly options: { seed: number } = { seed: 0 }) {
    this.random = new Random(options.seed);
  }

  score(view: LayerView): Float32Array[] {
    return view.cache.heads.map((head) => Float32Array.from({ length: head.length }, () => this.random.next()));
  }
}
