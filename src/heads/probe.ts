/**
 * What every head probe shares (`attend heads`, src/heads/registry.ts): a probe runs a model on prompts of its own
 * and scores each query head of each layer; the scores and how they were made come back as HeadScores, which the
 * CLI writes as JSON and summarises. Layers and heads count from 0; heads are query heads, not KV heads.
 */
import type { LoadedModel } from '../models/load.js';

export interface HeadScores {
  /** The probe's registry name, e.g. 'retrieval'. */
  probe: string;
  /** The model directory it ran on. */
  model: string;
  layers: number;
  heads: number;
  /** layer × query head. */
  scores: number[][];
  /** Heads scoring above this are the probe's kind of head (the paper's threshold), where it has one. */
  threshold?: number;
  /** Samples the scores average over. */
  samples: number;
  /** Whatever else the probe records (its grid, each sample's prediction, …). */
  details?: unknown;
}

/** Options a probe may read; each probe states which it uses and their defaults. */
export interface ProbeOptions {
  /** Prompt lengths in tokens. */
  lengths?: number[];
  /** Needle depths, 0 (start) … 1 (end). */
  depths?: number[];
  /** Samples per grid point. */
  samples?: number;
  /** The first sample seed. */
  seed?: number;
  /** Called after each sample (for a progress line). */
  progress?: (done: number, total: number) => void;
}

export interface HeadProbe {
  /** One line: what it measures. */
  summary: string;
  /** The paper and its official code. */
  source: string;
  run(lm: LoadedModel, options: ProbeOptions): HeadScores;
}

/** A layers × heads array of zeros. */
export function zeroScores(layers: number, heads: number): number[][] {
  return Array.from({ length: layers }, () => new Array<number>(heads).fill(0));
}

/** Heads ranked by score, highest first (ties: lower layer, then lower head first). */
export function rankHeads(scores: readonly (readonly number[])[]): { layer: number; head: number; score: number }[] {
  const all = scores.flatMap((row, layer) => row.map((score, head) => ({ layer, head, score })));
  return all.sort((a, b) => b.score - a.score || a.layer - b.layer || a.head - b.head);
}
