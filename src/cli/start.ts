/**
 * `attend start` (what `npm start` runs): the main job on the bundled attend-mini. Held-out needle prompts are
 * answered with the full KV cache and with several presses at the same budget, and a table shows what each
 * answered, how much cache it held and how long prefill took. (The full long-context benchmark is `attend bench`,
 * once it lands.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { generate } from '../generate/generate.js';
import { loadModel } from '../models/load.js';
import { createPress } from '../presses/registry.js';
import type { CompressionPlan } from '../presses/runner.js';
import { BUNDLED_MODEL, PACKAGE_ROOT } from './options.js';

interface Instance {
  task: string;
  length: number;
  depth: number;
  prompt: string;
  answer: string;
}

const RATIO = 0.5;

const METHODS: { label: string; plan?: () => CompressionPlan }[] = [
  { label: 'full KV' },
  { label: 'streaming-llm', plan: () => ({ press: createPress('streaming-llm', {}), budget: { ratio: RATIO } }) },
  { label: 'snapkv', plan: () => ({ press: createPress('snapkv', {}), budget: { ratio: RATIO } }) },
  { label: 'pyramidkv (per chunk)', plan: () => ({ press: createPress('pyramidkv', {}), budget: { ratio: RATIO }, during: 'chunks' }) },
  { label: 'h2o', plan: () => ({ press: createPress('h2o', {}), budget: { ratio: RATIO }, decode: { every: 1 } }) },
];

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run the main job on the bundled model: needle retrieval with and without KV compression')
    .action(async () => {
      const t0 = performance.now();
      const lm = loadModel(BUNDLED_MODEL);
      const c = lm.config;
      process.stdout.write(
        `attend-mini: ${(lm.parameterCount / 1e6).toFixed(1)} M parameters, context ${c.maxPositions}, loaded in ${(performance.now() - t0).toFixed(0)} ms\n`,
      );
      const instances = readFileSync(join(PACKAGE_ROOT, 'data', 'heldout', 'demo.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Instance)
        .filter((x) => (x.task === 'niah_single' && x.depth === 0.75) || (x.task === 'passkey' && x.depth === 0.25));
      const rows: string[][] = [];
      for (const x of instances) {
        const ids = lm.tokenizer.encode(x.prompt);
        process.stdout.write(`\n${x.task}, ${ids.length} tokens, needle at depth ${x.depth}, expected "${x.answer.trim()}"\n`);
        for (const m of METHODS) {
          const out = await generate(lm, ids, { temperature: 0, maxNewTokens: x.answer.length + 2, compression: m.plan?.() });
          const answer = out.text.trim();
          const ok = answer.startsWith(x.answer.trim());
          const row = [x.task, m.label, answer.slice(0, 12), ok ? 'yes' : 'no', (out.cacheBytes / 2 ** 20).toFixed(1), (out.prefillMs / 1000).toFixed(1)];
          rows.push(row);
          process.stdout.write(`  ${m.label.padEnd(22)} ${row[2].padEnd(12)} ${ok ? 'correct' : 'wrong'}  KV ${row[4]} MiB  prefill ${row[5]} s\n`);
        }
      }
      process.stdout.write(`\nSame budget for every press: ${RATIO * 100}% of the cache removed. Full sweep: docs/presses.md.\n`);
    });
}
