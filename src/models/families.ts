/**
 * The model families: each is one file (its config.json normaliser, its forward written against the Backend
 * interface, and its registry entry) plus one line here. An architecture named in config.json's `architectures` (or
 * its `model_type`) picks the family; the family reads the config and builds the model.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../backend/backend.js';
import { AttendError, check } from '../errors.js';
import { checkConfig, type Family, type Fields, fields, type Json, type ModelConfig, parseJson } from './config.js';
import { gpt2Family } from './gpt2.js';
import { llamaFamily } from './llama.js';
import type { CausalLM } from './model.js';
import type { WeightReader } from './weights.js';

export interface FamilyEntry {
  /** config.json architecture name → its model_type. */
  architectures: Record<string, string>;
  /** The normalised config, every field checked (one-line errors naming the file and the field). */
  config(json: Json, f: Fields, architecture: string, modelType: string, source: string): ModelConfig;
  create(config: ModelConfig, weights: WeightReader, backend: Backend): CausalLM;
}

export const FAMILIES: Record<Family, FamilyEntry> = {
  llama: llamaFamily,
  gpt2: gpt2Family,
};

/** Architectures this runtime implements, by the name in config.json's `architectures`. */
export const SUPPORTED_ARCHITECTURES: Record<string, { modelType: string; family: Family }> = Object.fromEntries(
  (Object.entries(FAMILIES) as [Family, FamilyEntry][]).flatMap(([family, entry]) =>
    Object.entries(entry.architectures).map(([architecture, modelType]) => [architecture, { modelType, family }])),
);


/** A model directory's config.json, normalised by its family. */
export function readModelConfig(dir: string): ModelConfig {
  check(existsSync(dir), `model directory not found: ${dir}`);
  const path = join(dir, 'config.json');
  check(existsSync(path), `${path}: missing (a Hugging Face model directory needs config.json)`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new AttendError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  const raw = parseJson(text, path);
  check(raw !== null && typeof raw === 'object' && !Array.isArray(raw), `${path}: expected a JSON object`);
  return normaliseConfig(raw as Json, path);
}

/** config.json's object, normalised by the family its architecture names. */
export function normaliseConfig(json: Json, source = 'config.json'): ModelConfig {
  const architecture = pickArchitecture(json, source);
  const { modelType, family } = SUPPORTED_ARCHITECTURES[architecture];
  const f = fields(json, source);
  const config = FAMILIES[family].config(json, f, architecture, modelType, source);
  checkConfig(config, source);
  return config;
}

function pickArchitecture(json: Json, source: string): string {
  const supported = Object.keys(SUPPORTED_ARCHITECTURES);
  const listed = Array.isArray(json.architectures) ? json.architectures.map(String) : [];
  const byName = listed.find((a) => a in SUPPORTED_ARCHITECTURES);
  if (byName) return byName;
  const byType = supported.find((a) => SUPPORTED_ARCHITECTURES[a].modelType === json.model_type);
  if (byType && listed.length === 0) return byType;
  const what = listed.length ? listed.join(', ') : `model_type "${String(json.model_type)}"`;
  throw new AttendError(`${source}: unsupported architecture ${what} (supported: ${supported.join(', ')})`);
}

