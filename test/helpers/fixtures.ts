/** Reads the parity fixtures made by tools/fixtures/make_parity_fixtures.py with PyTorch/transformers. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const PARITY_DIR = join(import.meta.dirname, '..', 'fixtures', 'parity');

export interface Reference {
  family: string;
  architecture: string;
  dtype: string;
  ids: number[];
  logits: { file: string; shape: [number, number] };
  logits_native?: { file: string; shape: [number, number] };
  greedy: { prompt_ids: number[]; new_token_ids: number[]; min_margin?: number };
  text?: { prompt: string; ids: number[]; decoded: string };
  chat?: { messages: { role: string; content: string }[]; rendered: string; ids: number[] };
}

export function parityFixtures(): { name: string; dir: string; ref: Reference }[] {
  if (!existsSync(PARITY_DIR)) return [];
  return readdirSync(PARITY_DIR)
    .filter((name) => existsSync(join(PARITY_DIR, name, 'reference.json')))
    .sort()
    .map((name) => {
      const dir = join(PARITY_DIR, name);
      return { name, dir, ref: JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as Reference };
    });
}

export function readF32(path: string): Float32Array {
  const bytes = readFileSync(path);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/** Largest |a[i] − b[i]|; throws when the lengths differ (an empty or short output must not pass as equal). */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`maxAbsDiff: lengths differ (${a.length} vs ${b.length})`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
