/**
 * `attend heads --probe sinks --calibrate-act FILE`: ACT's offline head search (heads/act-search.ts) after the sinks
 * probe, written as a calibration file that `--act FILE` applies (cli/model-flags.ts). Its own flags describe the
 * calibration set (--act-task, --act-length, --act-samples, --act-seed), the held-out comparison (--act-eval) and the
 * rule (--act-beta, --act-threshold, --act-layers, --act-search).
 */
import type { Command } from 'commander';
import { check } from '../errors.js';
import { ACT_SEARCH_DEFAULTS, actSearch, officialLayers, type Accuracy } from '../heads/act-search.js';
import { ACT_BETA } from '../heads/act-calibration.js';
import { SINK_THRESHOLD } from '../heads/sinks.js';
import { writeFileAtomic } from '../io/files.js';
import type { LoadedModel } from '../models/load.js';
import { parseCount, parseCountFrom, parseNumber } from './options.js';

export interface ActSearchFlags {
  calibrateAct?: string;
  actTask?: string;
  actLength?: number;
  actSamples?: number;
  actSeed?: number;
  actEval?: number;
  actBeta?: number;
  actThreshold?: number;
  actLayers?: string;
  actSearch?: string;
}

export function addActSearchFlags(command: Command): Command {
  const d = ACT_SEARCH_DEFAULTS;
  return command
    .option('--calibrate-act <file>', "with --probe sinks: ACT's offline search for the heads to calibrate, written to FILE for --act FILE")
    .option('--act-task <name>', `calibration prompts: an attend bench task (default ${d.task})`)
    .option('--act-length <n>', `their length in tokens (default ${d.length})`, parseCountFrom('--act-length', 16))
    .option('--act-samples <n>', `calibration prompts (default ${d.samples})`, parseCountFrom('--act-samples', 1))
    .option('--act-seed <n>', `the first prompt's seed (default ${d.seed})`, parseCount('--act-seed'))
    .option('--act-eval <n>', 'then compare full and calibrated on n held-out prompts (the seeds after the calibration ones)', parseCount('--act-eval'))
    .option('--act-beta <b>', `share of their attention the sinks keep (default ${ACT_BETA})`, parseNumber('--act-beta'))
    .option('--act-threshold <t>', `mean received attention above which a key is a sink (default ${SINK_THRESHOLD})`, parseNumber('--act-threshold'))
    .option('--act-layers <list>', 'candidate layers, comma-separated (default: all but the first two and the last)')
    .option('--act-search <mode>', 'independent (the official script: each head alone against none; default) or greedy');
}

const pct = (a: Accuracy) => `${(100 * a.accuracy).toFixed(1)}% (n = ${a.n}, 95% ${(100 * a.lo).toFixed(1)}–${(100 * a.hi).toFixed(1)}%)`;

/** One-line errors for the search flags, before anything runs. */
export function checkActSearchFlags(probe: string, flags: ActSearchFlags): void {
  const asked = Object.entries(flags).some(([k, v]) => k.startsWith('act') && v !== undefined);
  check(flags.calibrateAct !== undefined || !asked, '--act-* search flags need --calibrate-act FILE');
  if (flags.calibrateAct === undefined) return;
  check(probe === 'sinks', '--calibrate-act runs after --probe sinks (the sinks it calibrates)');
  check(flags.actSearch === undefined || flags.actSearch === 'independent' || flags.actSearch === 'greedy', `--act-search: expected independent or greedy, got "${flags.actSearch}"`);
  layersOf(flags);
}

function layersOf(flags: ActSearchFlags): number[] | undefined {
  return flags.actLayers?.split(',').map((s) => {
    check(/^\s*\d+\s*$/.test(s), `--act-layers: expected comma-separated layer numbers, got "${flags.actLayers}"`);
    return Number(s);
  });
}

/** Runs the search the flags ask for (none without --calibrate-act); returns the summary lines. */
export function runActSearchFlags(lm: LoadedModel, probe: string, flags: ActSearchFlags, progress?: (done: number, total: number) => void): string {
  checkActSearchFlags(probe, flags);
  if (flags.calibrateAct === undefined) return '';
  const layers = layersOf(flags);
  const found = actSearch(lm, {
    task: flags.actTask,
    length: flags.actLength,
    samples: flags.actSamples,
    seed: flags.actSeed,
    evalSamples: flags.actEval,
    beta: flags.actBeta,
    threshold: flags.actThreshold,
    layers,
    mode: flags.actSearch as 'independent' | 'greedy' | undefined,
    progress,
  });
  writeFileAtomic(flags.calibrateAct, JSON.stringify(found, null, 1) + '\n');
  const s = found.search;
  const lines = [
    `ACT search (${s.mode}) on ${s.samples} ${s.task} prompts of ${s.length} tokens, layers ${(layers ?? officialLayers(lm.config.numLayers)).join(',')}: `
      + `${found.heads.length} heads kept (${found.heads.map((h) => `${h.layer}.${h.head}`).join(', ') || 'none'})`,
    `calibration set: uncalibrated ${pct(s.baseline)}, calibrated ${pct(s.calibrated)}`,
  ];
  if (s.evaluation) lines.push(`held-out seeds ${s.evaluation.seeds[0]}–${s.evaluation.seeds[1]}: uncalibrated ${pct(s.evaluation.full)}, calibrated ${pct(s.evaluation.act)}`);
  lines.push(`calibration written to ${flags.calibrateAct} (apply it with --act ${flags.calibrateAct})`);
  return lines.join('\n') + '\n';
}
