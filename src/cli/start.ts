/**
 * `attend start` (what `npm start` runs): the main job on the bundled attend-mini, `attend bench --preset quick`:
 * full KV, StreamingLLM, SnapKV, PyramidKV and H2O keeping half the KV (query-aware) on 40 independent
 * single-needle prompts at 1K and 2K tokens and five needle depths, one shared prefill per prompt. Prints the
 * accuracy table with 95% Wilson intervals, the cost table and a closing sentence, and writes
 * bench-results/quick/report.html; about two minutes on two cores (cells already in
 * bench-results/quick/results.jsonl are not run again).
 */
import type { Command } from 'commander';
import { runBench } from './bench.js';

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run the main job on the bundled model: attend bench --preset quick (about two minutes on two cores)')
    .action(async () => runBench({ preset: 'quick' }, 'npm start (attend bench --preset quick)'));
}
