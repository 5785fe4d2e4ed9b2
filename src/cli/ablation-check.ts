/**
 * `attend heads --probe retrieval --ablation-check [k,k,…] --ablation-out FILE [--ablation-svg FILE]`: the
 * retrieval-head ablation curve (heads/ablation-check.ts) after the probe's scores, or on scores read back with
 * `--scores FILE` (the JSON of an earlier `attend heads --out`), so the long probe runs once. Its own flags set the
 * prompts (--ablation-length, --ablation-samples, --ablation-seed), the random draws and the ablation mode.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { check } from '../errors.js';
import { ABLATION_DRAWS, ABLATION_KS, ABLATION_LENGTH, ABLATION_SAMPLES, ABLATION_SEED, type AblationCheck, type AblationPoint, ablationCheck, parseScoresJson } from '../heads/ablation-check.js';
import { writeAblationSvg } from '../heads/ablation-plot.js';
import type { HeadScores } from '../heads/probe.js';
import type { MaskMode } from '../heads/retrieval-mask.js';
import { writeFileAtomic } from '../io/files.js';
import type { LoadedModel } from '../models/load.js';
import { parseCount, parseCountFrom } from './options.js';

export interface AblationFlags {
  scores?: string;
  ablationCheck?: boolean | number[];
  ablationLength?: number;
  ablationSamples?: number;
  ablationDraws?: number;
  ablationSeed?: number;
  ablationMode?: string;
  ablationOut?: string;
  ablationSvg?: string;
}

/** "0,1,2" → whole numbers ≥ 0; one-line errors. */
function parseKs(value: string): number[] {
  const parts = value.split(',').map((s) => s.trim());
  check(parts.every((p) => /^\d+$/.test(p)), `--ablation-check: expected comma-separated whole numbers of heads (e.g. 0,1,2,4), got "${value}"`);
  return parts.map(Number);
}

export function addAblationFlags(command: Command): Command {
  return command
    .option('--scores <file>', 'read the scores from this JSON (an earlier attend heads --out) instead of running the probe')
    .option('--ablation-check [ks]', `retrieval: needle accuracy with the top-k heads ablated against k random heads, for each k (default ${ABLATION_KS.join(',')})`, parseKs)
    .option('--ablation-length <n>', `its prompts' length in tokens (default ${ABLATION_LENGTH})`, parseCountFrom('--ablation-length', 1))
    .option('--ablation-samples <n>', `prompts per point (default ${ABLATION_SAMPLES})`, parseCountFrom('--ablation-samples', 1))
    .option('--ablation-draws <n>', `random head sets per k, pooled (default ${ABLATION_DRAWS})`, parseCountFrom('--ablation-draws', 1))
    .option('--ablation-seed <n>', `the first prompt's seed (default ${ABLATION_SEED})`, parseCount('--ablation-seed'))
    .option('--ablation-mode <mode>', 'zero (zeroed head outputs, as --ablate-heads; default) or uniform (the paper\'s zeroed query)')
    .option('--ablation-out <file>', 'with --ablation-check: write its JSON here')
    .option('--ablation-svg <file>', 'with --ablation-check: also draw accuracy against k as an SVG (needs vega and vega-lite)');
}

/** One-line errors for the flags, before anything runs. */
export function checkAblationFlags(probe: string, flags: AblationFlags): void {
  const asked = Object.entries(flags).some(([k, v]) => k.startsWith('ablation') && k !== 'ablationCheck' && v !== undefined);
  const on = flags.ablationCheck !== undefined;
  check(on || !asked, '--ablation-* flags need --ablation-check');
  check(!on || probe === 'retrieval', '--ablation-check applies to --probe retrieval');
  check(!on || flags.ablationOut !== undefined, '--ablation-check needs --ablation-out FILE');
  check(flags.ablationMode === undefined || flags.ablationMode === 'zero' || flags.ablationMode === 'uniform', `--ablation-mode: expected zero or uniform, got "${flags.ablationMode}"`);
  check(flags.scores === undefined || existsSync(flags.scores), `--scores: file not found: ${flags.scores}`);
}

/** The scores of --scores FILE, checked against the probe and the model. */
export function readScoresFlag(lm: LoadedModel, probe: string, file: string): HeadScores {
  const read = parseScoresJson(readFileSync(file, 'utf8'), file);
  check(read.probe === probe, `--scores: ${file} holds ${read.probe || 'no'} probe's scores, not ${probe}'s`);
  check(read.layers === lm.config.numLayers && read.heads === lm.config.numHeads, `--scores: ${file} scores ${read.layers} × ${read.heads} heads, the model has ${lm.config.numLayers} × ${lm.config.numHeads}`);
  const samples = (JSON.parse(readFileSync(file, 'utf8')) as { samples?: unknown }).samples;
  return { ...read, model: lm.dir, samples: typeof samples === 'number' ? samples : 0, details: { readFrom: file } };
}

const pct = (p: AblationPoint) => `${(100 * p.accuracy).toFixed(0)}% [${(100 * p.lo).toFixed(0)}–${(100 * p.hi).toFixed(0)}]`;

/** The console lines of a finished check. */
export function summariseAblation(a: AblationCheck): string {
  const lines = [`ablation check (${a.mode}, ${a.task} at ${a.length} tokens, n = ${a.samples} per point, random: ${a.draws} draws pooled): needle accuracy [95% Wilson]`];
  a.top.forEach((t, i) => lines.push(`  k = ${t.k}: top ${pct(t)}, random ${pct(a.random[i])} (n = ${a.random[i].n})`));
  return lines.join('\n') + '\n';
}

/** Runs the check the flags ask for (nothing without --ablation-check); returns the console lines. */
export async function runAblationFlags(lm: LoadedModel, scores: HeadScores, flags: AblationFlags, progress?: (done: number, total: number) => void): Promise<string> {
  if (flags.ablationCheck === undefined) return '';
  const ks = Array.isArray(flags.ablationCheck) ? flags.ablationCheck : undefined;
  const result = ablationCheck(lm, scores, {
    ks,
    length: flags.ablationLength,
    samples: flags.ablationSamples,
    draws: flags.ablationDraws,
    seed: flags.ablationSeed,
    mode: flags.ablationMode as MaskMode | undefined,
    progress,
  });
  writeFileAtomic(flags.ablationOut!, JSON.stringify(result, null, 1) + '\n');
  let out = summariseAblation(result) + `ablation check written to ${flags.ablationOut}\n`;
  if (flags.ablationSvg !== undefined) {
    const missing = await writeAblationSvg(flags.ablationSvg, result);
    out += missing === null ? `plot written to ${flags.ablationSvg}\n` : missing + '\n';
  }
  return out;
}
