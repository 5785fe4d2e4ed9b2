/**
 * `attend tokenize`: text (--text, --file, or standard input) to token ids with the model's tokenizer, exactly as
 * `attend generate` encodes a prompt. By default the ids are printed comma-separated on one line, so they paste into
 * `attend logits --ids` (or the output is saved and read with `attend logits --ids-file`); --json prints a JSON
 * array, and --tokens shows each id with its vocabulary entry and the text it decodes to.
 */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { AttendError, check } from '../errors.js';
import { TextTokenizer } from '../io/tokenizer.js';
import { checkPromptFlags, defaultModel, encodePrompt, readInput, type PromptFlags } from './options.js';

interface Flags extends PromptFlags {
  model?: string;
  text?: string;
  file?: string;
  json?: boolean;
  tokens?: boolean;
}

export function registerTokenize(program: Command): void {
  program
    .command('tokenize')
    .description('print the token ids of a text (comma-separated, for `attend logits --ids`)')
    .option('--model <dir>', 'Hugging Face model directory (default: the bundled model)')
    .option('--text <text>', 'the text')
    .option('--file <file>', 'read the text from a file ("-": standard input); without --text or --file, standard input is read')
    .option('--chat', "wrap the text as a user message with the model's chat template, as `generate --chat` does")
    .option('--system <text>', 'a system message (needs --chat)')
    .option('--no-special-tokens', "plain text only: leave out the tokenizer's special tokens (e.g. BOS)")
    .option('--json', 'print a JSON array (of {id, token, text} objects with --tokens)')
    .option('--tokens', 'show each id with its vocabulary entry and decoded text')
    .action((flags: Flags) => {
      checkPromptFlags(flags);
      check(!(flags.chat && flags.specialTokens === false), '--no-special-tokens applies to plain text; the chat template places its own');
      check(flags.text === undefined || flags.file === undefined, 'give at most one of --text or --file');
      const dir = flags.model ?? defaultModel();
      check(existsSync(dir), `model directory not found: ${dir}`);
      const tokenizer = TextTokenizer.load(dir);
      const text = flags.text ?? readStdinOrFile(flags.file);
      const ids = encodePrompt(tokenizer, text, flags);
      process.stdout.write(format(tokenizer, ids, flags) + '\n');
    });
}

function readStdinOrFile(file: string | undefined): string {
  if (file !== undefined) return readInput(file, '--file');
  if (process.stdin.isTTY) throw new AttendError('give --text or --file, or pipe the text on standard input');
  return readInput('-', 'tokenize');
}

function format(tokenizer: TextTokenizer, ids: number[], flags: Flags): string {
  if (!flags.tokens) return flags.json ? JSON.stringify(ids) : ids.join(',');
  const rows = ids.map((id) => ({ id, token: tokenizer.idToToken(id) ?? null, text: tokenizer.decode([id]) }));
  if (flags.json) return JSON.stringify(rows);
  const width = Math.max(...ids.map((id) => String(id).length), 1);
  return rows.map((r) => `${String(r.id).padStart(width)}  ${JSON.stringify(r.token)}  ${JSON.stringify(r.text)}`).join('\n');
}
