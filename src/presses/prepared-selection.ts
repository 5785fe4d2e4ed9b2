/**
 * For presses that choose across all layers at once, in their prepare step (KVzip, KVCompose, Fast KVzip, RestoreKV):
 * the selection of one compression, read back layer by layer through the press's score and select.
 */
import type { KVCache } from '../cache/kv-cache.js';
import { AttendError } from '../errors.js';
import type { LayerView } from './press.js';

export interface PreparedSelection {
  /** The cache's layers when it was prepared: a view of another cache is not this selection's. */
  layers: KVCache['layers'];
  scores: Float32Array[][];
  kept: Int32Array[][];
}

/**
 * The selection prepared for `view`'s layer; `refusal` (one line) when there is none for it, as when the press is
 * used as another press's scorer, outside the CompressionSession that runs its prepare step.
 */
export function preparedFor(p: PreparedSelection | undefined, view: LayerView, refusal: string): PreparedSelection {
  const fresh = p && p.layers[view.layer] === view.cache && p.scores[view.layer].every((s, h) => s.length === view.cache.heads[h].length);
  if (!fresh) throw new AttendError(refusal);
  return p!;
}
