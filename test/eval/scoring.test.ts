/**
 * Hand cases for the string match of src/eval/scoring.ts: string_match_all is the fraction of the references
 * found in the prediction, string_match_part is 1 when any is, both case-insensitive, after RULER's
 * postprocess_pred (strip; control characters become newlines), and an answer counts only as a whole token (no
 * letter or digit right before or after it). The Wilson interval against published values.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AttendError } from '../../src/errors.js';
import { containsWhole, perplexityOf, postprocess, score, scoreAll, scorePart, wilson } from '../../src/eval/scoring.js';

test('string_match_all: the fraction of the answers found', () => {
  assert.equal(scoreAll(' 1234567', ['1234567']), 1);
  assert.equal(scoreAll('The number is 7654321.', ['1234567']), 0);
  assert.equal(scoreAll('1111111, 2222222 and 4444444', ['1111111', '2222222', '3333333', '4444444']), 0.75);
  assert.equal(scoreAll('2222222', ['1111111', '2222222']), 0.5);
  // Order does not matter, repeats count once.
  assert.equal(scoreAll('BBBBB AAAAA BBBBB', ['AAAAA', 'BBBBB', 'CCCCC', 'DDDDD']), 0.5);
});

test('strict: the answer must be a whole token, not part of a runaway number or word', () => {
  // The SnapKV "success" of issue 9: the needle followed by more digits is another number, not the needle.
  // RULER's plain substring test (`r in pred`) would score these 1; loosening the rule fails here.
  assert.equal(scoreAll(' 4011696666666666666', ['4011696']), 0);
  assert.equal(scoreAll('912345678', ['1234567']), 0);
  assert.equal(scoreAll('x4011696', ['4011696']), 0);
  assert.equal(scoreAll('ab-defg', ['ab-def']), 0);
  assert.equal(scoreAll('Number 40116960.', ['4011696']), 0);
  // Punctuation, spaces and line breaks delimit it.
  assert.equal(scoreAll(' 4011696.', ['4011696']), 1);
  assert.equal(scoreAll(' 4011696\nThe special magic number', ['4011696']), 1);
  assert.equal(scoreAll('(4011696)', ['4011696']), 1);
  assert.equal(scoreAll('The number is 4011696, as stated.', ['4011696']), 1);
  // A later whole occurrence counts even after a runaway one.
  assert.equal(scoreAll('40116966 or 4011696', ['4011696']), 1);
  // Letters of any script are word characters.
  assert.equal(containsWhole('éfij', 'fij'), false);
  assert.equal(containsWhole('', ''), false);
});

test('string_match_part: 1 when any answer is found', () => {
  assert.equal(scorePart('about 19,625,353 people', ['19,625,353', '19625353']), 1);
  assert.equal(scorePart('19625353', ['19,625,353', '19625353']), 1);
  assert.equal(scorePart('19.6 million', ['19,625,353', '19625353']), 0);
  assert.equal(scorePart('119,625,353', ['19,625,353']), 0);
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

test('wilson: the 95% score interval', () => {
  const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 5e-4, `${a} vs ${b}`);
  // Worked values (Newcombe 1998, table I, method 3: 81/263 → 0.2553–0.3662; 15/148 → 0.0624–0.1605).
  let w = wilson(81, 263);
  close(w.lo, 0.2553);
  close(w.hi, 0.3662);
  w = wilson(15, 148);
  close(w.lo, 0.0624);
  close(w.hi, 0.1605);
  // 24/24: [0.862, 1]; 0/10: [0, 0.278].
  w = wilson(24, 24);
  close(w.lo, 0.8619);
  assert.equal(w.hi, 1);
  w = wilson(0, 10);
  assert.equal(w.lo, 0);
  close(w.hi, 0.2775);
  // n = 40 keeps every proportion within ±15 points; n = 30 does not at one half.
  for (let k = 0; k <= 40; k++) assert.ok(wilson(k, 40).hi - wilson(k, 40).lo < 0.3, `k=${k}`);
  assert.ok(wilson(15, 30).hi - wilson(15, 30).lo > 0.3);
  assert.deepEqual(wilson(0, 0), { lo: 0, hi: 0 });
});
