/**
 * `attend start` (what `npm start` runs): the main job on the bundled attend-mini — the compact comparison of
 * `attend bench --preset quick`: full KV, StreamingLLM, SnapKV, PyramidKV and H2O at two budgets and two context
 * lengths on a held-out needle task, printing the table and writing bench-results/quick/report.html (about five
 * minutes on two cores; cells already in bench-results/quick/results.jsonl are not run again).
 */
import type { Command } from 'commander';
import { runBench } from './bench.js';

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run the main job on the bundled model: attend bench --preset quick')
    .action(async () => runBench({ preset: 'quick' }));
}
