/**
 * Records, while the model runs, what presses declared they need: a ring of each layer's most recent queries,
 * and per entry the attention it received (sum, and how many query rows contributed) kept as head statistics
 * so that they move with the entries when a head is compacted.
 */
import type { AttentionBlock, AttentionObserver } from '../backend/backend.js';
import type { KVCache } from '../cache/kv-cache.js';
import type { PressNeeds, QueryWindow } from './press.js';

export const ATTENTION_SUM = 'attention-sum';
export const ATTENTION_COUNT = 'attention-count';

export class PressRecorder implements AttentionObserver {
  private readonly windows: QueryWindow[] = [];
  readonly observe?: (block: AttentionBlock) => void;

  constructor(
    private readonly cache: KVCache,
    private readonly needs: PressNeeds,
    private readonly width: number,
  ) {
    if (needs.attention) this.observe = (block) => this.accumulate(block);
  }

  queries(layer: number, q: Float32Array, positions: Int32Array): void {
    const w = this.needs.queryWindow ?? 0;
    if (w <= 0) return;
    const old = this.windows[layer] ?? { data: new Float32Array(0), positions: new Int32Array(0) };
    const rows = Math.min(w, old.positions.length + positions.length);
    const fromNew = Math.min(rows, positions.length);
    const fromOld = rows - fromNew;
    const data = new Float32Array(rows * this.width);
    const pos = new Int32Array(rows);
    data.set(old.data.subarray((old.positions.length - fromOld) * this.width));
    pos.set(old.positions.subarray(old.positions.length - fromOld));
    data.set(q.subarray((positions.length - fromNew) * this.width, positions.length * this.width), fromOld * this.width);
    pos.set(positions.subarray(positions.length - fromNew), fromOld);
    this.windows[layer] = { data, positions: pos };
  }

  window(layer: number): QueryWindow | undefined {
    return this.windows[layer];
  }

  private accumulate(block: AttentionBlock): void {
    const head = this.cache.layers[block.layer].heads[block.kvHead];
    const sum = head.stat(ATTENTION_SUM);
    const count = head.stat(ATTENTION_COUNT);
    const { probs, cols, groupSize, queryPositions } = block;
    const entryPositions = head.positions;
    for (let t = 0; t < queryPositions.length; t++) {
      for (let j = 0; j < groupSize; j++) {
        const row = probs.subarray((t * groupSize + j) * cols, (t * groupSize + j + 1) * cols);
        for (let i = 0; i < cols; i++) sum[i] += row[i];
      }
      // A query row counts for every entry it could see (probabilities are zero beyond).
      const visible = head.visibleUpTo(queryPositions[t]);
      for (let i = 0; i < Math.min(visible, cols, entryPositions.length); i++) count[i] += groupSize;
    }
  }
}
