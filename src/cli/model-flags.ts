/**
 * Flags that change how a model runs, shared by the commands that run one: the attention kernel (--attention) and
 * head ablation (--ablate-heads, through the forward hooks).
 */
import type { Command } from 'commander';
import { type LoadedModel, loadModel } from '../models/load.js';
import { ablationHooks, parseHeads, withHooks } from '../models/model.js';

export interface ModelFlags {
  attention?: string;
  ablateHeads?: string;
}

export function addModelFlags(command: Command): Command {
  return command
    .option('--attention <kernel>', 'attention kernel: softmax (default), sigmoid, sigmoid:bias=B (docs/architecture.md)')
    .option('--ablate-heads <list>', 'zero these query heads\' outputs before the output projection: LAYER.HEAD[,…], from 0');
}

/** Loads the model with the kernel and hooks the flags ask for; bad values are one-line errors. */
export function loadWithFlags(dir: string, flags: ModelFlags): LoadedModel {
  const lm = loadModel(dir, { attention: flags.attention });
  if (flags.ablateHeads !== undefined) {
    const heads = parseHeads(flags.ablateHeads);
    lm.model = withHooks(lm.model, ablationHooks(lm.model.backend, lm.config, heads));
  }
  return lm;
}
