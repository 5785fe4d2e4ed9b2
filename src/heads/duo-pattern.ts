/**
 * A DuoAttention pattern from a head probe's scores (`attend heads --probe retrieval --write-pattern DIR`): the
 * directory the duo-attention press reads (presses/duo-attention.ts), in the official format of
 * mit-han-lab/duo-attention's attn_patterns/ (config.json with sink_size and recent_size, full_attention_heads.tsv
 * with one row per layer and one tab-separated gate per KV head, written as np.savetxt writes it, "%.18e").
 *
 * The gate of a KV head is the largest score of its query heads (clipped to [0, 1], as the loaders clip): the head's
 * entries serve every query head of its group, so freeing them hurts the group's best retriever, and a KV head
 * stays full when any of its query heads retrieves (RazorAttention's echo and induction selections also take the
 * group's maximum, heads/echo-induction.ts). The mean would rank a group with one strong retriever among three idle
 * heads below a group of four mediocre ones. The retrieval score of a head that never copies is 0, so many gates tie
 * at 0; the press then makes the earlier layer's heads streaming first (its tie rule).
 *
 * sink_size 128 and recent_size 256: the sizes the official training script runs with (scripts/train.sh) and every
 * published pattern records; the press's sink-size and recent-size options replace them at use, as the official
 * evaluation scripts' --sink_size/--recent_size do. config.json also records where the gates came from.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { check } from '../errors.js';
import { writeFileAtomic } from '../io/files.js';
import type { ModelConfig } from '../models/config.js';
import { PATTERN_CONFIG, PATTERN_GATES } from '../presses/duo-attention.js';
import type { HeadScores } from './probe.js';

/** scripts/train.sh of the official repository: --sink_size 128 --recent_size 256. */
export const PATTERN_SINK_SIZE = 128;
export const PATTERN_RECENT_SIZE = 256;

/** Per layer and KV head, the largest score of its query heads, clipped to [0, 1]. */
export function gatesFromScores(scores: readonly (readonly number[])[], numKvHeads: number): number[][] {
  return scores.map((row, layer) => {
    check(row.length % numKvHeads === 0, `--write-pattern: layer ${layer} has ${row.length} query heads, not a multiple of ${numKvHeads} KV heads`);
    const group = row.length / numKvHeads;
    return Array.from({ length: numKvHeads }, (_, kv) => Math.min(1, Math.max(0, Math.max(...row.slice(kv * group, (kv + 1) * group)))));
  });
}

/** A number as C's "%.18e" writes it (np.savetxt's default): 18 digits after the point, a two-digit exponent at least. */
export function formatGate(x: number): string {
  const [mantissa, exponent] = x.toExponential(18).split('e');
  const e = Number(exponent);
  return `${mantissa}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
}

/** full_attention_heads.tsv's text: a row per layer, gates tab-separated, each row ending in a newline. */
export function gatesText(gates: readonly (readonly number[])[]): string {
  return gates.map((row) => row.map(formatGate).join('\t') + '\n').join('');
}

/** Writes `dir`/config.json and `dir`/full_attention_heads.tsv from a probe's scores on a model of `config`. */
export function writeDuoPattern(dir: string, result: HeadScores, config: Pick<ModelConfig, 'numLayers' | 'numHeads' | 'numKvHeads'>): void {
  check(result.layers === config.numLayers && result.heads === config.numHeads,
    `--write-pattern: the scores are ${result.layers} layers × ${result.heads} heads, the model has ${config.numLayers} × ${config.numHeads}`);
  const gates = gatesFromScores(result.scores, config.numKvHeads);
  mkdirSync(dir, { recursive: true });
  const meta = {
    sink_size: PATTERN_SINK_SIZE,
    recent_size: PATTERN_RECENT_SIZE,
    made_by: `attend heads --probe ${result.probe} --write-pattern`,
    probe: result.probe,
    model: result.model,
    samples: result.samples,
    gate: "max over each KV head's query heads of the probe's score, clipped to [0, 1]",
  };
  writeFileAtomic(join(dir, PATTERN_CONFIG), JSON.stringify(meta, null, 1) + '\n');
  writeFileAtomic(join(dir, PATTERN_GATES), gatesText(gates));
}
