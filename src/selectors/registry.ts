/** The selectors, by name: one file each plus one line here. */
import { AttendError } from '../errors.js';
import { QuestSelector } from './quest.js';
import { RecycledAttentionSelector } from './recycled-attention.js';
import type { Selector } from './selector.js';
import { TidalDecodeSelector } from './tidal-decode.js';

interface SelectorEntry {
  summary: string;
  source: string;
  options: Record<string, string>;
  make(options: Record<string, number>): Selector;
}

export const SELECTORS: Record<string, SelectorEntry> = {
  quest: {
    summary: 'per page of 16 keys, channel min/max; each decoding step reads the pages with the highest query bound',
    source: 'Tang et al. 2024; mit-han-lab/Quest',
    options: { budget: 'tokens read per query head (default 1024)', page: 'entries per page (16)', denseLayers: 'first layers at full attention (2)' },
    make: (o) => new QuestSelector(o),
  },
  'tidal-decode': {
    summary: 'full attention in the first layers and in a few token-selection layers, each keeping per query head its top-k positions; the layers between read only those',
    source: 'Yang et al. 2024 (arXiv 2410.05076); DerrickYLJ/TidalDecode',
    options: {
      budget: 'positions read per query head (default 256)',
      denseLayers: 'first layers at full attention; the next is the first selection layer (2)',
      reselectLayer: 'token re-selection layer (13 of 32 layers; default scaled by depth, 5 of 8; ≤ denseLayers: none)',
    },
    make: (o) => new TidalDecodeSelector(o),
  },
  'recycled-attention': {
    summary: 'every S steps a full-attention step keeps the top-K entries of each KV head; the steps between read only those and the new tokens',
    source: 'Xu, Goyal & Choi 2024 (arXiv 2411.05787); no official code published',
    options: {
      budget: 'entries read per KV head, K (default 4096)',
      stride: 'S: steps between full steps, or between query checks with dynamic=1 (50; 5 with dynamic=1)',
      dynamic: '1: a full step when the query drifts below the threshold (0)',
      threshold: 'with dynamic=1: query cosine similarity to the last full step below which a full step runs (0.8)',
    },
    make: (o) => new RecycledAttentionSelector(o),
  },
};

export function createSelector(name: string, options: Record<string, number> = {}): Selector {
  const entry = SELECTORS[name];
  if (!entry) throw new AttendError(`unknown selector '${name}' (known: ${Object.keys(SELECTORS).join(', ')})`);
  for (const key of Object.keys(options)) {
    if (!(key in entry.options)) throw new AttendError(`selector ${name} has no option '${key}' (options: ${Object.keys(entry.options).join(', ')})`);
  }
  return entry.make(options);
}

export type { Selector, SelectorView, SelectionStats } from './selector.js';
export { SelectionSession } from './selector.js';
