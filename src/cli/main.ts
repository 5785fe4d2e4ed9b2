#!/usr/bin/env node
/** The `attend` command line. User errors print one line and exit 1; anything else is a bug and keeps its stack. */
import { Command, CommanderError } from 'commander';
import { AttendError } from '../errors.js';
import { registerBench } from './bench.js';
import { registerGenerate } from './generate.js';
import { registerInfo } from './info.js';
import { registerLogits } from './logits.js';
import { registerPresses } from './presses.js';
import { registerStart } from './start.js';
import { registerTokenize } from './tokenize.js';

const program = new Command('attend')
  .description('Attention, end to end: run Hugging Face decoder LLMs with a controllable KV cache')
  .showSuggestionAfterError()
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

registerGenerate(program);
registerLogits(program);
registerTokenize(program);
registerInfo(program);
registerPresses(program);
registerStart(program);
registerBench(program);
for (const command of program.commands) command.exitOverride();

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  if (e instanceof AttendError) {
    process.stderr.write(`attend: ${e.message}\n`);
    process.exit(1);
  }
  throw e;
}
