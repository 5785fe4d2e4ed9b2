/**
 * The task registry of `attend bench`: RULER's synthetic tasks (Hsieh et al., 2024) and passkey on held-out
 * haystacks, question answering over held-out documents, and held-out perplexity. Every generator is a pure
 * function of (seed, contextLength, depth, tokenizer); the formats are attend-mini's held-out ones
 * (tools/train/tasks.py), never its training ones; the wording_* tasks are held-out wordings on corpora never
 * trained on (tools/train/wording.py, materialized in data/heldout/wording-eval.jsonl.gz).
 */
import { AttendError } from '../../errors.js';
import type { TaskGenerator } from '../types.js';
import { fwe } from './fwe.js';
import { niahMultikey, niahMultiquery, niahMultivalue, niahSingle, niahSingleUuid } from './niah.js';
import { passkey } from './passkey.js';
import { perplexity } from './perplexity.js';
import { qa } from './qa.js';
import { vt } from './vt.js';
import { wordingMultikey, wordingPasskey, wordingSingle } from './wording.js';

export const TASKS: readonly TaskGenerator[] = [
  passkey,
  niahSingle,
  niahSingleUuid,
  niahMultikey,
  niahMultivalue,
  niahMultiquery,
  vt,
  fwe,
  qa,
  perplexity,
  wordingSingle,
  wordingMultikey,
  wordingPasskey,
];

export function taskByName(name: string): TaskGenerator {
  const task = TASKS.find((t) => t.name === name);
  if (!task) throw new AttendError(`unknown task "${name}"; the tasks are ${TASKS.map((t) => t.name).join(', ')}`);
  return task;
}
