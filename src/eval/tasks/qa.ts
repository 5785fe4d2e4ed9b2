/**
 * Question answering over held-out documents, in the shape of RULER's `qa` task (NVIDIA/RULER
 * scripts/data/synthetic/qa.py: a gold paragraph that answers the question among distractor paragraphs, RULER's
 * qa template, metric string_match_part), with questions made from the documents themselves instead of SQuAD /
 * HotpotQA, which attend-mini's held-out split does not have.
 *
 * Design: the documents are excerpts of the held-out CIA World Factbook country documents (data/heldout; 26
 * countries, never seen in training). A Factbook section is a list of `Field: value` lines, so a question with a
 * checkable answer comes from one line: "Population: 19,625,353" → "What is the population of Angola?", answer
 * "19,625,353". Only numeric fields that occur once in the country's document and whose number has 3+ characters
 * are asked (QA_FIELDS); the answer is the number as written (and without thousands separators). The gold
 * excerpt (the country's title, the section name and 6 lines of the section around the field) is placed at
 * `depth` among distractor excerpts of OTHER countries, half of them around the same field: the distractors hold
 * the same kind of fact with other values, so answering means finding the right country, not the only number.
 * The answer is correct by construction (read from the document), appears in the gold excerpt only (distractor
 * excerpts that contain it are skipped), and is edition-specific (2015 estimates and the like), so parametric knowledge helps little; attend-mini has none.
 */
import { AttendError } from '../../errors.js';
import type { Random } from '../../generate/random.js';
import { choice, type HeldoutDocument, heldoutCorpus, randInt } from '../haystack.js';
import type { TaskGenerator } from '../types.js';
import { assemble, fitHaystack, newTokensFor, promptTokens, taskRandom, words } from './common.js';

/** RULER's qa template: the instruction before the documents, and again before the question. */
export const QA_INSTRUCTION = 'Answer the question based on the given documents. Only give me the answer and do not output any other words.';
const QA_INTRO = `${QA_INSTRUCTION}\n\nThe following are given documents.`;

/** The fields asked, with their question ({country} is the document's title). */
export const QA_FIELDS: Readonly<Record<string, string>> = {
  Population: 'What is the population of {country}?',
  Coastline: 'How long is the coastline of {country}?',
  'Irrigated land': 'How much irrigated land does {country} have?',
  Airports: 'How many airports does {country} have?',
  'Population growth rate': 'What is the population growth rate of {country}?',
  'Birth rate': 'What is the birth rate of {country}?',
  'Death rate': 'What is the death rate of {country}?',
  'Total fertility rate': 'What is the total fertility rate of {country}?',
  'Labor force': 'How large is the labor force of {country}?',
};

const EXCERPT_LINES = 6;
/** Longer lines (long prose fields) are left out of excerpts, to keep excerpts short and the fitting fine. */
const MAX_LINE = 160;

interface Section {
  header: string;
  lines: string[];
}

interface Country {
  doc: HeldoutDocument;
  sections: Section[];
}

interface Fact {
  country: number;
  section: number;
  line: number;
  field: string;
  answer: string;
}

/** The leading number of a field value ("1,600 km" → "1,600"), when it has 3 characters or more. */
export function leadingNumber(value: string): string | undefined {
  const m = /^-?\d[\d,]*(?:\.\d+)?/.exec(value);
  return m && m[0].length >= 3 ? m[0] : undefined;
}

let cached: { countries: Country[]; facts: Fact[] } | undefined;

function factbook(): { countries: Country[]; facts: Fact[] } {
  if (cached) return cached;
  const countries = heldoutCorpus(['factbook']).docs.map((doc): Country => {
    const [title, ...rest] = doc.text.split('\n\n');
    const sections = rest.map((block) => {
      const [name, ...lines] = block.split('\n');
      return { header: `${title.trim()}\n${name}`, lines: lines.filter((l) => l.trim() && l.length <= MAX_LINE) };
    });
    return { doc, sections: sections.filter((s) => s.lines.length > 0) };
  });
  const facts: Fact[] = [];
  countries.forEach((c, ci) => {
    for (const field of Object.keys(QA_FIELDS)) {
      if (c.doc.text.split('\n').filter((l) => l.startsWith(`${field}: `)).length !== 1) continue;
      c.sections.forEach((s, si) => s.lines.forEach((l, li) => {
        const answer = l.startsWith(`${field}: `) ? leadingNumber(l.slice(field.length + 2)) : undefined;
        if (answer) facts.push({ country: ci, section: si, line: li, field, answer });
      }));
    }
  });
  if (facts.length === 0) throw new AttendError('qa: no facts in the held-out Factbook documents');
  return (cached = { countries, facts });
}

/** Where a country's document has the line of `field`. */
function find(c: Country, field: string): { section: Section; line: number } | undefined {
  for (const section of c.sections) {
    const line = section.lines.findIndex((l) => l.startsWith(`${field}: `));
    if (line >= 0) return { section, line };
  }
  return undefined;
}

/** Up to EXCERPT_LINES lines of a section around line `at` (a random window when `at` is undefined). */
function window(rng: Random, s: Section, at?: number): string[] {
  const n = Math.min(EXCERPT_LINES, s.lines.length);
  const max = s.lines.length - n;
  const start = at === undefined ? randInt(rng, max + 1) : Math.max(0, Math.min(max, at - randInt(rng, n)));
  return s.lines.slice(start, start + n);
}

/** One line of a distractor excerpt; the first line of each excerpt carries its header. */
interface Unit {
  excerpt: number;
  header: string;
  line: string;
}

export const qa: TaskGenerator = {
  name: 'qa',
  description: 'question answering over held-out World Factbook excerpts, the gold among distractors (RULER qa)',
  hasDepth: true,
  generate({ seed, contextLength, depth, tokenizer }) {
    const { countries, facts } = factbook();
    const rng = taskRandom('qa', seed, 'content');
    const fact = choice(rng, facts);
    const gold = countries[fact.country];
    const goldSection = gold.sections[fact.section];
    const goldDoc = `${goldSection.header}\n${window(rng, goldSection, fact.line).join('\n')}`;
    const question = `${QA_INSTRUCTION}\n\nQuestion: ${QA_FIELDS[fact.field].replace('{country}', gold.doc.title)}`;
    const d = depth ?? rng.next();
    const others = countries.filter((c) => c !== gold);

    const supply = (nchars: number): Unit[] => {
      const hr = taskRandom('qa', seed, 'haystack');
      const units: Unit[] = [];
      for (let total = 0, excerpt = 0; total < nchars; excerpt++) {
        const c = choice(hr, others);
        const same = hr.next() < 0.5 ? find(c, fact.field) : undefined;
        const s = same ? same.section : choice(hr, c.sections);
        const lines = window(hr, s, same?.line);
        if (lines.some((l) => l.includes(fact.answer))) continue; // the answer is in the gold excerpt only
        for (const line of lines) {
          units.push({ excerpt, header: s.header, line });
          total += line.length + 1;
        }
        total += s.header.length + 16;
      }
      return units;
    };
    const build = (units: Unit[]) => {
      const docs: string[] = [];
      units.forEach((u, i) => {
        if (i === 0 || units[i - 1].excerpt !== u.excerpt) docs.push(u.header);
        docs[docs.length - 1] += `\n${u.line}`;
      });
      docs.splice(Math.round(d * docs.length), 0, goldDoc);
      return assemble(QA_INTRO, docs.map((doc, i) => `Document ${i + 1}:\n${doc}`).join('\n\n'), question);
    };
    const fit = fitHaystack(contextLength, supply, build, (p) => promptTokens(tokenizer, p), 'qa', (u) => u.line.length + 1, {
      pieces: (u) => words(u.line).length,
      take: (u, k) => ({ ...u, line: words(u.line).slice(0, k).join('').trimEnd() }),
    });
    const answers = fact.answer.includes(',') ? [fact.answer, fact.answer.replaceAll(',', '')] : [fact.answer];
    return {
      task: 'qa',
      contextLength,
      ...(depth !== undefined ? { depth } : {}),
      seed,
      ...fit.value,
      answers,
      metric: 'part',
      maxNewTokens: newTokensFor(tokenizer, fact.answer),
    };
  },
};
