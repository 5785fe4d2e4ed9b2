/**
 * Stop strings over streamed text: text is released only once no stop string can still begin inside it, and a
 * stop string found ends the text just before it.
 */
import { AttendError } from '../errors.js';

export class StopStringFilter {
  private pending = '';
  stopped = false;

  /** An empty stop string is refused: it matches before any text, so generation would end after one token. */
  constructor(private readonly stops: string[]) {
    if (stops.some((s) => s === '')) throw new AttendError('a stop string cannot be empty (it would match before any text)');
  }

  /** Feeds new text; returns what can be emitted now. */
  push(text: string): string {
    if (this.stopped) return '';
    this.pending += text;
    let cut = -1;
    for (const s of this.stops) {
      const at = this.pending.indexOf(s);
      if (at !== -1 && (cut === -1 || at < cut)) cut = at;
    }
    if (cut !== -1) {
      this.stopped = true;
      const out = this.pending.slice(0, cut);
      this.pending = '';
      return out;
    }
    const hold = this.heldBack();
    const out = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    return out;
  }

  /** Releases whatever is still held back (the sequence ended without a stop string). */
  flush(): string {
    const out = this.stopped ? '' : this.pending;
    this.pending = '';
    return out;
  }

  /** Length of the longest suffix of pending text that is a proper prefix of some stop string. */
  private heldBack(): number {
    let hold = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, this.pending.length); n > hold; n--) {
        if (this.pending.endsWith(s.slice(0, n))) {
          hold = n;
          break;
        }
      }
    }
    return hold;
  }
}

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\' };

/**
 * A stop string as typed on a command line, where `--stop "\n\n"` arrives as backslash-n twice: `\n`, `\t`, `\r`
 * and `\\` become a newline, a tab, a carriage return and one backslash. Any other escape, a trailing lone
 * backslash or an empty result is an error, so that a typo never silently becomes a stop string that cannot match.
 */
export function unescapeStop(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const next = text[i + 1];
    if (next === undefined) throw new AttendError(`"${text}" ends in a lone backslash (write \\\\ for a backslash)`);
    const value = ESCAPES[next];
    if (value === undefined) throw new AttendError(`"${text}": unknown escape \\${next} (known: \\n, \\t, \\r, \\\\)`);
    out += value;
    i++;
  }
  if (out === '') throw new AttendError('a stop string cannot be empty');
  return out;
}
