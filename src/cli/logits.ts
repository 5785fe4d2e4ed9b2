/**
 * `attend logits`: the logits of every position of an id sequence, computed in f32, written as little-endian
 * float32 [tokens × vocab]: the file users compare against other engines.
 */
import type { Command } from 'commander';
import { newCache } from '../models/model.js';
import { loadModel } from '../models/load.js';
import { writeFileAtomic } from '../io/files.js';
import { check } from '../errors.js';
import { contextLength } from '../models/model.js';
import { defaultModel, parseCount, parseIds } from './options.js';
import { allLogits } from '../generate/logits.js';

export function registerLogits(program: Command): void {
  program
    .command('logits')
    .description('write the f32 logits of every position as little-endian float32 [tokens × vocab]')
    .option('--model <dir>', 'Hugging Face model directory (default: the bundled model)')
    .requiredOption('--ids <list>', 'comma-separated token ids', parseIds('--ids'))
    .requiredOption('--out <file>', 'output file')
    .option('--prefill-chunk <n>', 'tokens per forward step', parseCount('--prefill-chunk'))
    .action((flags: { model?: string; ids: number[]; out: string; prefillChunk?: number }) => {
      const lm = loadModel(flags.model ?? defaultModel().dir);
      const { vocabSize } = lm.config;
      for (const id of flags.ids) check(id < vocabSize, `--ids: token id ${id} is outside the vocabulary (0…${vocabSize - 1})`);
      const context = contextLength(lm.config);
      check(flags.ids.length <= context, `--ids: ${flags.ids.length} tokens, more than the model's context of ${context}`);
      const logits = allLogits(lm.model, newCache(lm.config), flags.ids, flags.prefillChunk);
      writeFileAtomic(flags.out, new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength));
      process.stderr.write(`wrote ${flags.ids.length} × ${vocabSize} float32 logits to ${flags.out}\n`);
    });
}
