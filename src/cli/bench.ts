/**
 * `attend bench`: the long-context evaluation. Runs a preset or a sweep config on a model, appends one JSON line
 * per cell to DIR/results.jsonl (cells already there are skipped), prints the summary table and writes the
 * self-contained report DIR/report.html.
 *
 * `--markdown` prints the tables of docs/results.md. Where DIR has none of the sweep's cells yet and the repository
 * ships them (docs/results/<preset or config name>.jsonl, made on the bundled model), it reads those and runs
 * nothing, saying so; otherwise it says how many cells it runs first.
 */
import { existsSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import { check } from '../errors.js';
import { writeReport } from '../eval/report/index.js';
import { expandSweep, presetByName, readSweepConfig, validateSweep } from '../eval/sweep-config.js';
import { readResults, runSweep, type SweepProgress } from '../eval/sweep.js';
import { ensureOutputFolder, removeStalePartials } from '../eval/results-file.js';
import { resultsMarkdown } from '../eval/markdown.js';
import { formatSummary, summarise } from '../eval/summary.js';
import { type CellKey, type CellResult, cellId } from '../eval/types.js';
import { loadModel } from '../models/load.js';
import { contextLength } from '../models/model.js';
import { BUNDLED_MODEL, defaultModel, PACKAGE_ROOT, parseCount } from './options.js';

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
    .option('--limit <n>', 'only the first n cells of the sweep, in its order, counting those already done (a later run '
      + 'with a larger or no --limit resumes with the rest)', parseCount('--limit'))
    .option('--shared-prefill', 'prefill each instance once for all methods that see the same prefill (default for quick and ruler)')
    .option('--no-shared-prefill', "run every cell's prefill, so TTFT is each method's own")
    .option('--markdown', 'print the tables as Markdown (as in docs/results.md); with no cells in --out yet, reads the '
      + "repository's shipped docs/results/<name>.jsonl where there is one instead of running the sweep")
    .action(async (flags: Flags) => runBench(flags));
}

/** The results shipped for a sweep: docs/results/<name>.jsonl, name being the preset or the config's file name. */
export function shippedResultsPath(name: string, config: string | undefined): string {
  return join(PACKAGE_ROOT, 'docs', 'results', `${config ? basename(config).replace(/\.json$/, '') : name}.jsonl`);
}

/**
 * The sweep's cells found in a results file, in sweep order. The bundled model is matched whatever the path it
 * was named by (shipped cells name it models/attend-mini, from the repository root).
 */
export function cellsIn(path: string, cells: CellKey[], anyModelName: boolean): CellResult[] {
  const id = (c: CellKey) => cellId(anyModelName ? { ...c, model: '' } : c);
  const found = new Map(readResults(path).map((r) => [id(r), r]));
  return cells.map((c) => found.get(id(c))).filter((r): r is CellResult => r !== undefined);
}

const clock = (s: number) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, '0')}`;

/**
 * A progress bar on a terminal; elsewhere (a pipe, CI, a log) one line every 10 s and one at the end. The bar is the
 * optional package cli-progress: without it (npm install --omit=optional) a terminal gets the lines too.
 */
async function progress(total: number): Promise<{ update(p: SweepProgress): void; stop(): void }> {
  const label = (cell: CellKey) => `${cell.task} ${cell.contextLength} ${cell.method}`;
  const SingleBar = process.stderr.isTTY ? await import('cli-progress').then((m) => m.SingleBar, () => undefined) : undefined;
  if (SingleBar) {
    const bar = new SingleBar({
      format: '{bar} {value}/{total} cells | {duration_formatted} elapsed | ETA {eta_formatted} | {cell}',
      hideCursor: true,
      clearOnComplete: true,
      stream: process.stderr,
    });
    bar.start(total, 0, { cell: '' });
    return { update: (p) => bar.update(p.done, { cell: label(p.cell) }), stop: () => bar.stop() };
  }
  const start = performance.now();
  let last = start;
  return {
    update(p) {
      const now = performance.now();
      if (now - last < 10_000 && p.done < p.total) return;
      last = now;
      const elapsed = (now - start) / 1000;
      const left = p.done < p.total ? `, about ${clock((elapsed / p.done) * (p.total - p.done))} left` : '';
      process.stderr.write(`${p.done}/${p.total} cells (${Math.floor((100 * p.done) / p.total)}%), ${clock(elapsed)} elapsed${left}\n`);
    },
    stop() {},
  };
}

/**
 * Runs `work` with SIGINT and SIGTERM held back, then acts on one that came meanwhile (the process ends as the
 * signal would have ended it). The report is written as a temporary file renamed over report.html
 * (src/io/files.ts): killed between the two by a signal's default action, the temporary would stay behind.
 */
export async function deferringSignals<T>(work: () => Promise<T>): Promise<T> {
  let received: NodeJS.Signals | undefined;
  const hold = (signal: NodeJS.Signals) => {
    received ??= signal;
  };
  process.on('SIGINT', hold);
  process.on('SIGTERM', hold);
  try {
    return await work();
  } finally {
    // A signal that came during the synchronous write reaches its listener in the event loop's next poll.
    await new Promise((done) => setTimeout(done, 10));
    process.off('SIGINT', hold);
    process.off('SIGTERM', hold);
    if (received) process.kill(process.pid, received);
  }
}

/** `command`: how the run is named in the report (default: this process's `attend bench …` command line). */
export async function runBench(flags: Flags, command = `attend bench ${process.argv.slice(3).join(' ')}`.trim()): Promise<void> {
  check(!(flags.preset && flags.config), 'give --preset or --config, not both');
  const name = flags.preset ?? (flags.config ? 'custom' : 'quick');
  const given = flags.config ? readSweepConfig(flags.config) : presetByName(name);
  const config = { ...given, sharedPrefill: flags.sharedPrefill ?? given.sharedPrefill };
  const modelDir = flags.model ?? defaultModel();
  const out = flags.out ?? join('bench-results', name);
  const lm = loadModel(modelDir);
  validateSweep(config, contextLength(lm.config), flags.config ?? `preset ${name}`);
  const modelName = relative(process.cwd(), modelDir) || modelDir;
  const all = expandSweep(config, modelName);
  const cells = all.slice(0, flags.limit ?? Infinity);
  const resultsPath = join(out, 'results.jsonl');
  const bundled = resolve(modelDir) === resolve(BUNDLED_MODEL);

  if (flags.markdown && cellsIn(resultsPath, cells, false).length === 0) {
    const shipped = shippedResultsPath(name, flags.config);
    const found = existsSync(shipped) && bundled ? cellsIn(shipped, cells, true) : [];
    if (found.length > 0) {
      const commits = [...new Set(found.map((r) => r.commit))].join(', ');
      process.stderr.write(`${resultsPath} has none of these cells: printing the ${found.length} of ${cells.length} cells shipped in `
        + `${relative(process.cwd(), shipped)} (commit ${commits}), running nothing. To measure them again, run the same command `
        + `without --markdown first.\n`);
      process.stdout.write(`${resultsMarkdown(found, summarise(found))}\n`);
      return;
    }
    process.stderr.write(`${resultsPath} has none of these cells and nothing is shipped for "${name}": running all ${cells.length} `
      + `cells first, then printing the tables.\n`);
  }

  ensureOutputFolder(out);
  for (const name of removeStalePartials(out)) process.stderr.write(`attend: removed ${join(out, name)}, left by a run that was killed\n`);
  const shared = config.sharedPrefill ? ', shared prefill' : '';
  const of = cells.length < all.length ? ` of ${all.length}` : '';
  process.stdout.write(`${cells.length}${of} cells (${name}${shared}) on ${modelName} → ${resultsPath}\n`);
  const bar = await progress(cells.length);
  const results = await runSweep(lm, cells, resultsPath, { sharedPrefill: config.sharedPrefill, onProgress: (p) => bar.update(p) });
  bar.stop();
  const summary = summarise(results);
  process.stdout.write(`\n${flags.markdown ? resultsMarkdown(results, summary) : formatSummary(summary)}\n`);
  const reportPath = join(out, 'report.html');
  await deferringSignals(() => writeReport(reportPath, results, { title: `Attend bench: ${name} on ${basename(modelDir)}`, command }));
  process.stdout.write(`\nresults: ${resultsPath}\nreport:  ${reportPath}\n`);
}
