/**
 * `attend logits`: logits computed in f32, written as little-endian float32 [rows × vocab], the file users compare
 * against other engines. With --ids only: one row per position. With --question-ids too: the context (--ids) is
 * prefilled and, with --press, compressed query-agnostically; then the question runs on that cache at its original
 * positions and one row per question token is written. Without --press that equals one pass over context + question.
 * --ids-file reads the ids from a file (or "-", standard input) in the format `attend tokenize` writes.
 */
import { readOnce } from '../backend/backend.js';
import type { Command } from 'commander';
import { check } from '../errors.js';
import { checkFiniteLogits } from '../generate/finite.js';
import { allLogits } from '../generate/logits.js';
import { prefill } from '../generate/prefill.js';
import { writeFileAtomic } from '../io/files.js';
import { contextLength } from '../models/model.js';
import { CompressionSession } from '../presses/runner.js';
import { defaultModel, parseCount, parseIds, parseIdText, readInput } from './options.js';
import { addModelFlags, loadWithFlags, type ModelFlags } from './model-flags.js';
import { addPressFlags, kvDtypeFrom, planFrom, type PressFlags } from './press-flags.js';

interface Flags extends PressFlags, ModelFlags {
  model?: string;
  ids?: number[];
  idsFile?: string;
  questionIds?: number[];
  out: string;
  prefillChunk?: number;
}

export function registerLogits(program: Command): void {
  const command = program
    .command('logits')
    .description('write f32 logits as little-endian float32 [rows × vocab]')
    .option('--model <dir>', 'Hugging Face model directory (default: the bundled model)')
    .option('--ids <list>', 'comma-separated token ids (the context, with --question-ids)', parseIds('--ids'))
    .option('--ids-file <file>', 'read the ids from a file ("-": standard input) as `attend tokenize` writes them, instead of --ids')
    .option('--question-ids <list>', 'ids run after the (compressed) context; one row per question token', parseIds('--question-ids'))
    .requiredOption('--out <file>', 'output file')
    .option('--prefill-chunk <n>', 'tokens per forward step', parseCount('--prefill-chunk'));
  addPressFlags(addModelFlags(command)).action((flags: Flags) => {
    check((flags.ids === undefined) !== (flags.idsFile === undefined), 'give exactly one of --ids or --ids-file');
    const ids = flags.ids ?? parseIdText(readInput(flags.idsFile!, '--ids-file'), `--ids-file ${flags.idsFile}`);
    const plan = planFrom(flags);
    check(!plan || flags.questionIds, '--press needs --question-ids: the context is compressed, then the question runs on it');
    const lm = loadWithFlags(flags.model ?? defaultModel(), flags);
    const { vocabSize } = lm.config;
    const all = [...ids, ...(flags.questionIds ?? [])];
    for (const id of all) check(id < vocabSize, `--ids: token id ${id} is outside the vocabulary (0…${vocabSize - 1})`);
    const context = contextLength(lm.config);
    check(all.length <= context, `--ids: ${all.length} tokens, more than the model's context of ${context}`);
    const cache = lm.model.makeCache(kvDtypeFrom(flags));
    let logits: Float32Array;
    if (!flags.questionIds) {
      logits = allLogits(lm.model, cache, ids, flags.prefillChunk);
    } else {
      const session = plan && new CompressionSession(plan, lm.model, cache);
      prefill(lm.model, cache, ids, {
        chunkSize: flags.prefillChunk,
        observer: session?.observer,
        afterChunk: (_, end) => session?.afterChunk(end, ids.length),
      });
      logits = readOnce(lm.model.backend, lm.model.forward(flags.questionIds, cache));
    }
    const firstPosition = flags.questionIds ? ids.length : 0;
    checkFiniteLogits(logits, (row) => `logits row ${row - firstPosition} (position ${row}), not written to ${flags.out}`, vocabSize, firstPosition);
    writeFileAtomic(flags.out, new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength));
    process.stderr.write(
      `wrote ${logits.length / vocabSize} × ${vocabSize} float32 logits to ${flags.out}; KV cache ${cache.bytes().toLocaleString('en')} bytes allocated, ${cache.liveBytes().toLocaleString('en')} bytes in live entries\n`,
    );
  });
}
