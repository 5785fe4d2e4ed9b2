/** Parsing helpers shared by commands: numbers and lists from flags, with one-line errors naming the flag. */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AttendError } from '../errors.js';
import { unescapeStop } from '../generate/stop.js';
import type { TextTokenizer } from '../io/tokenizer.js';

export function parseNumber(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new AttendError(`${flag}: "${value}" is not a number`);
    return n;
  };
}

export function parseCount(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim())) throw new AttendError(`${flag}: "${value}" is not a whole number ≥ 0`);
    return n;
  };
}

/** A whole number ≥ `min` (e.g. --draft-tokens, where 0 proposals would be no speculation at all). */
export function parseCountFrom(flag: string, min: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value.trim()) || Number(value) < min) throw new AttendError(`${flag}: "${value}" is not a whole number ≥ ${min}`);
    return Number(value);
  };
}

export function parseIds(flag: string) {
  return (value: string): number[] => {
    const parts = value.split(',').map((s) => s.trim());
    if (parts.some((p) => !/^\d+$/.test(p))) throw new AttendError(`${flag}: expected comma-separated token ids, got "${value}"`);
    return parts.map(Number);
  };
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** --stop, repeatable, with \n, \t, \r and \\ unescaped (see unescapeStop). */
export function collectStops(value: string, previous: string[] = []): string[] {
  try {
    return [...previous, unescapeStop(value)];
  } catch (e) {
    throw new AttendError(`--stop: ${(e as Error).message}`);
  }
}

/**
 * Bytes of prompt text read per token of the model's context before tokenising: a prompt longer than
 * context × this cannot fit, so it is refused before the tokenizer sees it (a 20 MB file or /dev/zero would
 * otherwise be read whole and tokenised, seconds and gigabytes, only to fail the length check). 64 is above the
 * text of the longest tokens in common BPE vocabularies (attend-mini's longest is a newline and 48 spaces,
 * 49 bytes) and sixteen times what English text averages (about 4 bytes per token). Raise it here if a prompt
 * really averages more bytes per token.
 */
export const PROMPT_BYTES_PER_TOKEN = 64;

/**
 * Bytes read from any other input file (token ids, `attend tokenize`'s text) before giving up: far above what any
 * context holds, low enough that /dev/zero or an endless pipe ends in a second with a one-line error.
 */
export const MAX_INPUT_BYTES = 256 * 1024 * 1024;

/** The most bytes of prompt text a model of `context` tokens is given to tokenise (see PROMPT_BYTES_PER_TOKEN). */
export function promptByteLimit(context: number): number {
  return context * PROMPT_BYTES_PER_TOKEN;
}

/**
 * A file's text, or standard input's for "-"; `flag` names the option in the error. At most `maxBytes` are read:
 * a regular file larger than that is refused from its size, anything else (a pipe, a device) once it has given
 * one byte more; `limit` says in the error where the bound comes from.
 */
export function readInput(file: string, flag: string, maxBytes = MAX_INPUT_BYTES, limit = 'the input limit, MAX_INPUT_BYTES in src/cli/options.ts'): string {
  const name = file === '-' ? 'standard input' : file;
  const tooLong = () => new AttendError(`${flag}: ${name} is longer than ${maxBytes.toLocaleString('en')} bytes (${limit})`);
  let fd: number | undefined;
  try {
    fd = file === '-' ? 0 : openSync(file, 'r');
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw Object.assign(new Error('EISDIR'), { code: 'EISDIR' });
    if (stat.isFile() && stat.size > maxBytes) throw tooLong();
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(1 << 20, maxBytes + 1 - total));
      let n: number;
      try {
        n = readSync(fd, chunk, 0, chunk.length, null);
      } catch (e) {
        // A non-blocking standard input with nothing yet: wait a little and read again.
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
        continue;
      }
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > maxBytes) throw tooLong();
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } catch (e) {
    if (e instanceof AttendError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new AttendError(`${flag}: ${name}: cannot read (${code})`);
  } finally {
    if (fd !== undefined && fd !== 0) closeSync(fd);
  }
}

/**
 * Token ids as `attend tokenize` writes them: comma- and/or whitespace-separated (its default), or a JSON array
 * of ids or of {id, ...} objects (its --json and --json --tokens). `source` names the input in errors.
 */
export function parseIdText(text: string, source: string): number[] {
  const trimmed = text.trim();
  let ids: unknown[];
  if (trimmed.startsWith('[')) {
    let json: unknown;
    try {
      json = JSON.parse(trimmed);
    } catch (e) {
      throw new AttendError(`${source}: not valid JSON (${(e as Error).message})`);
    }
    if (!Array.isArray(json)) throw new AttendError(`${source}: expected a JSON array of token ids`);
    ids = json.map((v) => (typeof v === 'object' && v !== null && 'id' in v ? (v as { id: unknown }).id : v));
  } else {
    ids = trimmed === '' ? [] : trimmed.split(/[\s,]+/).map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  }
  const bad = ids.find((v) => !(typeof v === 'number' && Number.isInteger(v) && v >= 0));
  if (bad !== undefined) throw new AttendError(`${source}: expected token ids (whole numbers ≥ 0), got ${JSON.stringify(bad)}`);
  if (ids.length === 0) throw new AttendError(`${source}: no token ids`);
  return ids as number[];
}

export interface PromptFlags {
  chat?: boolean;
  system?: string;
  /** false to encode without the tokenizer's special tokens (e.g. BOS); plain text only. */
  specialTokens?: boolean;
}

/** --system only means something inside a chat template; checked before anything is loaded. */
export function checkPromptFlags(flags: PromptFlags): void {
  if (flags.system !== undefined && !flags.chat) {
    throw new AttendError('--system needs --chat: a system message only exists in a chat template');
  }
}

/** The ids a prompt becomes: plain text, or a user message (after an optional system message) in the chat template. */
export function encodePrompt(tokenizer: TextTokenizer, text: string, flags: PromptFlags): number[] {
  checkPromptFlags(flags);
  if (!flags.chat) return tokenizer.encode(text, { addSpecialTokens: flags.specialTokens ?? true });
  const messages = [...(flags.system !== undefined ? [{ role: 'system', content: flags.system }] : []), { role: 'user', content: text }];
  return tokenizer.encodeChat(messages, { addGenerationPrompt: true });
}

const here = dirname(fileURLToPath(import.meta.url));
/** The repository (or installed package) root: dist/cli/ → ../.. */
export const PACKAGE_ROOT = resolve(here, '..', '..');
export const BUNDLED_MODEL = join(PACKAGE_ROOT, 'models', 'attend-mini');

/** The model a command uses when --model is not given: the bundled attend-mini. */
export function defaultModel(): string {
  return BUNDLED_MODEL;
}
