/**
 * Writes files so that a failure never leaves a half-written file behind: write a sibling, then rename.
 *
 * Signals: while a sibling `PATH.<pid>.partial` exists, SIGINT, SIGTERM and SIGHUP are caught. The write itself
 * is synchronous, so a signal that arrives during it is handled once it is done (the rename has happened and the
 * output is whole); a handler that finds a partial file still registered removes it. Either way the handler then
 * restores the default action and re-raises the signal, so the process still ends by it (status 130 / 143 in a
 * shell). The handlers stay installed for two turns of the event loop after the last write, so a signal that
 * arrived during a synchronous write is not lost; outside that window, signals keep their default action (a
 * long computation stays interruptible).
 */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { AttendError } from '../errors.js';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
type CaughtSignal = (typeof SIGNALS)[number];

/** Partial files being written now, removed by the signal handler. */
const partials = new Set<string>();
let installed = false;
/** Bumped on every registration, so a deferred uninstall from an earlier write does not undo a later one. */
let generation = 0;

function onSignal(signal: CaughtSignal): void {
  for (const path of partials) rmSync(path, { force: true });
  partials.clear();
  uninstall();
  process.kill(process.pid, signal);
}

const handlers = Object.fromEntries(SIGNALS.map((s) => [s, () => onSignal(s)])) as Record<CaughtSignal, () => void>;

function install(): void {
  if (installed) return;
  installed = true;
  for (const s of SIGNALS) process.on(s, handlers[s]);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  for (const s of SIGNALS) process.removeListener(s, handlers[s]);
}

/** Registers a partial file for removal on a signal; returns the function that unregisters it. */
export function trackPartial(path: string): () => void {
  partials.add(path);
  install();
  const mine = ++generation;
  return () => {
    partials.delete(path);
    // Two loop turns: the first immediate may run before the poll phase that reads a pending signal.
    setImmediate(() =>
      setImmediate(() => {
        if (partials.size === 0 && generation === mine) uninstall();
      }),
    );
  };
}

export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const temp = `${path}.${process.pid}.partial`;
  const untrack = trackPartial(temp);
  try {
    writeFileSync(temp, data);
    renameSync(temp, path);
  } catch (e) {
    rmSync(temp, { force: true });
    throw new AttendError(`${path}: cannot write (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  } finally {
    untrack();
  }
}
