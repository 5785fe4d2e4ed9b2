/**
 * Retrieval in wordings and on text attend-mini never saw (project issue 9): the held-out side of
 * tools/train/wording.py — held-out attributes, keys, needle sentences, questions, answer cues (or none), chat and
 * plain prompts, numeric, word, code and UUID values — over haystacks from two corpora that are in no part of
 * training (the Debian handbook and the kernel's process documents, tools/train/prepare_unseen.py).
 *
 * The instances are the training recipe's own evaluation set, materialized once from its specs so that the
 * TypeScript runtime and the recipe score the same prompts:
 *   python3 tools/train/tasks.py materialize data/heldout/eval_specs.jsonl data/heldout/wording-eval.jsonl.gz \
 *     --tasks para_single,para_multikey,para_passkey
 * The pool holds 2048-, 4096- and 8192-token instances (para_single: 8 per depth 0, 0.25, 0.5, 0.75, 1 and
 * length; the others 24 per length); a cell's seed picks one (seed modulo the pool), so the samples of a sweep
 * are distinct instances while there are fewer of them than the pool. The split before the question is the
 * last blank line of the prompt. Metric: string_match_all with the one value (scored strictly, eval/scoring.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { AttendError } from '../../errors.js';
import type { TaskGenerator, TaskInstance } from '../types.js';
import { newTokensFor } from './common.js';

export const WORDING_EVAL_PATH = join(import.meta.dirname, '..', '..', '..', 'data', 'heldout', 'wording-eval.jsonl.gz');

interface PoolEntry {
  task: string;
  length: number;
  depth: number | null;
  seed: number;
  prompt: string;
  answer: string;
  values: string[];
}

let pool: PoolEntry[] | undefined;

function load(): PoolEntry[] {
  if (!pool) {
    try {
      pool = gunzipSync(readFileSync(WORDING_EVAL_PATH)).toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as PoolEntry);
    } catch (e) {
      throw new AttendError(`${WORDING_EVAL_PATH}: cannot read the held-out wording instances (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  return pool;
}

/** Context and question: the prompt split at its last blank line (the question, its cue or the chat turn). */
export function splitPrompt(prompt: string): { context: string; question: string } {
  const at = prompt.lastIndexOf('\n\n');
  if (at <= 0) throw new AttendError('a held-out wording prompt has no blank line before its question');
  return { context: prompt.slice(0, at), question: prompt.slice(at) };
}

function wordingTask(name: string, pooled: string, hasDepth: boolean, description: string): TaskGenerator {
  return {
    name,
    description,
    hasDepth,
    pooled: true,
    generate({ seed, contextLength, depth, tokenizer }): TaskInstance {
      const candidates = load().filter((e) => e.task === pooled && e.length === contextLength
        && (!hasDepth || depth === undefined || e.depth === depth));
      if (candidates.length === 0) {
        const lengths = [...new Set(load().filter((e) => e.task === pooled).map((e) => e.length))].join(', ');
        throw new AttendError(`${name} has instances at ${lengths} tokens${hasDepth ? ' and depths 0, 0.25, 0.5, 0.75, 1' : ''} only (asked: ${contextLength}${depth !== undefined ? ` at depth ${depth}` : ''})`);
      }
      const entry = candidates[seed % candidates.length];
      return {
        task: name,
        contextLength,
        ...(hasDepth && entry.depth !== null ? { depth: entry.depth } : {}),
        seed,
        ...splitPrompt(entry.prompt),
        answers: entry.values,
        metric: 'all',
        maxNewTokens: newTokensFor(tokenizer, entry.values.join(', ')),
      };
    },
  };
}

export const wordingSingle = wordingTask('wording_single', 'para_single', true,
  'one needle in a held-out wording (any attribute, key, question and cue) on a corpus never trained on');
export const wordingMultikey = wordingTask('wording_multikey', 'para_multikey', false,
  'the asked needle among others of the same attribute or key, held-out wording, unseen corpus');
export const wordingPasskey = wordingTask('wording_passkey', 'para_passkey', false,
  'a keyless value in repeated held-out noise, held-out wording');
