/** The KV-compression flags shared by `generate`, `logits` and the benchmark, and the plan they describe. */
import type { Command } from 'commander';
import { AttendError } from '../errors.js';
import { createPress, parsePressOptions, pressEntry, resolveOptions } from '../presses/registry.js';
import type { CompressionPlan } from '../presses/runner.js';
import type { DType } from '../tensor/dtype.js';
import { collect, parseCount, parseNumber } from './options.js';

export interface PressFlags {
  press?: string;
  ratio?: number;
  budget?: number;
  pressOpt?: string[];
  pressDuring?: string;
  compressEvery?: number;
  compressMax?: number;
  kvDtype?: string;
}

export function addPressFlags(command: Command): Command {
  return command
    .option('--press <name>', 'compress the KV cache with this method (see `attend presses`)')
    .option('--ratio <r>', 'fraction of the cache the press removes, in (0, 1)', parseNumber('--ratio'))
    .option('--budget <n>', 'entries per head the press keeps (instead of --ratio)', parseCount('--budget'))
    .option('--press-opt <key=value>', 'a method option, e.g. window=32 (repeatable)', collect)
    .option('--press-during <when>', 'prefill: compress once the prompt is in (default); chunks: after every prefill chunk')
    .option('--compress-every <n>', 'also compress while decoding, every n tokens', parseCount('--compress-every'))
    .option('--compress-max <n>', 'also compress while decoding whenever a head holds more than n entries', parseCount('--compress-max'))
    .option(
      '--kv-dtype <dtype>',
      'KV cache storage: f32 (default), f16 or bf16 (half the memory; decode within ~1.1x of f32 for bf16, ~1.3-1.6x for f16 at 2-4K tokens: docs/performance.md)',
    );
}

export function kvDtypeFrom(flags: PressFlags): DType | undefined {
  if (flags.kvDtype === undefined) return undefined;
  if (!['f32', 'f16', 'bf16'].includes(flags.kvDtype)) throw new AttendError(`--kv-dtype must be f32, f16 or bf16, got "${flags.kvDtype}"`);
  return flags.kvDtype as DType;
}

/** The compression plan the flags describe, or undefined without --press. */
export function planFrom(flags: PressFlags): CompressionPlan | undefined {
  const pressOnly = [flags.ratio, flags.budget, flags.pressOpt, flags.pressDuring, flags.compressEvery, flags.compressMax];
  if (!flags.press) {
    if (pressOnly.some((f) => f !== undefined)) throw new AttendError('--ratio, --budget and the other press flags need --press NAME');
    return undefined;
  }
  const entry = pressEntry(flags.press);
  const given = parsePressOptions(flags.pressOpt ?? []);
  const press = createPress(flags.press, given);
  if (press.sizesItself) {
    // DMS's threshold, SimLayerKV's lazy layers, DecodingPress's target size: the press sets its own size.
    if (flags.ratio !== undefined || flags.budget !== undefined) throw new AttendError(`--press ${flags.press} sets its own size: it takes no --ratio or --budget`);
  } else if ((flags.ratio === undefined) === (flags.budget === undefined)) throw new AttendError(`--press ${flags.press} needs exactly one of --ratio or --budget`);
  const during = flags.pressDuring ?? 'prefill';
  if (during !== 'prefill' && during !== 'chunks') throw new AttendError(`--press-during must be prefill or chunks, got "${during}"`);
  const options = resolveOptions(entry, given);
  const own = entry.decode?.(options);
  const decode =
    flags.compressEvery !== undefined || flags.compressMax !== undefined
      ? { every: flags.compressEvery, maxSize: flags.compressMax }
      : own;
  return {
    press,
    budget: press.sizesItself ? undefined : flags.ratio !== undefined ? { ratio: flags.ratio } : { tokens: flags.budget! },
    during,
    decode,
  };
}
