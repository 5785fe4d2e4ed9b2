/**
 * The one place the matmul paths reach Node-only modules (koffi, worker_threads, os), synchronously, so a browser
 * build can replace this file and keep the rest. Returns undefined when a module cannot be loaded.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** require(id), or undefined with the failure reason in `errors[id]`. */
export function tryRequire<T>(id: string): T | undefined {
  try {
    return require(id) as T;
  } catch (e) {
    requireErrors.set(id, e instanceof Error ? e.message.split('\n')[0]! : String(e));
    return undefined;
  }
}

export const requireErrors = new Map<string, string>();

/** Cores to use: ATTEND_MATMUL_THREADS if set, else the available parallelism (1 when unknown). */
export function defaultThreads(): number {
  const env = Number(globalThis.process?.env?.ATTEND_MATMUL_THREADS);
  if (Number.isInteger(env) && env > 0) return env;
  const os = tryRequire<typeof import('node:os')>('node:os');
  return Math.max(1, os?.availableParallelism?.() ?? os?.cpus().length ?? 1);
}
