/**
 * The sampling defaults a model ships in `generation_config.json` (what transformers' `generate()` uses when the
 * caller sets nothing). Only fields present (and not null) in the file appear in the result, so callers can layer
 * them: CLI flags over these over built-in defaults. A missing file yields `{}`.
 */
/// <reference types="node" />
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AttendError, check } from '../errors.js';
import { parseJson } from '../models/config.js';

export interface GenerationDefaults {
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  doSample?: boolean;
  maxNewTokens?: number;
  /** Prompt plus generated tokens, as transformers counts it. */
  maxLength?: number;
  /** `eos_token_id`, always as a list (the file may hold one id or several). */
  eosTokenIds?: number[];
  bosTokenId?: number;
  padTokenId?: number;
}

export const GENERATION_CONFIG_FILE = 'generation_config.json';

type Kind = 'number' | 'count' | 'boolean';
const FIELDS: [json: string, key: Exclude<keyof GenerationDefaults, 'eosTokenIds'>, kind: Kind][] = [
  ['temperature', 'temperature', 'number'],
  ['top_k', 'topK', 'count'],
  ['top_p', 'topP', 'number'],
  ['min_p', 'minP', 'number'],
  ['repetition_penalty', 'repetitionPenalty', 'number'],
  ['do_sample', 'doSample', 'boolean'],
  ['max_new_tokens', 'maxNewTokens', 'count'],
  ['max_length', 'maxLength', 'count'],
  ['bos_token_id', 'bosTokenId', 'count'],
  ['pad_token_id', 'padTokenId', 'count'],
];

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function valid(kind: Kind, v: unknown): boolean {
  if (kind === 'boolean') return typeof v === 'boolean';
  if (kind === 'count') return isCount(v);
  return typeof v === 'number' && Number.isFinite(v);
}

/** Reads `dir/generation_config.json` if present. */
export function readGenerationConfig(dir: string): GenerationDefaults {
  const file = join(dir, GENERATION_CONFIG_FILE);
  if (!existsSync(file)) return {};
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new AttendError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  const json = parseJson(text, file);
  check(typeof json === 'object' && json !== null && !Array.isArray(json), `${file}: not a JSON object`);
  const raw = json as Record<string, unknown>;
  const out: GenerationDefaults = {};
  for (const [name, key, kind] of FIELDS) {
    const v = raw[name];
    if (v === undefined || v === null) continue;
    check(valid(kind, v), `${file}: ${name} is ${JSON.stringify(v)}, expected ${kind === 'count' ? 'a non-negative integer' : `a ${kind}`}`);
    (out as Record<string, unknown>)[key] = v;
  }
  const eos = raw.eos_token_id;
  if (eos !== undefined && eos !== null) {
    const ids = Array.isArray(eos) ? eos : [eos];
    check(ids.every(isCount), `${file}: eos_token_id is ${JSON.stringify(eos)}, expected a token id or a list of them`);
    out.eosTokenIds = ids;
  }
  return out;
}
