/** `attend presses`: the KV-cache compression methods, their options with defaults, and their sources. */
import type { Command } from 'commander';
import { PRESSES } from '../presses/registry.js';

export function registerPresses(program: Command): void {
  program
    .command('presses')
    .description('list the KV-cache compression methods with their options and sources')
    .option('--json', 'print JSON')
    .action((flags: { json?: boolean }) => {
      if (flags.json) {
        const list = PRESSES.map(({ name, summary, source, options }) => ({ name, summary, source, options }));
        process.stdout.write(JSON.stringify(list, null, 2) + '\n');
        return;
      }
      for (const p of PRESSES) {
        process.stdout.write(`${p.name}: ${p.summary}\n  source: ${p.source}\n`);
        for (const [key, spec] of Object.entries(p.options)) {
          process.stdout.write(`  --press-opt ${key}=${spec.default}  ${spec.description}\n`);
        }
      }
      process.stdout.write('\nUse: attend generate --press NAME (--ratio R | --budget N) [--press-opt KEY=VALUE] [--press-during prefill|chunks]\n');
    });
}
