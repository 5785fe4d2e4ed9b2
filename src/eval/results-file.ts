/**
 * The results file of a sweep (`results.jsonl`, one CellResult per line) and the folder it lives in.
 *
 * What a line may be, as read back to resume (docs/bench.md, "Results file"):
 * - a result: every field of CellResult with its type (isCellResult); kept;
 * - a line cut short by an interrupted run: it starts like a result (`{"model":`) and is not valid JSON; skipped
 *   with a warning naming its line, and its cell runs again. At the end of the file (no newline after it, as a
 *   killed run leaves it) runSweep removes it before appending, so it never runs into the next line;
 * - anything else (other JSON, other text, a result with a field of the wrong type): refused, with the line
 *   number, before anything is appended: the file is not this sweep's, or was edited, and a cell whose line is
 *   damaged must not silently run again or be reported.
 *
 * A result line is appended with one write (appendFileSync); one that fails (a full disk) is cut back off.
 */
import { appendFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { AttendError, check } from '../errors.js';
import { jsonErrorReason, oneLine } from './json-text.js';
import type { CellResult } from './types.js';

export interface ResultsFile {
  results: CellResult[];
  /** Lines (from 1) that were cut short by an interrupted run and are skipped. */
  skipped: number[];
  /** Bytes of the file up to the end of its last complete line: where a cut-short last line starts. */
  completeBytes: number;
  /** Whether the file ends in a cut-short line (no newline after it) that appending must remove first. */
  tornTail: boolean;
  /** Whether the file ends in a complete result with no newline after it, which appending must add first. */
  missingNewline: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isCount = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
/** Metrics as JSON holds them: a number, or null where the run produced NaN or an infinity. */
const isMetric = (v: unknown) => v === null || (typeof v === 'number' && Number.isFinite(v));
const METRICS = ['kvBytes', 'peakKvBytes', 'peakRssBytes', 'promptTokens', 'ttftMs', 'prefillTokensPerS', 'decodeTokensPerS'];

/** Why `v` is not a CellResult (the first field found wrong), or null when it is one. */
export function resultProblem(v: unknown): string | null {
  if (!isObject(v)) return `not a JSON object (${oneLine(JSON.stringify(v) ?? String(v), 40)})`;
  const field = (name: string, ok: (x: unknown) => boolean, what: string) =>
    (ok(v[name]) ? null : v[name] === undefined ? `no "${name}" field` : `"${name}" is not ${what}`);
  const budget = (b: unknown) => b === null || (isObject(b) && Object.keys(b).length === 1
    && ((typeof b.ratio === 'number' && b.ratio > 0 && b.ratio < 1) || isCount(b.tokens)));
  const options = (o: unknown) => isObject(o) && Object.values(o).every((x) => typeof x === 'number' || typeof x === 'string');
  const problem = field('model', (x) => typeof x === 'string', 'a string')
    ?? field('task', (x) => typeof x === 'string' && x !== '', 'a task name')
    ?? field('contextLength', isCount, 'a whole number > 0')
    ?? field('depth', (x) => x === null || (typeof x === 'number' && x >= 0 && x <= 1), 'null or a depth in [0, 1]')
    ?? field('seed', (x) => typeof x === 'number' && Number.isSafeInteger(x), 'a whole number')
    ?? field('method', (x) => typeof x === 'string' && x !== '', 'a method name')
    ?? field('options', options, 'an object of numbers and strings')
    ?? field('budget', budget, 'null, {"ratio": r} or {"tokens": n}')
    ?? field('during', (x) => x === null || x === 'prefill' || x === 'chunks', 'null, "prefill" or "chunks"')
    ?? field('queryAware', (x) => typeof x === 'boolean', 'true or false')
    ?? field('prefillChunk', isCount, 'a whole number > 0')
    ?? field('commit', (x) => typeof x === 'string', 'a string')
    ?? field('date', (x) => typeof x === 'string', 'a string')
    ?? field('metrics', isObject, 'an object');
  if (problem) return problem;
  const m = v.metrics as Record<string, unknown>;
  if (!(typeof m.accuracy === 'number' && m.accuracy >= 0 && m.accuracy <= 1)) return '"metrics.accuracy" is not a number in [0, 1]';
  for (const name of METRICS) if (!isMetric(m[name])) return `"metrics.${name}" is not a number`;
  if (m.perplexity !== undefined && !isMetric(m.perplexity)) return '"metrics.perplexity" is not a number';
  if (m.prediction !== undefined && typeof m.prediction !== 'string') return '"metrics.prediction" is not a string';
  if (m.expected !== undefined && !(Array.isArray(m.expected) && m.expected.every((x) => typeof x === 'string'))) {
    return '"metrics.expected" is not a list of strings';
  }
  return null;
}

/** How a cut-short line begins: every result line starts with its model field. */
const RESULT_START = '{"model":';

/** Reads a results file (absent: empty); refuses lines that are not results (see the top of this file). */
export function readResultsFile(path: string): ResultsFile {
  let text: string;
  try {
    const stat = statSync(path, { throwIfNoEntry: false });
    if (!stat) return { results: [], skipped: [], completeBytes: 0, tornTail: false, missingNewline: false };
    check(stat.isFile(), `${path}: cannot read the results (not a regular file)`);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof AttendError) throw e;
    throw new AttendError(`${path}: cannot read the results (${oneLine((e as NodeJS.ErrnoException).code ?? (e as Error).message)})`);
  }
  const lines = text.split('\n');
  const results: CellResult[] = [];
  const skipped: number[] = [];
  // The last piece has no newline after it: empty when the file ends with one.
  const tail = lines.length - 1;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.trim()) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      if (line.startsWith(RESULT_START)) {
        skipped.push(i + 1);
        continue;
      }
      throw new AttendError(`${path}: line ${i + 1} is not a result of attend bench (not valid JSON: ${jsonErrorReason(e, line)}); `
        + 'move the file away or delete the line');
    }
    const problem = resultProblem(value);
    if (problem) {
      throw new AttendError(`${path}: line ${i + 1} is not a result of attend bench (${problem}); move the file away or delete the line`);
    }
    results.push(value as CellResult);
  }
  const tornTail = lines[tail] !== '' && skipped.at(-1) === tail + 1;
  const completeBytes = Buffer.byteLength(text) - (tornTail ? Buffer.byteLength(lines[tail]!) : 0);
  return { results, skipped, completeBytes, tornTail, missingNewline: lines[tail]!.trim() !== '' && !tornTail };
}

/** A results file's results (see readResultsFile). */
export function readResults(path: string): CellResult[] {
  return readResultsFile(path).results;
}

/** The warning for the skipped lines of a results file, or null when there are none. */
export function skippedWarning(path: string, file: ResultsFile): string | null {
  if (file.skipped.length === 0) return null;
  const shownLines = file.skipped.slice(0, 5).join(', ') + (file.skipped.length > 5 ? ` and ${file.skipped.length - 5} more` : '');
  return `${path}: skipping line${file.skipped.length > 1 ? 's' : ''} ${shownLines}, cut short by an interrupted run `
    + '(not valid JSON); those cells run again';
}

/** Makes the file end with a complete line: cuts off a cut-short last line, or ends a complete one. */
export function endCleanly(path: string, file: ResultsFile): void {
  try {
    if (file.tornTail) truncateSync(path, file.completeBytes);
    else if (file.missingNewline) appendFileSync(path, '\n');
  } catch (e) {
    throw new AttendError(`${path}: cannot end the file's last line (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** Appends one result as one line; on failure (a full disk) cuts the file back to where it was. */
export function appendResult(path: string, result: CellResult): void {
  const line = `${JSON.stringify(result)}\n`;
  const before = statSync(path, { throwIfNoEntry: false })?.size ?? 0;
  try {
    appendFileSync(path, line);
  } catch (e) {
    try {
      truncateSync(path, before);
    } catch {
      // What is left is a cut-short last line, which the next run detects and drops.
    }
    throw new AttendError(`${path}: cannot write a result (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/**
 * Makes the output folder (and its missing parents) or checks the one there: a one-line error where the path
 * or a parent is a file, or cannot be made or written. Each missing folder is made by itself: Node's recursive
 * mkdirSync loops forever where a parent refuses new entries with ENOENT, as /proc does.
 */
export function ensureOutputFolder(dir: string): void {
  const fail = (why: string): never => {
    throw new AttendError(`--out ${dir}: ${why}`);
  };
  const missing: string[] = [];
  let at = resolve(dir);
  for (;;) {
    let stat;
    try {
      stat = statSync(at, { throwIfNoEntry: false });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return fail(code === 'ENOTDIR' ? `a parent of ${at} is a file, not a folder` : `cannot use ${at} (${code ?? (e as Error).message})`);
    }
    if (stat) {
      if (!stat.isDirectory()) fail(`${at} is not a folder`);
      break;
    }
    missing.unshift(at);
    const up = dirname(at);
    if (up === at) fail('no such folder');
    at = up;
  }
  for (const folder of missing) {
    try {
      mkdirSync(folder);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST' || !statSync(folder).isDirectory()) fail(`cannot make the folder ${folder} (${code ?? (e as Error).message})`);
    }
  }
  const probe = join(resolve(dir), `.attend-write-test.${process.pid}`);
  try {
    appendFileSync(probe, '');
  } catch (e) {
    fail(`cannot write in the folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  } finally {
    rmSync(probe, { force: true });
  }
}

/**
 * Removes `report.html.<pid>.partial` files that a killed run left in the output folder (the atomic write's
 * temporary, src/io/files.ts), those of processes no longer running only.
 */
export function removeStalePartials(dir: string): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = /^(?:report\.html|results\.jsonl)\.(\d+)\.partial$/.exec(name);
    if (!m || alive(Number(m[1]))) continue;
    rmSync(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
