/**
 * `attend bench`: the long-context evaluation. Runs a preset or a sweep config on a model, appends one JSON line
 * per cell to DIR/results.jsonl (cells already there are skipped), prints the summary table and writes the
 * self-contained report DIR/report.html.
 */
import { join, relative } from 'node:path';
import type { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { check } from '../errors.js';
import { writeReport } from '../eval/report/index.js';
import { expandSweep, presetByName, readSweepConfig, validateSweep } from '../eval/sweep-config.js';
import { runSweep } from '../eval/sweep.js';
import { resultsMarkdown } from '../eval/markdown.js';
import { formatSummary, summarise } from '../eval/summary.js';
import { loadModel } from '../models/load.js';
import { contextLength } from '../models/model.js';
import { defaultModel, parseCount } from './options.js';

interface Flags {
  model?: string;
  preset?: string;
  config?: string;
  out?: string;
  limit?: number;
  /** Overrides the sweep's sharedPrefill when given. */
  sharedPrefill?: boolean;
  markdown?: boolean;
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('long-context evaluation: accuracy, KV memory and speed per method, budget and context length')
    .option('--model <dir>', 'Hugging Face model directory (default: the bundled model)')
    .option('--preset <name>', 'quick (default), ruler or niah')
    .option('--config <file>', 'a JSON sweep config (see docs/bench.md)')
    .option('--out <dir>', 'where results.jsonl and report.html go (default: bench-results/<preset>)')
    .option('--limit <n>', 'run at most n cells (the rest stay for a later, resumed run)', parseCount('--limit'))
    .option('--shared-prefill', 'prefill each instance once for all methods that see the same prefill (default for ruler)')
    .option('--no-shared-prefill', "run every cell's prefill, so TTFT is each method's own")
    .option('--markdown', 'print the summary, per-task and per-depth tables as Markdown (as in docs/results.md)')
    .action(async (flags: Flags) => runBench(flags));
}

export async function runBench(flags: Flags): Promise<void> {
  check(!(flags.preset && flags.config), 'give --preset or --config, not both');
  const name = flags.preset ?? (flags.config ? 'custom' : 'quick');
  const given = flags.config ? readSweepConfig(flags.config) : presetByName(name);
  const config = { ...given, sharedPrefill: flags.sharedPrefill ?? given.sharedPrefill };
  const modelDir = flags.model ?? defaultModel();
  const out = flags.out ?? join('bench-results', name);
  const lm = loadModel(modelDir);
  validateSweep(config, contextLength(lm.config), flags.config ?? `preset ${name}`);
  const modelName = relative(process.cwd(), modelDir) || modelDir;
  const cells = expandSweep(config, modelName).slice(0, flags.limit ?? Infinity);
  const resultsPath = join(out, 'results.jsonl');
  const shared = config.sharedPrefill ? ', shared prefill' : '';
  process.stdout.write(`${cells.length} cells (${name}${shared}) on ${modelName} → ${resultsPath}\n`);
  const bar = new SingleBar({
    format: '{bar} {value}/{total} cells | ETA {eta_formatted} | {cell}',
    hideCursor: true,
    clearOnComplete: true,
    stream: process.stderr,
    noTTYOutput: false,
  });
  bar.start(cells.length, 0, { cell: '' });
  const results = await runSweep(lm, cells, resultsPath, {
    sharedPrefill: config.sharedPrefill,
    onProgress: ({ done, cell }) => bar.update(done, { cell: `${cell.task} ${cell.contextLength} ${cell.method}` }),
  });
  bar.stop();
  const summary = summarise(results);
  process.stdout.write(`\n${flags.markdown ? resultsMarkdown(results, summary) : formatSummary(summary)}\n`);
  const reportPath = join(out, 'report.html');
  const command = `attend bench ${process.argv.slice(3).join(' ')}`.trim();
  await writeReport(reportPath, results, { title: `Attend bench: ${name} on ${modelName}`, command });
  process.stdout.write(`\nresults: ${resultsPath}\nreport:  ${reportPath}\n`);
}
