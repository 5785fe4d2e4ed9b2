/**
 * Runs the cells of a sweep and appends one JSON line per cell to `results.jsonl`. Resumable: cells whose line
 * is already there are skipped, so an interrupted sweep continues where it stopped (a torn last line is ignored).
 * Each prompt is built once for all the methods that run on it.
 */
import { execSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { LoadedModel } from '../models/load.js';
import { runCell } from './run-cell.js';
import { taskByName } from './tasks/index.js';
import { type CellKey, type CellResult, cellId, type PerplexityInstance, type TaskInstance } from './types.js';

export interface SweepProgress {
  done: number;
  total: number;
  cell: CellKey;
  result?: CellResult;
}

export function readResults(path: string): CellResult[] {
  if (!existsSync(path)) return [];
  const rows: CellResult[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      rows.push(JSON.parse(line) as CellResult);
    } catch {
      // A line cut short by an interrupted run: that cell simply runs again.
    }
  }
  return rows;
}

export function gitCommit(): string {
  try {
    const head = execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execSync('git status --porcelain --untracked-files=no', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    return dirty ? `${head}-dirty` : head;
  } catch {
    return 'unknown';
  }
}

/** Runs the cells not yet in `resultsPath`; returns every result of the sweep's cells (old and new). */
export async function runSweep(
  lm: LoadedModel,
  cells: CellKey[],
  resultsPath: string,
  onProgress?: (p: SweepProgress) => void,
): Promise<CellResult[]> {
  mkdirSync(dirname(resultsPath), { recursive: true });
  // A run killed mid-write leaves a torn last line: end it so new lines start clean.
  if (existsSync(resultsPath) && !readFileSync(resultsPath, 'utf8').endsWith('\n') && statSync(resultsPath).size > 0) {
    appendFileSync(resultsPath, '\n');
  }
  const existing = new Map(readResults(resultsPath).map((r) => [cellId(r), r]));
  const commit = gitCommit();
  const results: CellResult[] = [];
  let done = 0;
  let instance: { id: string; value: TaskInstance | PerplexityInstance } | undefined;
  for (const cell of cells) {
    const previous = existing.get(cellId(cell));
    if (previous) {
      results.push(previous);
      onProgress?.({ done: ++done, total: cells.length, cell, result: previous });
      continue;
    }
    const instanceId = JSON.stringify([cell.task, cell.contextLength, cell.depth, cell.seed]);
    if (instance?.id !== instanceId) {
      const value = taskByName(cell.task).generate({
        seed: cell.seed,
        contextLength: cell.contextLength,
        depth: cell.depth ?? undefined,
        tokenizer: lm.tokenizer,
      });
      instance = { id: instanceId, value };
    }
    const metrics = await runCell(lm, cell, instance.value);
    const result: CellResult = { ...cell, commit, date: new Date().toISOString(), metrics };
    appendFileSync(resultsPath, JSON.stringify(result) + '\n');
    results.push(result);
    onProgress?.({ done: ++done, total: cells.length, cell, result });
  }
  return results;
}
