/**
 * Text ↔ token ids for a Hugging Face model directory, plus its chat template.
 *
 * Wraps `@huggingface/tokenizers` (a pure-JS reading of `tokenizer.json`) and `@huggingface/jinja`, and follows
 * transformers where they differ:
 * - `clean_up_tokenization_spaces` defaults to false (transformers' default since 4.45; the library's is true).
 * - Chat templates render with `messages`, `add_generation_prompt`, `tools`/`documents` (null unless given), the
 *   special tokens (`bos_token`, `eos_token`, ... as strings) and `raise_exception`/`strftime_now`, trimming blocks.
 * - `encodeChat` encodes the rendered text WITHOUT adding special tokens, as `apply_chat_template(tokenize=True)`
 *   does: templates write their own BOS, so adding another would double it.
 * - `decode` drops ids that name no token (e.g. the padded tail of an embedding matrix), as the Rust library does.
 * The stream decoder is here too, since it is defined by `decode`: its pieces concatenate to `decode(all ids)`.
 */
/// <reference types="node" />
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Tokenizer, type Encoding } from '@huggingface/tokenizers';
import { AttendError, check } from '../errors.js';
import { MAX_DIMENSION, parseJson } from '../models/config.js';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface ChatOptions {
  /** Append the assistant's turn header so the model answers next (transformers' `add_generation_prompt`). */
  addGenerationPrompt?: boolean;
  /** More template variables (`tools`, `enable_thinking`, `date_string`, ...); they override the defaults. */
  extra?: Record<string, unknown>;
  /** Which of several named templates to use (tokenizer_config may list e.g. `default` and `tool_use`). */
  templateName?: string;
}

export interface StreamDecoder {
  /** Adds one id; returns the text that became stable (possibly ''). */
  push(id: number): string;
  /** Returns everything still held back (an incomplete character comes out as U+FFFD). */
  flush(): string;
}

/** The special-token names transformers puts in `special_tokens_map`, and so in the template context. */
const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;

/** transformers' `clean_up_tokenization`: every rule deletes a space before punctuation or a contraction. */
function cleanUpTokenization(text: string): string {
  return text.replace(/ \./g, '.').replace(/ \?/g, '?').replace(/ !/g, '!').replace(/ ,/g, ',').replace(/ ' /g, "'")
    .replace(/ n't/g, "n't").replace(/ 'm/g, "'m").replace(/ 's/g, "'s").replace(/ 've/g, "'ve").replace(/ 're/g, "'re");
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new AttendError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return parseJson(text, file);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A special token in tokenizer_config is a string or an AddedToken object `{content, ...}`. */
function tokenString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v.content;
  return undefined;
}

/**
 * The tokenizer models @huggingface/tokenizers implements, and the vocabulary shape each needs. The library guesses
 * for any other `type` (a map vocabulary becomes a "Legacy" model that never splits text, a list one Unigram) and
 * misreads a vocabulary of the wrong shape without complaint, so both would tokenise to garbage: refused here.
 * (WordLevel is not in the library's list: it would fall to the Legacy guess.)
 */
const TOKENIZER_MODELS: Record<string, 'map' | 'list'> = { BPE: 'map', WordPiece: 'map', Unigram: 'list' };

/** Token ids in tokenizer.json: below config.ts's MAX_DIMENSION, the largest vocabulary a config may declare. */
function checkTokenIds(json: Record<string, unknown>, file: string): void {
  const added = json.added_tokens ?? [];
  check(Array.isArray(added), `${file}: "added_tokens" must be a list`);
  added.forEach((t, i) => {
    check(isObject(t) && typeof t.content === 'string', `${file}: "added_tokens"[${i}] must be an object with a string "content"`);
    check(typeof t.id === 'number' && Number.isSafeInteger(t.id) && t.id >= 0 && t.id < MAX_DIMENSION,
      () => `${file}: "added_tokens"[${i}] has id ${JSON.stringify(t.id)}, expected a token id below ${MAX_DIMENSION}`);
  });
}

function checkTokenizerModel(model: Record<string, unknown>, file: string): void {
  const type = model.type;
  const supported = Object.keys(TOKENIZER_MODELS).join(', ');
  check(typeof type === 'string' && Object.hasOwn(TOKENIZER_MODELS, type),
    () => `${file}: tokenizer model type ${JSON.stringify(type) ?? 'missing'} is not supported (supported: ${supported})`);
  const vocab = model.vocab;
  const isId = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v < MAX_DIMENSION;
  if (TOKENIZER_MODELS[type] === 'map') {
    check(isObject(vocab), `${file}: a ${type} tokenizer's "model.vocab" must be an object mapping tokens to ids, not ${Array.isArray(vocab) ? 'a list' : JSON.stringify(vocab) ?? 'missing'}`);
    const bad = Object.entries(vocab).find(([, id]) => !isId(id));
    check(bad === undefined, () => `${file}: "model.vocab" maps ${JSON.stringify(bad![0])} to ${JSON.stringify(bad![1])}, expected a token id below ${MAX_DIMENSION}`);
    if (type === 'BPE') {
      const merges = model.merges ?? [];
      const isMerge = (m: unknown) => typeof m === 'string' || (Array.isArray(m) && m.length === 2 && m.every((t) => typeof t === 'string'));
      check(Array.isArray(merges) && merges.every(isMerge), `${file}: "model.merges" must be a list of "a b" strings or [a, b] pairs`);
    }
  } else {
    const isPiece = (p: unknown) => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && typeof p[1] === 'number' && Number.isFinite(p[1]);
    check(Array.isArray(vocab) && vocab.length > 0 && vocab.every(isPiece),
      `${file}: a Unigram tokenizer's "model.vocab" must be a non-empty list of [token, score] pairs`);
    const unk = model.unk_id;
    check(unk === undefined || unk === null || (isId(unk) && (unk as number) < vocab.length),
      () => `${file}: "model.unk_id" ${JSON.stringify(unk)} is not an index into the vocabulary`);
  }
}

export class TextTokenizer {
  readonly vocabSize: number;
  readonly bosTokenId?: number;
  readonly eosTokenIds: number[];
  readonly padTokenId?: number;
  /** The template `applyChatTemplate` uses by default. */
  readonly chatTemplate?: string;
  /** Every named template (a single unnamed template is `default`). */
  readonly chatTemplates: Readonly<Record<string, string>>;
  /** Special tokens by transformers' names (`bos_token`, ...), as strings; what templates see. */
  readonly specialTokens: Readonly<Record<string, string | string[]>>;
  /** Whether decode applies transformers' clean-up of spaces before punctuation. */
  readonly cleanUpSpaces: boolean;

  private constructor(
    private readonly tok: Tokenizer,
    private readonly source: string,
    config: Record<string, unknown>,
    templates: Record<string, string>,
    /** The file the chat templates came from, for messages. */
    private readonly templateFile: string,
  ) {
    let max = -1;
    for (const id of tok.get_vocab(true).values()) if (id > max) max = id;
    this.vocabSize = max + 1;

    const special: Record<string, string | string[]> = {};
    for (const key of SPECIAL_TOKEN_KEYS) {
      const s = tokenString(config[key]);
      if (s !== undefined) special[key] = s;
    }
    const additional = config.additional_special_tokens;
    if (Array.isArray(additional)) special.additional_special_tokens = additional.map(tokenString).filter((s): s is string => s !== undefined);
    this.specialTokens = special;

    const id = (key: string) => (typeof special[key] === 'string' ? tok.token_to_id(special[key]) : undefined);
    this.bosTokenId = id('bos_token');
    this.padTokenId = id('pad_token');
    const eos = id('eos_token');
    this.eosTokenIds = eos === undefined ? [] : [eos];
    this.cleanUpSpaces = config.clean_up_tokenization_spaces === true;
    this.chatTemplates = templates;
    this.chatTemplate = templates.default;
  }

  /**
   * Loads `tokenizer.json` and, when present, `tokenizer_config.json` and a chat template from
   * `chat_template.jinja` (which wins, as in transformers), tokenizer_config's `chat_template`, or `chat_template.json`.
   */
  static load(dir: string): TextTokenizer {
    const file = join(dir, 'tokenizer.json');
    if (!existsSync(file)) {
      const spm = existsSync(join(dir, 'tokenizer.model'));
      throw new AttendError(`${file}: not found; attend needs a fast tokenizer (tokenizer.json)${spm ? ', and this directory only has a sentencepiece tokenizer.model' : ''}`);
    }
    const json = readJson(file);
    check(isObject(json) && isObject(json.model), `${file}: not a tokenizer (no "model" object)`);
    checkTokenizerModel(json.model, file);
    checkTokenIds(json, file);
    const configFile = join(dir, 'tokenizer_config.json');
    const rawConfig = existsSync(configFile) ? readJson(configFile) : {};
    check(isObject(rawConfig), `${configFile}: not a JSON object`);

    // The library needs these keys present (null is fine) and special tokens as plain strings.
    const spec = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...json };
    const libConfig: Record<string, unknown> = { ...rawConfig, clean_up_tokenization_spaces: rawConfig.clean_up_tokenization_spaces === true };
    for (const key of SPECIAL_TOKEN_KEYS) libConfig[key] = tokenString(rawConfig[key]);
    if (Array.isArray(rawConfig.additional_special_tokens)) {
      libConfig.additional_special_tokens = rawConfig.additional_special_tokens.map(tokenString).filter((s) => s !== undefined);
    }
    let tok: Tokenizer;
    try {
      tok = new Tokenizer(spec, libConfig);
    } catch (e) {
      throw new AttendError(`${file}: unsupported or malformed tokenizer (${e instanceof Error ? e.message : String(e)})`);
    }
    const [templates, templateFile] = TextTokenizer.readTemplates(dir, rawConfig, configFile);
    return new TextTokenizer(tok, file, rawConfig, templates, templateFile);
  }

  /** The named chat templates and the file they came from. */
  private static readTemplates(dir: string, config: Record<string, unknown>, configFile: string): [Record<string, string>, string] {
    const jinja = join(dir, 'chat_template.jinja');
    if (existsSync(jinja)) {
      check(statSync(jinja).isFile(), `${jinja}: not a file (a chat template must be a text file)`);
      try {
        return [{ default: readFileSync(jinja, 'utf8') }, jinja];
      } catch (e) {
        throw new AttendError(`${jinja}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
      }
    }
    const fromValue = (v: unknown, file: string): [Record<string, string>, string] => {
      if (v === undefined || v === null) return [{}, file];
      if (typeof v === 'string') return [{ default: v }, file];
      check(Array.isArray(v) && v.every((t) => isObject(t) && typeof t.name === 'string' && typeof t.template === 'string'),
        `${file}: chat_template must be a string or a list of {name, template}`);
      return [Object.fromEntries((v as { name: string; template: string }[]).map((t) => [t.name, t.template])), file];
    };
    if (config.chat_template !== undefined) return fromValue(config.chat_template, configFile);
    const json = join(dir, 'chat_template.json');
    if (existsSync(json)) {
      const v = readJson(json);
      return fromValue(isObject(v) ? v.chat_template : undefined, json);
    }
    return [{}, dir];
  }

  /** Text to ids; `addSpecialTokens` (default true, as in transformers) applies the post-processor, e.g. a BOS. */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const { ids, tokens }: Encoding = this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true });
    // Without an unk_token the library yields undefined for a piece it cannot map.
    const bad = ids.findIndex((id: number | undefined) => id === undefined);
    check(bad < 0, () => `${this.source}: cannot encode piece ${JSON.stringify(tokens[bad])}: not in the vocabulary and there is no unk_token`);
    return ids;
  }

  /** Ids to text. Ids that name no token are dropped; special tokens are kept unless `skipSpecialTokens`. */
  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    return this.decodeWith(ids, opts.skipSpecialTokens ?? false, this.cleanUpSpaces);
  }

  private decodeWith(ids: readonly number[], skipSpecial: boolean, cleanUp: boolean): string {
    const known = ids.filter((id) => this.tok.id_to_token(id) !== undefined);
    if (known.length === 0) return '';
    return this.tok.decode(known, { skip_special_tokens: skipSpecial, clean_up_tokenization_spaces: cleanUp });
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  /** Renders a conversation to the prompt text the model was trained on. */
  applyChatTemplate(messages: ChatMessage[], opts: ChatOptions = {}): string {
    const name = opts.templateName ?? 'default';
    const source = this.chatTemplates[name];
    if (source === undefined) {
      const names = Object.keys(this.chatTemplates);
      throw new AttendError(names.length === 0
        ? `${this.templateFile}: the model has no chat template (looked in chat_template.jinja, tokenizer_config.json, chat_template.json)`
        : `${this.templateFile}: no chat template named '${name}' (have: ${names.join(', ')})`);
    }
    return renderTemplate(source, { messages, tools: null, documents: null, add_generation_prompt: opts.addGenerationPrompt ?? false,
      ...this.specialTokens, ...opts.extra }, messages.length, `${this.templateFile}: chat template '${name}'`);
  }

  /** Renders and encodes a conversation without adding special tokens (the template writes its own). */
  encodeChat(messages: ChatMessage[], opts: ChatOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, opts), { addSpecialTokens: false });
  }

  /**
   * Incremental detokenizer for streaming. Each push decodes only a short window of recent ids (the window's
   * first tokens were already emitted and serve as context, so e.g. a leading-space marker decodes as in the
   * full text), and emits the new text up to any trailing U+FFFD: an incomplete UTF-8 character waits for its
   * remaining bytes. When the tokenizer cleans up spaces, text ending within 4 characters after a space waits
   * too, since a later " ." or " n't" would remove that space. The pushes plus flush concatenate to `decode(all)`.
   *
   * `prefix` (e.g. the prompt's ids) is context only: its text is not emitted, but the first pushed token decodes
   * as it would after it. That matters for Metaspace tokenizers (Llama 2, Mistral), where a text's first "▁word"
   * loses its space: without a prefix the stream starts "word", as `decode(generated)` does; with one, " word".
   */
  streamDecoder(opts: { skipSpecialTokens?: boolean; prefix?: readonly number[] } = {}): StreamDecoder {
    const skip = opts.skipSpecialTokens ?? false;
    const cleanUp = this.cleanUpSpaces;
    const raw = (ids: number[]) => this.decodeWith(ids, skip, false);
    const ids: number[] = (opts.prefix ?? []).slice(-4); // the window: recent ids, the first few as context
    let seen = raw(ids).replace(/\ufffd+$/, '').length; // chars of raw(ids) already passed on (or context)
    let pending = ''; // raw text held for clean-up

    const clean = (piece: string, final: boolean): string => {
      if (!cleanUp) return piece;
      pending += piece;
      let cut = pending.length;
      // Every clean-up pattern starts with a space and spans ≤ 4 chars: cut where none could straddle the cut.
      while (!final && cut > 0) {
        const i = pending.lastIndexOf(' ', cut - 1);
        if (i < 0 || i < cut - 4) break;
        cut = i;
      }
      const out = cleanUpTokenization(pending.slice(0, cut));
      pending = pending.slice(cut);
      return out;
    };

    return {
      push(id: number): string {
        ids.push(id);
        const text = raw(ids);
        let stable = text.length;
        while (stable > seen && text.charCodeAt(stable - 1) === 0xfffd) stable--;
        const piece = stable > seen ? text.slice(seen, stable) : '';
        seen = Math.max(seen, stable);
        // Slide the window once all of it is out, keeping a few ids of context.
        if (stable === text.length && ids.length > 16) {
          ids.splice(0, ids.length - 4);
          seen = raw(ids).length;
        }
        return clean(piece, false);
      },
      flush(): string {
        const text = raw(ids);
        const piece = text.slice(seen);
        seen = text.length;
        return clean(piece, true);
      },
    };
  }
}

/*
 * Chat template rendering, bounded. A chat template is code that comes with the checkpoint, and @huggingface/jinja
 * has no limits of its own: `{% for i in range(100000000) %}` takes minutes and gigabytes, and a template can build
 * strings of any length. So templates are parsed and rendered in a child Node process with a small heap, killed
 * on a deadline, and inside it every evaluation step is counted and every string or list a step produces is
 * measured. The counters give the precise errors; the heap limit and the deadline are the backstop for what one
 * library call can do (e.g. `tojson(indent=N)` over a long list). A process, not a worker thread: a worker that
 * runs out of heap can abort the whole process (measured: `range(150000)|tojson(indent=3000)` did). spawnSync
 * keeps applyChatTemplate synchronous; the price is a Node start per render, about 50 ms.
 */

/** Steps (template nodes evaluated) any render may take. Real templates take 13-37 per message (measured on Qwen2.5's,
 * attend-mini's and a Llama template) plus a few dozen for the system prompt and tools, so this is thousands of times
 * a short conversation's need, and a loop can spend it in about a second. */
export const TEMPLATE_STEP_LIMIT = 200_000;
/** More steps per message, so a long conversation never meets the limit: about 50 times what real templates take. */
export const TEMPLATE_STEPS_PER_MESSAGE = 2_000;
/** Characters a template may add beyond twice the text it is given (messages, tools and other variables): real
 * templates add role headers and system prompts, a few kilobytes; 1M characters is some 250K tokens of markup. */
export const TEMPLATE_MARKUP_CHARS = 1 << 20;
/** Wall-clock limit on one render, the process start included; the step limit normally stops a template long before. */
export const TEMPLATE_TIME_LIMIT_MS = 20_000;
/** Heap of the rendering process: room for the step and output limits' worth of values several times over. */
export const TEMPLATE_HEAP_LIMIT_MB = 256;

/** The renderer: reads {source, context, steps, chars} as JSON on stdin, writes one JSON reply: ok/malformed/limit/failed. */
const RENDERER_SOURCE = String.raw`
const { Template, Interpreter, Environment } = require(process.argv[1]);
class Limit extends Error {}
let steps = 0, maxSteps = 0, maxChars = 0;
const size = (v) => (v && (typeof v.value === 'string' || Array.isArray(v.value)) ? v.value.length : 0);
const evaluate = Interpreter.prototype.evaluate;
Interpreter.prototype.evaluate = function (node, env) {
  if (++steps > maxSteps) throw new Limit('steps');
  const v = evaluate.call(this, node, env);
  if (size(v) > maxChars) throw new Limit(typeof v.value === 'string' ? 'chars' : 'items');
  return v;
};
function range(start, stop, step = 1) {
  if (stop === undefined) { stop = start; start = 0; }
  for (const x of [start, stop, step]) if (!Number.isInteger(x)) throw new Error('range() takes integers, got ' + x);
  if (step === 0) throw new Error('range() step must not be zero');
  const n = Math.max(0, Math.ceil((stop - start) / step));
  if (n > maxSteps - steps) throw new Limit('steps');
  return Array.from({ length: n }, (_, i) => start + i * step);
}
const set = Environment.prototype.set;
Environment.prototype.set = function (name, value) {
  return set.call(this, name, name === 'range' && typeof value === 'function' ? range : value);
};
function run(input) {
  const { source, context, steps: s, chars } = JSON.parse(input);
  maxSteps = s; maxChars = chars;
  let template;
  try { template = new Template(source); } catch (e) {
    return { kind: 'malformed', message: e instanceof Error ? e.name + ': ' + e.message : String(e) };
  }
  try {
    const text = template.render(context);
    if (text.length > chars) throw new Limit('chars');
    return { kind: 'ok', text };
  } catch (e) {
    if (e instanceof Limit) return { kind: 'limit', message: e.message };
    return { kind: 'failed', message: e instanceof Error ? e.message : String(e) };
  }
}
const parts = [];
process.stdin.on('data', (d) => parts.push(d));
process.stdin.on('end', () => process.stdout.write(JSON.stringify(run(Buffer.concat(parts).toString('utf8')))));
`;

let jinjaPath: string | undefined;

/** An unclosed block makes the parser read past the last token; say what that usually means. */
function malformedReason(message: string): string {
  if (/^TypeError: Cannot read properties of undefined/.test(message)) return 'the template ends inside a block or expression (an unclosed {% for %}, {% if %}, {{ or similar)';
  return message.replace(/^[A-Za-z]*Error: /, '');
}

const oneLine = (text: string) => text.replace(/\s*[\r\n]+\s*/g, ' ');

/** Renders `source` with `context` under the limits above; every failure is an AttendError starting with `what`. */
export function renderTemplate(source: string, context: Record<string, unknown>, messages: number, what: string): string {
  let input: string;
  try {
    input = JSON.stringify({ source, context });
  } catch (e) {
    throw new AttendError(`${what}: the template variables must be plain JSON data (${oneLine(e instanceof Error ? e.message : String(e))})`);
  }
  const steps = TEMPLATE_STEP_LIMIT + TEMPLATE_STEPS_PER_MESSAGE * messages;
  const chars = TEMPLATE_MARKUP_CHARS + 2 * input.length;
  jinjaPath ??= createRequire(import.meta.url).resolve('@huggingface/jinja');
  const r = spawnSync(process.execPath, [`--max-old-space-size=${TEMPLATE_HEAP_LIMIT_MB}`, '-e', RENDERER_SOURCE, jinjaPath], {
    input: `${input.slice(0, -1)},"steps":${steps},"chars":${chars}}`,
    encoding: 'utf8',
    timeout: TEMPLATE_TIME_LIMIT_MS,
    killSignal: 'SIGKILL',
    maxBuffer: 8 * chars + (1 << 20),
    env: { ...process.env, NODE_OPTIONS: '' },
    windowsHide: true,
  });
  let reply: { kind: string; text?: string; message?: string } | undefined;
  try {
    reply = r.status === 0 ? JSON.parse(r.stdout) : undefined;
  } catch {
    reply = undefined;
  }
  if (reply === undefined) {
    const timedOut = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
    if (timedOut) {
      throw new AttendError(`${what}: rendering stopped at the time limit of ${TEMPLATE_TIME_LIMIT_MS / 1000} s (TEMPLATE_TIME_LIMIT_MS in src/io/tokenizer.ts)`);
    }
    if (r.error && (r.error as NodeJS.ErrnoException).code !== 'ENOBUFS') {
      throw new AttendError(`${what}: could not start the template renderer (${oneLine(r.error.message)})`);
    }
    throw new AttendError(`${what}: rendering stopped at the memory limit of ${TEMPLATE_HEAP_LIMIT_MB} MB ` +
      `(TEMPLATE_HEAP_LIMIT_MB in src/io/tokenizer.ts; the renderer ended with ${r.signal ?? `status ${r.status}`})`);
  }
  switch (reply.kind) {
    case 'ok':
      return reply.text!;
    case 'malformed':
      throw new AttendError(`${what} is malformed: ${oneLine(malformedReason(reply.message!))}`);
    case 'limit':
      throw new AttendError(reply.message === 'steps'
        ? `${what}: rendering stopped at the step limit of ${steps.toLocaleString('en-US')} template steps ` +
          `(TEMPLATE_STEP_LIMIT + TEMPLATE_STEPS_PER_MESSAGE per message, in src/io/tokenizer.ts); a loop runs far longer than a chat prompt needs`
        : `${what}: rendering stopped at the output limit of ${chars.toLocaleString('en-US')} ${reply.message === 'chars' ? 'characters' : 'list items'} ` +
          `(TEMPLATE_MARKUP_CHARS plus twice the input, in src/io/tokenizer.ts)`);
    default:
      throw new AttendError(`${what} failed: ${oneLine(reply.message!)}`);
  }
}
