/**
 * The one error type for user mistakes: a bad file, flag or value. The CLI prints its message as one line and
 * exits non-zero; any other error is a bug and keeps its stack trace.
 */
export class AttendError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AttendError';
  }
}

/** Throws an AttendError with `message` unless `condition` holds. */
export function check(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new AttendError(typeof message === 'string' ? message : message());
}
