import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StopStringFilter, unescapeStop } from '../../src/generate/stop.js';

test('text is held back while it may start a stop string, and cut at the stop', () => {
  const f = new StopStringFilter(['END']);
  assert.equal(f.push('hello E'), 'hello ');
  assert.equal(f.push('N'), '');
  assert.equal(f.push('Dless'), '');
  assert.ok(f.stopped);
  assert.equal(f.flush(), '');
});

test('a false start is released', () => {
  const f = new StopStringFilter(['END']);
  assert.equal(f.push('EN'), '');
  assert.equal(f.push('x'), 'ENx');
  assert.equal(f.push('tail E'), 'tail ');
  assert.equal(f.flush(), 'E');
});

test('the earliest of several stop strings wins', () => {
  const f = new StopStringFilter(['\n\n', 'User:']);
  assert.equal(f.push('a User: b\n\nc'), 'a ');
});

test('stop strings from a command line: \\n, \\t, \\r and \\\\ are unescaped, anything else is refused', () => {
  assert.equal(unescapeStop('\\n\\n'), '\n\n');
  assert.equal(unescapeStop('a\\tb\\r\\n'), 'a\tb\r\n');
  assert.equal(unescapeStop('\\\\n'), '\\n', 'an escaped backslash stays one backslash, followed by n');
  assert.equal(unescapeStop('User:'), 'User:');
  assert.equal(unescapeStop('\n'), '\n', 'a real newline passes through');
  assert.throws(() => unescapeStop('\\q'), /unknown escape \\q \(known: \\n, \\t, \\r, \\\\\)/);
  assert.throws(() => unescapeStop('end\\'), /ends in a lone backslash/);
  assert.throws(() => unescapeStop(''), /cannot be empty/);
});
