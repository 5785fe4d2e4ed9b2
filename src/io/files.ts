/** Writes files so that a failure never leaves a half-written file behind: write a sibling, then rename. */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { AttendError } from '../errors.js';

export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const temp = `${path}.${process.pid}.partial`;
  try {
    writeFileSync(temp, data);
    renameSync(temp, path);
  } catch (e) {
    rmSync(temp, { force: true });
    throw new AttendError(`${path}: cannot write (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}
