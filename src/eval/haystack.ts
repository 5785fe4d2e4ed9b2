/**
 * Haystacks of `attend bench`: real text held out from attend-mini's training, and the held-out noise.
 *
 * - The held-out documents are `data/heldout/heldout.jsonl.gz` (lines `{id, source, title, text}`; split rule in
 *   data/split.json, sources in data/SOURCES.md), read once and cached.
 * - Port of the haystack side of tools/train/tasks.py, so that the benchmark builds prompts the way attend-mini's
 *   held-out evaluation did: `splitUnits` (sentence / line units that keep their trailing whitespace),
 *   `Corpus.haystack` (runs of units from random documents, each run starting at a paragraph start and ending in a
 *   blank line), `noiseUnits` (the Landmark-attention noise "The grass is green. ...", held out from training:
 *   training used other noise sentences) and `insertAt` (needles between units at relative depths, here measured
 *   in characters).
 * - Real-text haystacks use the prose sources (Brown, KJV Bible, Devil's Dictionary: `HAYSTACK_SOURCES`, like
 *   RULER's essays); other uses pass their own source filter.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { AttendError } from '../errors.js';
import type { Random } from '../generate/random.js';

export interface HeldoutDocument {
  id: string;
  source: string;
  title: string;
  text: string;
}

export const HELDOUT_PATH = join(import.meta.dirname, '..', '..', 'data', 'heldout', 'heldout.jsonl.gz');

/** Sources of the real-text needle haystacks (tasks.py's EVAL_HAYSTACK_SOURCES). */
export const HAYSTACK_SOURCES: readonly string[] = ['brown', 'bible', 'devil'];

/** The held-out noise haystack (tasks.py NOISE['heldout']), repeated. */
export const HELDOUT_NOISE = 'The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.';

const loaded = new Map<string, HeldoutDocument[]>();

/** Every held-out document, sorted by id; read on first use and cached. */
export function heldoutDocuments(path = HELDOUT_PATH): readonly HeldoutDocument[] {
  let docs = loaded.get(path);
  if (!docs) {
    let text: string;
    try {
      text = gunzipSync(readFileSync(path)).toString('utf8');
    } catch (e) {
      throw new AttendError(`${path}: cannot read the held-out documents (${e instanceof Error ? e.message : String(e)})`);
    }
    docs = text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as HeldoutDocument);
    docs.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    loaded.set(path, docs);
  }
  return docs;
}

/** A uniform integer in [0, n). */
export function randInt(rng: Random, n: number): number {
  return Math.floor(rng.next() * n);
}

export function choice<T>(rng: Random, items: readonly T[]): T {
  return items[randInt(rng, items.length)];
}

/** Fisher–Yates, in place. */
export function shuffle<T>(rng: Random, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randInt(rng, i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

/** Units (sentences after . ! ? ; : and lines) that keep their trailing whitespace: units.join('') === text. */
export function splitUnits(text: string): string[] {
  const units: string[] = [];
  let pos = 0;
  for (const m of text.matchAll(/(?<=[.!?;:])\s+|\n+/g)) {
    const end = m.index + m[0].length;
    if (end > pos) units.push(text.slice(pos, end));
    pos = end;
  }
  if (pos < text.length) units.push(text.slice(pos));
  return units;
}

/** The held-out documents of some sources, as haystack material. */
export class Corpus {
  readonly docs: readonly HeldoutDocument[];
  private readonly unitCache = new Map<number, string[]>();

  constructor(docs: readonly HeldoutDocument[], sources?: readonly string[]) {
    this.docs = docs.filter((d) => !sources || sources.includes(d.source));
    if (this.docs.length === 0) throw new AttendError(`no held-out documents from ${sources?.join(', ')}`);
  }

  units(i: number): string[] {
    let u = this.unitCache.get(i);
    if (!u) this.unitCache.set(i, (u = splitUnits(this.docs[i].text)));
    return u;
  }

  /**
   * About `nchars` characters of units, each ending in whitespace: runs from random documents, each from a random
   * paragraph start to the end of the document (or of the haystack), closed by a blank line (tasks.py
   * Corpus.haystack).
   */
  haystack(rng: Random, nchars: number): string[] {
    const out: string[] = [];
    let total = 0;
    while (total < nchars) {
      const u = this.units(randInt(rng, this.docs.length));
      const starts = [0];
      for (let j = 1; j < u.length; j++) if (u[j - 1].endsWith('\n')) starts.push(j);
      for (let j = choice(rng, starts); j < u.length && total < nchars; j++) {
        const s = /\s$/.test(u[j]) ? u[j] : u[j] + ' ';
        out.push(s);
        total += s.length;
      }
      if (out.length > 0 && !out[out.length - 1].endsWith('\n\n')) {
        out[out.length - 1] = out[out.length - 1].trimEnd() + '\n\n';
        total += 1;
      }
    }
    return out;
  }
}

const corpora = new Map<string, Corpus>();

/** The cached corpus of the held-out documents of `sources` (default: the needle haystack sources; null: all). */
export function heldoutCorpus(sources: readonly string[] | null = HAYSTACK_SOURCES): Corpus {
  const key = JSON.stringify(sources);
  let c = corpora.get(key);
  if (!c) corpora.set(key, (c = new Corpus(heldoutDocuments(), sources ?? undefined)));
  return c;
}

/** The held-out noise sentences repeated to at least `nchars` characters (tasks.py noise_units). */
export function noiseUnits(nchars: number): string[] {
  const sentences = HELDOUT_NOISE.split(/(?<=\.) /).map((s) => s + ' ');
  const out: string[] = [];
  for (let total = 0; total < nchars; ) {
    for (const s of sentences) {
      out.push(s);
      total += s.length;
    }
  }
  return out;
}

/** A needle sentence and its relative depth: 0 before the first unit, 1 after the last. */
export interface Needle {
  depth: number;
  text: string;
}

/**
 * Inserts the needles between units (each needle followed by a space), at the unit boundary nearest to `depth` of
 * the haystack's characters. (tasks.py insert_at places at round(depth · units); by characters the depth stays
 * true when a haystack mixes documents of short and long sentences.)
 */
export function insertAt(units: readonly string[], needles: readonly Needle[]): string[] {
  const cum = [0];
  for (const u of units) cum.push(cum[cum.length - 1] + u.length);
  const total = cum[cum.length - 1];
  const boundary = (depth: number) => {
    const target = Math.max(0, Math.min(1, depth)) * total;
    let lo = 0;
    let hi = units.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cum[mid] < target) lo = mid + 1;
      else hi = mid;
    }
    return lo > 0 && target - cum[lo - 1] <= cum[lo] - target ? lo - 1 : lo;
  };
  const out = [...units];
  // Deepest first so that the indices of shallower needles stay valid; needles at the same place keep their order.
  const order = needles.map((x, i) => ({ ...x, i, at: boundary(x.depth) })).sort((a, b) => b.at - a.at || b.i - a.i);
  for (const { at, text } of order) out.splice(at, 0, text + ' ');
  return out;
}
