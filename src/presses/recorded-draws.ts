/**
 * Random numbers a reference drew, handed to a randomised press so that it can be compared with that reference
 * exactly (leverage score's Gaussian sketch, CUR's projection, CaM's merge draws): a file of little-endian f32
 * values, no header, in the order the reference drew them. Each press says how it consumes them.
 */
import { readFileSync } from 'node:fs';
import { AttendError } from '../errors.js';

/** The f32 values of `path`; `who` and `what` name the press and the file in a one-line error. */
export function readRecordedDraws(path: string, who: string, what: string): Float32Array {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new AttendError(`${who}: cannot read the ${what} file ${path} (${(e as Error).message.split('\n')[0]})`);
  }
  if (bytes.length % 4 !== 0) throw new AttendError(`${who}: the ${what} file ${path} is not f32 values (${bytes.length} bytes)`);
  return Float32Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(4 * i));
}
