/** Parsing helpers shared by commands: numbers and lists from flags, with one-line errors naming the flag. */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AttendError } from '../errors.js';

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

const here = dirname(fileURLToPath(import.meta.url));
/** The repository (or installed package) root: dist/cli/ → ../.. */
export const PACKAGE_ROOT = resolve(here, '..', '..');
export const BUNDLED_MODEL = join(PACKAGE_ROOT, 'models', 'attend-mini');

/** The model a command uses when --model is not given: the bundled attend-mini. */
export function defaultModel(): string {
  return BUNDLED_MODEL;
}
