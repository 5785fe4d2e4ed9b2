/**
 * Runs the cells of a sweep and appends one JSON line per cell to `results.jsonl`. Resumable: cells whose line
 * is already there are skipped, so an interrupted sweep continues where it stopped (a line cut short by a killed
 * run is dropped and its cell runs again; lines that are not results are refused: src/eval/results-file.ts).
 * Each prompt is built once for all the methods that run on it, and with `sharedPrefill` prefilled once for all
 * those that see the same prefill.
 */
import { execSync } from 'node:child_process';
import { dirname } from 'node:path';
import type { LoadedModel } from '../models/load.js';
import { appendResult, endCleanly, ensureOutputFolder, readResultsFile, skippedWarning } from './results-file.js';
import { runCell } from './run-cell.js';
import { groupBySharedPrefill, runSharedPrefill } from './shared-prefill.js';
import { taskByName } from './tasks/index.js';
import { type CellKey, type CellMetrics, type CellResult, cellId, type PerplexityInstance, type TaskInstance } from './types.js';

export interface SweepProgress {
  done: number;
  total: number;
  cell: CellKey;
  result?: CellResult;
}

export { readResults } from './results-file.js';

export function gitCommit(): string {
  try {
    const head = execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execSync('git status --porcelain --untracked-files=no', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    return dirty ? `${head}-dirty` : head;
  } catch {
    return 'unknown';
  }
}

export interface SweepOptions {
  /** Cells of one instance that see the same prefill run it once (eval/shared-prefill.ts). */
  sharedPrefill?: boolean;
  onProgress?: (p: SweepProgress) => void;
  /** Where warnings go (skipped lines of the results file); default: stderr. */
  onWarning?: (message: string) => void;
}

/** Runs the cells not yet in `resultsPath`; returns every result of the sweep's cells (old and new), in order. */
export async function runSweep(lm: LoadedModel, cells: CellKey[], resultsPath: string, opts: SweepOptions = {}): Promise<CellResult[]> {
  ensureOutputFolder(dirname(resultsPath));
  // Lines that are not results are refused here, before anything is appended; a run killed mid-write leaves a
  // cut-short last line, which is cut off so new lines start clean (src/eval/results-file.ts).
  const file = readResultsFile(resultsPath);
  const warning = skippedWarning(resultsPath, file);
  if (warning) (opts.onWarning ?? ((m) => process.stderr.write(`attend: ${m}\n`)))(warning);
  endCleanly(resultsPath, file);
  const existing = new Map(file.results.map((r) => [cellId(r), r]));
  const commit = gitCommit();
  const results = new Map<string, CellResult>();
  let done = 0;
  const finish = (cell: CellKey, result: CellResult) => {
    results.set(cellId(cell), result);
    opts.onProgress?.({ done: ++done, total: cells.length, cell, result });
  };
  const record = (cell: CellKey, metrics: CellMetrics) => {
    const result: CellResult = { ...cell, commit, date: new Date().toISOString(), metrics };
    appendResult(resultsPath, result);
    finish(cell, result);
  };
  for (const group of byInstance(cells)) {
    const pending = group.filter((cell) => {
      const previous = existing.get(cellId(cell));
      if (previous) finish(cell, previous);
      return !previous;
    });
    if (pending.length === 0) continue;
    const instance = generateInstance(lm, pending[0]);
    const shareable = opts.sharedPrefill && instance.task !== 'perplexity';
    for (const batch of shareable ? groupBySharedPrefill(pending) : pending.map((cell) => [cell])) {
      if (batch.length > 1) await runSharedPrefill(lm, batch, instance as TaskInstance, (cell, run) => record(cell, run.metrics));
      else record(batch[0], await runCell(lm, batch[0], instance));
    }
  }
  return cells.map((cell) => results.get(cellId(cell))!);
}

/** Consecutive cells of one task instance (expandSweep puts them together). */
function byInstance(cells: CellKey[]): CellKey[][] {
  const groups: CellKey[][] = [];
  let last: string | undefined;
  for (const cell of cells) {
    const id = JSON.stringify([cell.task, cell.contextLength, cell.depth, cell.seed]);
    if (id !== last) groups.push([]);
    groups.at(-1)!.push(cell);
    last = id;
  }
  return groups;
}

function generateInstance(lm: LoadedModel, cell: CellKey): TaskInstance | PerplexityInstance {
  return taskByName(cell.task).generate({
    seed: cell.seed,
    contextLength: cell.contextLength,
    depth: cell.depth ?? undefined,
    tokenizer: lm.tokenizer,
  });
}
