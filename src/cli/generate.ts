/**
 * `attend generate`: streams a continuation (or a chat reply) to stdout as tokens arrive; with --draft DIR, by
 * speculative decoding with that draft model (src/generate/speculative.ts); with --spec-pc RATIO, the prompt first
 * compressed by SpecPC with a draft model (src/prompt/specpc.ts).
 */
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Backend } from '../backend/backend.js';
import { AttendError } from '../errors.js';
import { generateStream, type GenerateOptions } from '../generate/generate.js';
import { type SamplingOptions, validateSampling } from '../generate/sampler.js';
import { checkDraftCompatible, checkDraftCompression, DEFAULT_DRAFT_TOKENS, type SpeculativeStats } from '../generate/speculative.js';
import { GENERATION_CONFIG_FILE } from '../io/generation-config.js';
import { readModelConfig } from '../models/families.js';
import { loadModel, type LoadedModel } from '../models/load.js';
import { contextLength } from '../models/model.js';
import { checkDraftTokenizer } from '../prompt/lookahead.js';
import { compressPrompt } from '../prompt/specpc.js';
import {
  BUNDLED_MODEL,
  checkPromptFlags,
  collectStops,
  defaultModel,
  encodePrompt,
  parseCount,
  parseCountFrom,
  parseNumber,
  PACKAGE_ROOT,
  PROMPT_BYTES_PER_TOKEN,
  promptByteLimit,
  readInput,
} from './options.js';
import { addModelFlags, addSelectorFlags, loadWithFlags, type ModelFlags, selectorFrom, type SelectorFlags } from './model-flags.js';
import { addPressFlags, kvDtypeFrom, planFrom, type PressFlags } from './press-flags.js';

interface Flags extends PressFlags, ModelFlags, SelectorFlags {
  model?: string;
  prompt?: string;
  promptFile?: string;
  chat?: boolean;
  system?: string;
  maxTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  seed?: number;
  stop?: string[];
  prefillChunk?: number;
  stats?: boolean;
  draft?: string;
  draftTokens?: number;
  specPc?: number;
  specPcDraft?: string;
}

export function registerGenerate(program: Command): void {
  const command = program
    .command('generate')
    .description('generate text from a prompt, streaming it to stdout')
    .option('--model <dir>', 'Hugging Face model directory (default: the bundled model)')
    .option('--prompt <text>', 'the prompt')
    .option('--prompt-file <file>', 'read the prompt from a file ("-": standard input)')
    .option('--chat', "wrap the prompt as a user message with the model's chat template")
    .option('--system <text>', 'a system message (needs --chat)')
    .option('--max-tokens <n>', 'most new tokens', parseCount('--max-tokens'))
    .option('--temperature <t>', '0 for greedy', parseNumber('--temperature'))
    .option('--top-k <k>', 'keep the k most likely tokens', parseCount('--top-k'))
    .option('--top-p <p>', 'nucleus sampling mass', parseNumber('--top-p'))
    .option('--min-p <p>', 'drop tokens below p × the top probability', parseNumber('--min-p'))
    .option('--repetition-penalty <r>', 'penalty for repeated tokens (> 1 discourages)', parseNumber('--repetition-penalty'))
    .option('--seed <n>', 'random seed (same seed, same output)', parseCount('--seed'))
    .option('--stop <text>', 'stop when this text appears (repeatable); \\n, \\t, \\r and \\\\ are a newline, tab, carriage return and backslash', collectStops)
    .option('--prefill-chunk <n>', 'prompt tokens per prefill step', parseCount('--prefill-chunk'))
    .option('--stats', 'print timing to stderr at the end')
    .option('--draft <dir>', 'speculative decoding with this draft model (same tokenizer; e.g. models/attend-mini-draft); same output, fewer target forwards')
    .option('--draft-tokens <k>', `tokens the draft proposes per target forward (default ${DEFAULT_DRAFT_TOKENS}; needs --draft)`, parseCountFrom('--draft-tokens', 1))
    .option('--spec-pc <ratio>', 'SpecPC: drop this fraction of the prompt before the prefill, the tokens a draft model attends to least', parseNumber('--spec-pc'))
    .option('--spec-pc-draft <dir>', "--spec-pc's draft model (the target's tokenizer; default: models/attend-mini-draft with the bundled model)");
  addPressFlags(addSelectorFlags(addModelFlags(command))).action(async (flags: Flags) => {
      checkPromptFlags(flags);
      const compression = planFrom(flags);
      const kvDtype = kvDtypeFrom(flags);
      const selector = selectorFrom(flags);
      const dir = flags.model ?? defaultModel();
      if (flags.draftTokens !== undefined && flags.draft === undefined) throw new AttendError('--draft-tokens needs --draft DIR');
      const specPcDraft = specPcDraftDir(dir, flags);
      if (flags.draft !== undefined) {
        checkDraftCompression(compression);
        draftConfig(flags.draft);
      }
      // The prompt is read (bounded by the context) before the weights are loaded: a bad prompt fails fast.
      const text = promptText(contextLength(readModelConfig(dir)), flags);
      const lm = loadWithFlags(dir, flags);
      const draft = flags.draft !== undefined ? loadDraft(lm, flags.draft) : undefined;
      const encoded = encodePrompt(lm.tokenizer, text, flags);
      const ids = specPcDraft !== undefined ? compressPrompt(encoded, loadDraft(lm, specPcDraft, '--spec-pc-draft'), { budget: { ratio: flags.specPc! } }) : encoded;
      const stream = generateStream(lm, ids, {
        ...samplingFrom(lm, dir, flags),
        compression,
        kvDtype,
        selector,
        draft: draft && { model: draft, tokens: flags.draftTokens },
      });
      for (;;) {
        const step = await stream.next();
        if (step.done) {
          process.stdout.write('\n');
          if (flags.stats) {
            const s = step.value;
            const decodeRate = s.newTokens / (s.decodeMs / 1000);
            process.stderr.write(
              `prompt ${s.promptTokens} tokens in ${s.prefillMs.toFixed(0)} ms (${((s.promptTokens / s.prefillMs) * 1000).toFixed(1)} tok/s); ` +
                `${s.newTokens} new tokens at ${decodeRate.toFixed(1)} tok/s; finish: ${s.finishReason}; ` +
                `KV cache ${s.cacheBytes.toLocaleString('en')} bytes allocated, ${s.cache.liveBytes().toLocaleString('en')} bytes in live entries` +
                (s.compression ? ` after ${s.compression.compressions} compressions (${s.compression.dropped} entries dropped)` : '') +
                (s.speculative ? `; ${speculativeSummary(s.speculative, s.newTokens)}` : '') +
                deviceMemory(lm.model.backend) +
                (s.selection ? `; ${selector!.name} read ${s.selection.entriesRead.toLocaleString('en')} of ${s.selection.entriesHeld.toLocaleString('en')} entries held over ${s.selection.selections} sparse layer steps (${((100 * s.selection.entriesRead) / Math.max(1, s.selection.entriesHeld)).toFixed(1)}%)` : '') +
                '\n',
            );
          }
          return;
        }
        process.stdout.write(step.value.text);
      }
    });
}

/** `; device memory …` for a device backend (weights, in use now and at peak, held from the driver), else nothing. */
function deviceMemory(backend: Backend): string {
  const m = backend.memory?.();
  if (!m) return '';
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
  return `; ${m.device}: weights ${mib(m.weightBytes)}, in use ${mib(m.usedBytes)} (peak ${mib(m.peakUsedBytes)}: weights, KV and workspace), held ${mib(m.reservedBytes)}, free ${mib(m.freeBytes)} of ${mib(m.totalBytes)}`;
}

/** The draft directory's config, read before any weights: a missing or broken --draft fails fast, naming the flag. */
function draftConfig(dir: string): void {
  try {
    readModelConfig(dir);
  } catch (e) {
    if (e instanceof AttendError) throw new AttendError(`--draft: ${e.message}`);
    throw e;
  }
}

function loadDraft(target: LoadedModel, dir: string, flag = '--draft'): LoadedModel {
  let draft: LoadedModel;
  try {
    draft = loadModel(dir);
  } catch (e) {
    if (e instanceof AttendError) throw new AttendError(`${flag}: ${e.message}`);
    throw e;
  }
  if (flag === '--draft') checkDraftCompatible(target, draft);
  else checkDraftTokenizer(target.model, draft, flag);
  return draft;
}

/** --spec-pc's draft directory (the flag's, or the bundled draft with the bundled model); undefined without --spec-pc. */
function specPcDraftDir(dir: string, flags: Flags): string | undefined {
  if (flags.specPc === undefined) {
    if (flags.specPcDraft !== undefined) throw new AttendError('--spec-pc-draft needs --spec-pc RATIO');
    return undefined;
  }
  if (!(flags.specPc > 0 && flags.specPc < 1)) throw new AttendError(`--spec-pc must be in (0, 1), the fraction of the prompt dropped; got ${flags.specPc}`);
  if (flags.specPcDraft !== undefined) return flags.specPcDraft;
  if (resolve(dir) === resolve(BUNDLED_MODEL)) return join(PACKAGE_ROOT, 'models', 'attend-mini-draft');
  throw new AttendError("--spec-pc needs --spec-pc-draft DIR: a draft model with the target's tokenizer");
}

/**
 * --stats with a draft: the acceptance rate (accepted / proposed) and new tokens per target forward, where the
 * prefill, which gives the first token, counts as one (so plain decoding scores 1.00).
 */
function speculativeSummary(s: SpeculativeStats, newTokens: number): string {
  const rate = s.proposed > 0 ? `${((100 * s.accepted) / s.proposed).toFixed(1)}%` : 'n/a';
  const perForward = newTokens / (s.targetForwards + 1);
  return (
    `draft: K=${s.draftTokens}, ${s.accepted}/${s.proposed} proposals accepted (${rate}), ` +
    `${perForward.toFixed(2)} tokens per target forward (${s.targetForwards} decode forwards + the prefill), ` +
    `${s.draftForwards} draft forwards, draft prefill ${s.draftPrefillMs.toFixed(0)} ms`
  );
}

/** The prompt's text, read at most promptByteLimit(context) bytes from --prompt-file, or --prompt's. */
function promptText(context: number, flags: Flags): string {
  if ((flags.prompt === undefined) === (flags.promptFile === undefined)) {
    throw new AttendError('give exactly one of --prompt or --prompt-file');
  }
  const max = promptByteLimit(context);
  const limit = `the model's context of ${context} tokens × ${PROMPT_BYTES_PER_TOKEN} bytes per token, PROMPT_BYTES_PER_TOKEN in src/cli/options.ts: it cannot fit`;
  if (flags.promptFile !== undefined) return readInput(flags.promptFile, '--prompt-file', max, limit);
  if (Buffer.byteLength(flags.prompt!) > max) {
    throw new AttendError(`--prompt is longer than ${max.toLocaleString('en')} bytes (${limit})`);
  }
  return flags.prompt!;
}

/** Flags over the model's generation_config.json over greedy decoding, as transformers layers them. */
function samplingFrom(lm: LoadedModel, dir: string, flags: Flags): GenerateOptions {
  const g = lm.generation;
  const sampleByDefault = g.doSample === true;
  const file = join(dir, GENERATION_CONFIG_FILE);
  /** A value from generation_config.json, checked here so that its error names the file and the flag over it. */
  const fromFile = <K extends keyof SamplingOptions>(key: K, value: SamplingOptions[K], flag: string): SamplingOptions[K] => {
    if (value === undefined) return value;
    try {
      validateSampling({ [key]: value });
    } catch (e) {
      if (!(e instanceof AttendError)) throw e;
      throw new AttendError(`${file}: ${e.message} (${flag} overrides it)`);
    }
    return value;
  };
  return {
    maxNewTokens: flags.maxTokens,
    temperature: flags.temperature ?? (sampleByDefault ? (fromFile('temperature', g.temperature, '--temperature') ?? 1) : 0),
    topK: flags.topK ?? (sampleByDefault ? (fromFile('topK', g.topK, '--top-k') ?? 50) : undefined),
    topP: flags.topP ?? (sampleByDefault ? fromFile('topP', g.topP, '--top-p') : undefined),
    minP: flags.minP ?? (sampleByDefault ? fromFile('minP', g.minP, '--min-p') : undefined),
    repetitionPenalty: flags.repetitionPenalty ?? fromFile('repetitionPenalty', g.repetitionPenalty, '--repetition-penalty'),
    seed: flags.seed,
    stop: flags.stop,
    prefillChunk: flags.prefillChunk,
  };
}
