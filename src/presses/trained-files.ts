/**
 * Reading the trained parts of presses (Q-filters, KVzap models, Fast KVzip gates, LU-KV curves, RestoreKV adapters)
 * from the files their authors publish: small helpers over the safetensors reader, with one-line errors that name
 * the press, the file and what was expected.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { AttendError } from '../errors.js';
import { SafetensorsArchive } from '../io/safetensors.js';
import type { ModelConfig } from '../models/config.js';

/** A tensor read from a trained part's file: shape and f32 values. */
export interface Stored {
  shape: number[];
  data: Float32Array;
}

/** The option `path` of a trained press: required, and it must exist. */
export function requirePath(press: string, path: string, what: string): string {
  if (!path) throw new AttendError(`press ${press} needs --press-opt path=PATH (${what})`);
  if (!existsSync(path)) throw new AttendError(`${press}: ${path} does not exist (${what})`);
  return path;
}

/** A folder's file (or the path itself when it is a file). */
export function inFolder(path: string, file: string): string {
  return statSync(path).isDirectory() ? join(path, file) : path;
}

/** Every tensor of a safetensors file or model folder, by name, widened to f32. */
export function readTensors(press: string, path: string): Map<string, Stored> {
  let archive: SafetensorsArchive;
  try {
    archive = SafetensorsArchive.open(path);
  } catch (e) {
    throw new AttendError(`${press}: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    const out = new Map<string, Stored>();
    for (const name of archive.names()) {
      const data = archive.readF32(name);
      if (!data.every(Number.isFinite)) throw new AttendError(`${press}: ${path}: tensor "${name}" holds non-finite values`);
      out.set(name, { shape: [...archive.entry(name).shape], data });
    }
    return out;
  } finally {
    archive.close();
  }
}

/** The tensor `name`, of `shape` when given (−1: any size there). */
export function tensorOf(press: string, source: string, tensors: Map<string, Stored>, name: string, shape?: number[]): Stored {
  const t = tensors.get(name);
  if (!t) throw new AttendError(`${press}: ${source} has no tensor "${name}"`);
  if (shape && (t.shape.length !== shape.length || t.shape.some((d, i) => shape[i] >= 0 && d !== shape[i]))) {
    throw new AttendError(`${press}: ${source}: tensor "${name}" has shape [${t.shape.join(', ')}], expected [${shape.map((d) => (d < 0 ? '*' : d)).join(', ')}]`);
  }
  return t;
}

/** A JSON file as an object (one-line errors). */
export function readJsonObject(press: string, file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new AttendError(`${press}: ${file}: not readable JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new AttendError(`${press}: ${file}: expected a JSON object`);
  return value as Record<string, unknown>;
}

/** Refuses a trained part made for another model shape. */
export function checkShape(press: string, what: string, got: Record<string, number>, config: ModelConfig, want: Record<string, number>): void {
  const wrong = Object.keys(want).filter((k) => got[k] !== want[k]);
  if (wrong.length) {
    throw new AttendError(
      `${press}: the ${what} is for ${wrong.map((k) => `${k} ${got[k]}`).join(', ')}; this model (${config.modelType}) has ${wrong.map((k) => `${k} ${want[k]}`).join(', ')}`,
    );
  }
}
