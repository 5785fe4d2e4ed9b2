/**
 * The draft model's card must not promise speculative decoding, which Attend does not implement yet, and its
 * generator (tools/train/card.py) must write the same words, so that a regenerated card agrees.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = join(import.meta.dirname, '..', '..');
const card = readFileSync(join(ROOT, 'models', 'attend-mini-draft', 'README.md'), 'utf8');
/** card.py with adjacent Python string literals joined, as Python joins them. */
const generator = readFileSync(join(ROOT, 'tools', 'train', 'card.py'), 'utf8').replace(/"\s*\n\s*"/g, '');

const paragraphs = card.split(/\n\s*\n/).map((p) => p.trim());
const speculative = paragraphs.filter((p) => /speculative/i.test(p));

test('the draft card says plainly that speculative decoding is not implemented yet', () => {
  assert.ok(speculative.length > 0);
  assert.ok(speculative.some((p) => p.includes('Attend does not implement speculative decoding yet')), speculative.join('\n'));
  for (const p of speculative) {
    for (const sentence of p.split(/(?<=\.)\s+/).filter((s) => /speculative/i.test(s))) {
      assert.match(sentence, /does not implement speculative decoding yet|once Attend implements it|draft of draft-based \(speculative\)/, sentence);
    }
  }
});

test('tools/train/card.py writes the same wording', () => {
  for (const p of speculative) assert.ok(generator.includes(p), `card.py does not write:\n${p}`);
});
