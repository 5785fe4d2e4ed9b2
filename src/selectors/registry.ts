/** The selectors, by name: one file each plus one line here. */
import { AttendError } from '../errors.js';
import { LongHeadsSelector } from './longheads.js';
import { QuestSelector } from './quest.js';
import { RecycledAttentionSelector } from './recycled-attention.js';
import { RetrievalAttentionSelector } from './retrieval-attention.js';
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
  longheads: {
    summary: 'each head reads the first chunk, the last ones and the chunks whose summary best meets its query, remapped side by side inside the trained length (prefill and decoding)',
    source: 'Lu et al. 2024 (arXiv 2402.10685); LuLuLuyi/LongHeads',
    options: {
      budget: "tokens each head reads, atten_length L (default the model's trained length in whole chunks)",
      window: 'positions per chunk, window_size (256)',
      begin: 'sequence length from which heads select, begin_selective_length (default L)',
    },
    make: (o) => new LongHeadsSelector(o),
  },
  'retrieval-attention': {
    summary: 'each query head reads the first and the most recent entries, and the top-k of the others by q·k found in a vector index per KV head, built with the prefill queries (attention-aware, RoarGraph-style)',
    source: 'Liu et al. 2024 (arXiv 2409.10516); microsoft/RetrievalAttention (index: matchyc/RoarGraph)',
    options: {
      budget: 'entries retrieved from the index per query head and step, top-k (100); the step reads sinks + window + budget',
      sinks: 'first entries always read (128)',
      window: 'last entries always read (512)',
      baseline: '1: a standard HNSW index on the keys alone from usearch (optional dependency) instead (0)',
      nq: 'index: nearest keys linked per prefill query (100)',
      degree: 'index: projection out-degree M (35)',
      buildList: 'index: candidate list of the build searches L (500)',
      searchList: 'candidate list of a decoding search (100; at least budget; the baseline: expansion_search)',
      trainQueries: 'index: at most this many prefill queries per KV head, the latest (0: all)',
      denseLayers: 'first layers at full attention (0)',
    },
    make: (o) => new RetrievalAttentionSelector(o),
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
