/** The selectors, by name: one file each plus one line here. */
import { AttendError } from '../errors.js';
import { QuestSelector } from './quest.js';
import type { Selector } from './selector.js';

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
