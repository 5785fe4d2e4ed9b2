/** `attend presses`: the KV-cache compression methods, their options with defaults, and their sources. */
import type { Command } from 'commander';
import { ATTENTION_KERNELS } from '../attention/kernels/index.js';
import { PRESSES } from '../presses/registry.js';
import { SELECTORS } from '../selectors/registry.js';

export function registerPresses(program: Command): void {
  program
    .command('presses')
    .description('list the KV-cache compression methods, the selectors and the attention kernels, with their options and sources')
    .option('--json', 'print JSON')
    .action((flags: { json?: boolean }) => {
      if (flags.json) {
        const list = PRESSES.map(({ name, summary, source, options }) => ({ name, summary, source, options }));
        process.stdout.write(JSON.stringify(list, null, 2) + '\n');
        return;
      }
      for (const p of PRESSES) {
        process.stdout.write(`${p.name}: ${p.summary}\n  source: ${p.source}\n`);
        if (p.sizesItself) process.stdout.write('  sets its own size: no --ratio or --budget\n');
        for (const [key, spec] of Object.entries(p.options)) {
          process.stdout.write(`  --press-opt ${key}=${spec.required ? '…' : spec.default}  ${spec.description}${spec.required ? ' (required)' : ''}\n`);
        }
      }
      process.stdout.write('\nUse: attend generate --press NAME (--ratio R | --budget N) [--press-opt KEY=VALUE] [--press-during prefill|chunks]\n');
      process.stdout.write('(a press that sets its own size takes neither --ratio nor --budget)\n');
      process.stdout.write('\nSelectors (decode-time sparse attention: each step reads fewer entries, none dropped):\n');
      for (const [name, entry] of Object.entries(SELECTORS)) {
        process.stdout.write(`${name}: ${entry.summary}\n  source: ${entry.source}\n`);
        for (const [key, what] of Object.entries(entry.options)) process.stdout.write(`  --selector-opt ${key}=…  ${what}\n`);
      }
      process.stdout.write('\nAttention kernels (--attention NAME[:key=value,…]):\n');
      for (const [name, entry] of Object.entries(ATTENTION_KERNELS)) {
        process.stdout.write(`${name}: ${entry.summary}\n`);
        for (const [key, what] of Object.entries(entry.options)) process.stdout.write(`  ${key}: ${what}\n`);
      }
    });
}
