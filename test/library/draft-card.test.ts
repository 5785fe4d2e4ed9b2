/**
 * The draft model's card must say how to use it for speculative decoding with the command that exists, and its
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

test('the draft card names the command that runs speculative decoding, and no promise of a later one', () => {
  assert.ok(speculative.length > 0);
  assert.ok(speculative.some((p) => p.includes('attend generate --draft models/attend-mini-draft')), speculative.join('\n'));
  for (const p of speculative) assert.doesNotMatch(p, /not implement|once Attend implements|later issue/, p);
  // The flag the card names exists.
  assert.match(readFileSync(join(ROOT, 'src', 'cli', 'generate.ts'), 'utf8'), /\.option\('--draft <dir>'/);
});

test('tools/train/card.py writes the same wording', () => {
  for (const p of speculative) assert.ok(generator.includes(p), `card.py does not write:\n${p}`);
});
