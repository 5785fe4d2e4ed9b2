/**
 * Prompt compressors in a sweep: methods that drop prompt tokens before the target's prefill (SpecPC,
 * src/prompt/specpc.ts), written {"prompt": "specpc", "ratios": [0.75], "options": {"draft": "models/attend-mini-draft"}}
 * in a config. A cell's budget is the share of the prompt's tokens removed (ratios) or the tokens kept (budgets);
 * it compresses the whole prompt, context and question, as the official code does, so it runs in one query mode
 * (query-aware: the question is there when it compresses), prefills alone (never a shared prefill: its ids are
 * its own) and has no perplexity cells (nothing is prompted there). Its TTFT counts loading the draft, the draft's
 * forwards and the target's prefill of the kept tokens; the draft is loaded for each cell, as SpecKV's press
 * loads its own (about 0.2 s for attend-mini-draft).
 */
import { AttendError, check } from '../errors.js';
import { type LoadedModel, loadModel } from '../models/load.js';
import { checkDraftTokenizer } from '../prompt/lookahead.js';
import { compressPrompt, type SpecPCOptions } from '../prompt/specpc.js';
import type { Budget } from '../presses/budget.js';

interface PromptMethod {
  /** Option names and what each is, for messages. */
  options: Record<string, 'number' | 'string'>;
  /** The prompt's ids as the target prefills them. */
  compress(target: LoadedModel, ids: number[], budget: Budget, options: Record<string, number | string>): number[];
}

const SPECPC_OPTIONS: Record<keyof SpecPCOptions | 'draft', 'number' | 'string'> = {
  draft: 'string',
  window: 'number',
  kernel: 'number',
  neighbours: 'number',
  lookahead: 'number',
  startLayer: 'number',
  weightedQuery: 'number',
  pool: 'string',
  reduction: 'string',
};

export const PROMPT_METHODS: Record<string, PromptMethod> = {
  specpc: {
    options: SPECPC_OPTIONS,
    compress(target, ids, budget, options) {
      const { draft: dir, weightedQuery, ...rest } = options;
      const draft = loadModel(String(dir), { backend: target.model.backend });
      checkDraftTokenizer(target.model, draft, 'specpc');
      const given = { ...rest, ...(weightedQuery === undefined ? {} : { weightedQuery: weightedQuery !== 0 }) } as Partial<SpecPCOptions>;
      return compressPrompt(ids, draft, { ...given, budget });
    },
  },
};

/** Whether a cell's method is a prompt compressor rather than 'full', a press or a selector. */
export function isPromptMethod(method: string): boolean {
  return Object.hasOwn(PROMPT_METHODS, method);
}

/** Checks a prompt method's options: known names, the right kinds, a draft directory (SpecPC has no default one). */
export function checkPromptOptions(name: string, options: Record<string, number | string>, where: string): void {
  const spec = PROMPT_METHODS[name].options;
  for (const [key, value] of Object.entries(options)) {
    check(Object.hasOwn(spec, key), () => `${where}: ${name} has no option "${key}" (options: ${Object.keys(spec).join(', ')})`);
    check(typeof value === spec[key], () => `${where}: ${name} option "${key}" must be a ${spec[key]} (got ${JSON.stringify(value)})`);
  }
  if (typeof options.draft !== 'string' || options.draft === '') {
    throw new AttendError(`${where}: ${name} needs "options": {"draft": DIR}, a draft model with the target's tokenizer (models/attend-mini-draft for attend-mini)`);
  }
}
