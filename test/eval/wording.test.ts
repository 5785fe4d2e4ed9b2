/**
 * The held-out wording tasks (src/eval/tasks/wording.ts): the pool is exactly what the training recipe's
 * materialize command writes from its evaluation specs, every length and depth has its instances, a cell's seed
 * picks distinct instances, the prompt splits at its last blank line with the value in the context (once) and
 * not in the question, prompts fit their length, and other lengths are refused with the lengths there are.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { AttendError } from '../../src/errors.js';
import { score } from '../../src/eval/scoring.js';
import { promptTokens } from '../../src/eval/tasks/common.js';
import { WORDING_EVAL_PATH, splitPrompt, wordingMultikey, wordingPasskey, wordingSingle } from '../../src/eval/tasks/wording.js';
import type { TaskInstance } from '../../src/eval/types.js';
import { TextTokenizer } from '../../src/io/tokenizer.js';

const ROOT = join(import.meta.dirname, '..', '..');
const tokenizer = TextTokenizer.load(join(ROOT, 'models', 'attend-mini'));
const LENGTHS = [2048, 4096, 8192];
const DEPTHS = [0, 0.25, 0.5, 0.75, 1];

test('the pool is the recipe evaluation set, rematerialized from data/heldout/eval_specs.jsonl', (t) => {
  const python = spawnSync('python3', ['--version']);
  if (python.status !== 0) return t.skip('python3 is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'attend-wording-'));
  try {
    const out = join(dir, 'pool.jsonl.gz');
    const r = spawnSync('python3', [join(ROOT, 'tools', 'train', 'tasks.py'), 'materialize', join(ROOT, 'data', 'heldout', 'eval_specs.jsonl'),
      out, '--tasks', 'para_single,para_multikey,para_passkey'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(gunzipSync(readFileSync(out)).toString('utf8'), gunzipSync(readFileSync(WORDING_EVAL_PATH)).toString('utf8'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every length (and depth) has its instances; seeds pick distinct ones, modulo the pool', () => {
  for (const contextLength of LENGTHS) {
    for (const depth of DEPTHS) {
      const got = Array.from({ length: 8 }, (_, seed) => wordingSingle.generate({ seed, contextLength, depth, tokenizer }) as TaskInstance);
      assert.equal(new Set(got.map((i) => i.context)).size, 8, `${contextLength} ${depth}`);
      assert.ok(got.every((i) => i.depth === depth));
      const again = wordingSingle.generate({ seed: 8, contextLength, depth, tokenizer }) as TaskInstance;
      assert.equal(again.context, got[0].context);
    }
    for (const task of [wordingMultikey, wordingPasskey]) {
      const got = Array.from({ length: 24 }, (_, seed) => task.generate({ seed, contextLength, tokenizer }) as TaskInstance);
      assert.equal(new Set(got.map((i) => i.context)).size, 24, `${task.name} ${contextLength}`);
    }
  }
});

test('prompts split at the last blank line, hold the value once in the context, fit their length', () => {
  for (const task of [wordingSingle, wordingMultikey, wordingPasskey]) {
    for (const contextLength of LENGTHS) {
      for (let seed = 0; seed < 6; seed++) {
        const inst = task.generate({ seed, contextLength, depth: task.hasDepth ? 0.5 : undefined, tokenizer }) as TaskInstance;
        const what = `${task.name} ${contextLength} ${seed}`;
        const [value] = inst.answers;
        assert.equal(inst.answers.length, 1, what);
        // Once as a whole token ('ember' may also sit inside 'December')
        const whole = new RegExp(`(?<![A-Za-z0-9])${value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![A-Za-z0-9])`, 'g');
        assert.equal([...inst.context.matchAll(whole)].length, 1, what);
        assert.ok(!inst.question.includes(value), what);
        assert.ok(inst.question.startsWith('\n\n') && !inst.question.slice(2).includes('\n\n'), what);
        const n = promptTokens(tokenizer, inst);
        assert.ok(n <= contextLength && n >= 0.9 * contextLength, `${what}: ${n} tokens`);
        assert.equal(score(inst, ` ${value}`), 1, what);
        assert.equal(score(inst, ` ${value}0`), 0, what);
      }
    }
  }
});

test('the split and the refusals', () => {
  assert.deepEqual(splitPrompt('a\n\nb\n\nWhat is it?\nReply:'), { context: 'a\n\nb', question: '\n\nWhat is it?\nReply:' });
  assert.throws(() => splitPrompt('no blank line'), AttendError);
  assert.throws(() => wordingSingle.generate({ seed: 0, contextLength: 1024, depth: 0.5, tokenizer }),
    (e: Error) => e instanceof AttendError && /2048, 4096, 8192/.test(e.message));
  assert.throws(() => wordingSingle.generate({ seed: 0, contextLength: 2048, depth: 0.3, tokenizer }), AttendError);
});
