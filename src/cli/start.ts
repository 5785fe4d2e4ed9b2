/**
 * `attend start` (what `npm start` runs): the main job on the bundled model. Until attend-mini and the
 * long-context benchmark land, it loads the default model, prints its summary and streams a short greedy
 * generation with timings, saying which model it used.
 */
import type { Command } from 'commander';
import { generateStream } from '../generate/generate.js';
import { loadModel } from '../models/load.js';
import { contextLength } from '../models/model.js';
import { defaultModel } from './options.js';

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run the main job on the bundled default model')
    .action(async () => {
      const { dir, note } = defaultModel();
      if (note) process.stdout.write(`note: ${note}\n`);
      const t0 = performance.now();
      const lm = loadModel(dir);
      const c = lm.config;
      process.stdout.write(
        `loaded ${c.architecture} from ${dir}: ${(lm.parameterCount / 1e6).toFixed(2)} M parameters, ` +
          `${c.dtype}, context ${contextLength(c)}, in ${(performance.now() - t0).toFixed(0)} ms\n`,
      );
      const prompt = 'In the beginning God created the heaven and the earth.';
      process.stdout.write(`prompt: ${prompt}\ncontinuation: `);
      const stream = generateStream(lm, lm.tokenizer.encode(prompt), { maxNewTokens: 48, temperature: 0 });
      for (;;) {
        const step = await stream.next();
        if (step.done) {
          const s = step.value;
          process.stdout.write(
            `\n\nprefill ${s.promptTokens} tokens in ${s.prefillMs.toFixed(1)} ms; ` +
              `decode ${s.newTokens} tokens at ${(s.newTokens / (s.decodeMs / 1000)).toFixed(1)} tokens/s (greedy, ${s.finishReason}); ` +
              `KV cache ${s.cache.bytes().toLocaleString('en')} bytes\n`,
          );
          return;
        }
        process.stdout.write(step.value.text);
      }
    });
}
