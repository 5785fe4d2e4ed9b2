#!/usr/bin/env node
/** The `attend` command line. User errors print one line and exit 1; anything else is a bug and keeps its stack. */
import { Command, CommanderError } from 'commander';
import { AttendError } from '../errors.js';
import { registerBench } from './bench.js';
import { registerGenerate } from './generate.js';
import { registerHeads } from './heads.js';
import { registerInfo } from './info.js';
import { registerLogits } from './logits.js';
import { registerPresses } from './presses.js';
import { registerStart } from './start.js';
import { registerTokenize } from './tokenize.js';

/**
 * Exit status when the reader of standard output went away (EPIPE, e.g. `attend generate … | head -c 5`): 128 +
 * SIGPIPE, what a shell shows for a program the broken pipe ended. Nothing is printed: nobody is reading.
 */
export const BROKEN_PIPE_STATUS = 141;

/** Output errors end the process with one line (or quietly for a broken pipe), never an unhandled 'error' event. */
function guardOutput(stream: NodeJS.WriteStream, name: string): void {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(BROKEN_PIPE_STATUS);
    if (stream !== process.stderr) process.stderr.write(`attend: ${name}: cannot write (${e.code ?? e.message})\n`);
    process.exit(1);
  });
}
guardOutput(process.stdout, 'standard output');
guardOutput(process.stderr, 'standard error');

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
registerHeads(program);
for (const command of program.commands) command.exitOverride();

try {
  await program.parseAsync(process.argv);
} catch (e) {
  // Not process.exit: help or a version written to a full disk still reports its write error (guardOutput).
  if (e instanceof CommanderError) process.exitCode = e.exitCode;
  else if (e instanceof AttendError) {
    process.stderr.write(`attend: ${e.message}\n`);
    process.exit(1);
  } else throw e;
}
