/**
 * Hand cases for RULER's string match (src/eval/scoring.ts): string_match_all is the fraction of the references
 * found in the prediction, string_match_part is 1 when any is, both case-insensitive, after RULER's
 * postprocess_pred (strip; control characters become newlines).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AttendError } from '../../src/errors.js';
import { perplexityOf, postprocess, score, scoreAll, scorePart } from '../../src/eval/scoring.js';

test('string_match_all: the fraction of the answers found', () => {
  assert.equal(scoreAll(' 1234567', ['1234567']), 1);
  assert.equal(scoreAll('The number is 7654321.', ['1234567']), 0);
  assert.equal(scoreAll('1111111, 2222222 and 4444444', ['1111111', '2222222', '3333333', '4444444']), 0.75);
  assert.equal(scoreAll('2222222', ['1111111', '2222222']), 0.5);
  // Order does not matter, repeats count once.
  assert.equal(scoreAll('BBBBB AAAAA BBBBB', ['AAAAA', 'BBBBB', 'CCCCC', 'DDDDD']), 0.5);
  // Substring match: a longer number containing the answer counts (RULER's `r in pred`).
  assert.equal(scoreAll('912345678', ['1234567']), 1);
});

test('string_match_part: 1 when any answer is found', () => {
  assert.equal(scorePart('about 19,625,353 people', ['19,625,353', '19625353']), 1);
  assert.equal(scorePart('19625353', ['19,625,353', '19625353']), 1);
  assert.equal(scorePart('19.6 million', ['19,625,353', '19625353']), 0);
  assert.equal(scorePart('', ['x']), 0);
});

test('both are case-insensitive', () => {
  assert.equal(scoreAll('ABC-DEF', ['abc-def']), 1);
  assert.equal(scoreAll('abc-def', ['ABC-DEF']), 1);
  assert.equal(scorePart('Fij OVVAB', ['fij', 'zzz']), 1);
  assert.equal(scoreAll('Fij OVVAB', ['fij', 'ovvab', 'mibmd']), 2 / 3);
});

test('postprocess: strip, control characters to newlines', () => {
  assert.equal(postprocess('  12\t34 \n'), '12\n34');
  assert.equal(postprocess('\x00\x1f ok \x07'), 'ok');
  // A tab inside an answer is not a tab any more, as in RULER.
  assert.equal(scoreAll('12\t34', ['12\t34']), 0);
  assert.equal(scoreAll('a\x01b', ['a\nb']), 1);
});

test('score follows the instance metric; no answers is an error', () => {
  assert.equal(score({ answers: ['a', 'b'], metric: 'all' }, 'a'), 0.5);
  assert.equal(score({ answers: ['a', 'b'], metric: 'part' }, 'a'), 1);
  assert.throws(() => scoreAll('x', []), AttendError);
  assert.throws(() => scorePart('x', []), AttendError);
});

test('perplexityOf', () => {
  assert.equal(perplexityOf(0, 10), 1);
  assert.ok(Math.abs(perplexityOf(10 * Math.log(20), 10) - 20) < 1e-9);
  assert.throws(() => perplexityOf(1, 0), AttendError);
});
