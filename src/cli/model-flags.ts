/**
 * Flags that change how a model runs, shared by the commands that run one: the attention kernel (--attention),
 * head ablation (--ablate-heads, through the forward hooks) and, for decoding, a selector (--selector).
 */
import type { Command } from 'commander';
import { check } from '../errors.js';
import { type LoadedModel, loadModel } from '../models/load.js';
import { ablationHooks, parseHeads, withHooks } from '../models/model.js';
import { createSelector, SELECTORS, type Selector } from '../selectors/registry.js';
import { readActCalibration, withActCalibration } from '../heads/act-calibration.js';
import { collect } from './options.js';
import { DEVICES } from '../backend/devices.js';

export interface ModelFlags {
  /** cpu (default) or cuda (backend/devices.ts). */
  device?: string;
  attention?: string;
  ablateHeads?: string;
  /** An ACT calibration file (heads/act-calibration.ts). */
  act?: string;
}

export interface SelectorFlags {
  selector?: string;
  selectorOpt?: string[];
}

export function addModelFlags(command: Command): Command {
  return command
    .option('--device <name>', `where the model runs: ${Object.keys(DEVICES).join(', ')} (default cpu)`)
    .option('--attention <kernel>', 'attention kernel: softmax (default), sigmoid, sigmoid:bias=B (docs/architecture.md)')
    .option('--ablate-heads <list>', 'zero these query heads\' outputs before the output projection: LAYER.HEAD[,…], from 0')
    .option('--act <file>', 'ACT attention calibration: scale the attention to hidden sinks in the heads FILE names (attend heads --probe sinks --calibrate-act FILE)');
}

export function addSelectorFlags(command: Command): Command {
  return command
    .option('--selector <name>', `decode-time sparse attention: ${Object.keys(SELECTORS).join(', ')} (reads fewer entries per step, drops none)`)
    .option('--selector-opt <key=value>', 'a selector option, e.g. budget=512 (repeatable)', collect);
}

/** The selector the flags name, with its options; one-line errors for unknown names, options and values. */
export function selectorFrom(flags: SelectorFlags): Selector | undefined {
  if (flags.selector === undefined) {
    check(!flags.selectorOpt?.length, '--selector-opt needs --selector NAME');
    return undefined;
  }
  const options: Record<string, number> = {};
  for (const item of flags.selectorOpt ?? []) {
    const [key, value] = item.split('=', 2);
    const v = Number(value);
    check(value !== undefined && value.trim() !== '' && Number.isFinite(v), `--selector-opt ${item}: expected KEY=NUMBER`);
    options[key] = v;
  }
  return createSelector(flags.selector, options);
}

/** Loads the model with the kernel and hooks the flags ask for; bad values are one-line errors. */
export function loadWithFlags(dir: string, flags: ModelFlags): LoadedModel {
  const lm = loadModel(dir, { attention: flags.attention, device: flags.device });
  // ACT: the calibrated heads' outputs recomputed with their sinks' attention scaled; wrapped first, so that an
  // ablation of the same head (its hook runs after ACT's) still zeroes it.
  if (flags.act !== undefined) lm.model = withActCalibration(lm.model, readActCalibration(flags.act));
  if (flags.ablateHeads !== undefined) {
    const heads = parseHeads(flags.ablateHeads);
    lm.model = withHooks(lm.model, ablationHooks(lm.model.backend, lm.config, heads));
  }
  return lm;
}
