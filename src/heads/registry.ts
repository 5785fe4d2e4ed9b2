/** The head probes of `attend heads`, by name: one file each plus one block here. */
import { AttendError } from '../errors.js';
import { runEchoInduction } from './echo-induction.js';
import type { HeadProbe } from './probe.js';
import { retrievalScores } from './retrieval-score.js';
import { runSinks } from './sinks.js';

export const PROBES: Record<string, HeadProbe> = {
  retrieval: {
    summary: 'how often a head copies the needle\'s answer token it attends to most while the model decodes a needle-in-a-haystack answer; retrieval heads score > 0.1',
    source: 'Wu et al. 2024 (arXiv 2404.15574); nightdessert/Retrieval_Head',
    run: (lm, options) => retrievalScores(lm, options),
  },
  echo: {
    summary: 'attention a token of a repeated random-token block gives to its earlier occurrences; RazorAttention keeps the top 1% of KV heads (threshold: best KV head left out)',
    source: 'Tang et al. 2024 (arXiv 2407.15891), no official code; Huawei msModelSlim RARopeCompressor',
    run: (lm, options) => runEchoInduction(lm, options).echo,
  },
  induction: {
    summary: 'attention a token of a repeated random-token block gives to the token after its earlier occurrences; RazorAttention keeps the top 14% of KV heads (threshold: best KV head left out)',
    source: 'Tang et al. 2024 (arXiv 2407.15891), no official code; Huawei msModelSlim RARopeCompressor',
    run: (lm, options) => runEchoInduction(lm, options).induction,
  },
  sinks: {
    summary: 'hidden attention sinks: a key whose mean received attention over the rows that see it exceeds 0.1, the first such key (the first token) left out; score: the strongest such key, over the built-in prompts',
    source: 'Yu et al. 2024 (ICML, arXiv 2406.15765); GATECH-EIC/ACT',
    run: (lm, options) => runSinks(lm, options),
  },
};

export function probeEntry(name: string): HeadProbe {
  const entry = PROBES[name];
  if (!entry) throw new AttendError(`unknown head probe '${name}' (known: ${Object.keys(PROBES).join(', ')})`);
  return entry;
}

export type { HeadProbe, HeadScores, ProbeOptions } from './probe.js';
