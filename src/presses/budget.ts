/** Budgets: how many entries a head may keep, from a compression ratio (fraction removed) or a token count. */
import { check } from '../errors.js';

export type Budget = { ratio: number } | { tokens: number };

export function validateBudget(budget: Budget): void {
  if ('ratio' in budget) {
    check(budget.ratio > 0 && budget.ratio < 1, `--ratio must be in (0, 1), the fraction of the cache removed; got ${budget.ratio}`);
  } else {
    check(Number.isInteger(budget.tokens) && budget.tokens > 0, `--budget must be a whole number of tokens > 0; got ${budget.tokens}`);
  }
}

/**
 * Entries a head keeps after `seen` tokens when it holds `length`: ⌊seen·(1 − ratio)⌋ (kvpress's
 * int(k_len·(1 − ratio)) for a cache compressed once) or the token budget, never more than it holds.
 */
export function entriesToKeep(budget: Budget, seen: number, length: number): number {
  const target = 'ratio' in budget ? Math.floor(seen * (1 - budget.ratio)) : budget.tokens;
  return Math.max(0, Math.min(length, target));
}

/**
 * Entries per head a budget allows after `seen` tokens when spread evenly over every layer and head, unrounded: a
 * ratio's seen·(1 − ratio) (kvpress's arithmetic before its own rounding), or the token budget (at most `seen`).
 * Presses that shape budgets across layers (PyramidKV) start from it, so that the layers together keep the budget
 * however unequal earlier per-chunk compressions left them.
 */
export function uniformKeep(budget: Budget, seen: number): number {
  return 'ratio' in budget ? seen * (1 - budget.ratio) : Math.min(budget.tokens, seen);
}
