/**
 * JSON read by `attend bench` (sweep configs, results lines): parse errors as one line that never quotes the
 * file's text. V8's messages either give a position ("… in JSON at position 17", turned into a line and column
 * here) or quote the whole input, newlines included ("Unexpected token '}', "{↵ …" is not valid JSON"), which
 * is cut off here.
 */

/** Any text as one line: control characters (newlines included) written as escapes, at most `max` characters. */
export function oneLine(text: string, max = 200): string {
  // eslint-disable-next-line no-control-regex
  const flat = text.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => JSON.stringify(c).slice(1, -1));
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/** Where position `pos` of `text` is, as "line L, column C" (both from 1). */
function lineColumn(text: string, pos: number): string {
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  return `line ${line}, column ${pos - before.lastIndexOf('\n')}`;
}

/** The reason JSON.parse gave for `text`, as one line without the text itself. */
export function jsonErrorReason(e: unknown, text: string): string {
  const message = e instanceof Error ? e.message : String(e);
  const at = /^(.*?) in JSON at position (\d+)/s.exec(message);
  if (at) return oneLine(`${at[1]} (${lineColumn(text, Number(at[2]))})`);
  const token = /^(Unexpected token '.*?'), (?:\.\.\.)?".*" is not valid JSON$/s.exec(message);
  if (token) return oneLine(token[1]!);
  if (/Unexpected end of JSON input/.test(message)) return 'the text ends before the JSON does';
  return oneLine(message.replace(/, (?:\.\.\.)?".*" is not valid JSON$/s, ''));
}
