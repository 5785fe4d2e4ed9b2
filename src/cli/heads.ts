/**
 * `attend heads`: score every attention head of a model with a probe (src/heads/registry.ts), e.g. the retrieval
 * score of Wu et al. 2024. The scores (layer × query head) go to --out as JSON, or to standard output without it;
 * a summary (the top heads, how many score above the probe's threshold) goes to standard output with --out, to
 * standard error without. --mask-check runs the retrieval paper's causal check after the scores: needle accuracy
 * with the top-k retrieval heads masked against k random non-retrieval heads.
 */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { check } from '../errors.js';
import { type HeadScores, rankHeads } from '../heads/probe.js';
import { PROBES, probeEntry } from '../heads/registry.js';
import { MASK_SEED, type MaskCheck, maskCheck, type MaskMode } from '../heads/retrieval-mask.js';
import { writeFileAtomic } from '../io/files.js';
import { loadModel } from '../models/load.js';
import { writeDuoPattern } from '../heads/duo-pattern.js';
import { headAttention, MAX_ATTENTION_TOKENS, writeHeadsReport } from '../heads/report.js';
import { defaultModel, parseCount, parseCountFrom } from './options.js';
import { addActSearchFlags, type ActSearchFlags, checkActSearchFlags, runActSearchFlags } from './act-search.js';
import { addAblationFlags, type AblationFlags, checkAblationFlags, readScoresFlag, runAblationFlags } from './ablation-check.js';

interface Flags extends ActSearchFlags, AblationFlags {
  probe: string;
  model?: string;
  lengths?: number[];
  depths?: number[];
  samples?: number;
  seed?: number;
  out?: string;
  top?: number;
  maskCheck?: boolean | number;
  maskMode?: string;
  writePattern?: string;
  html?: string;
  attentionHead?: string;
  attentionPrompt?: string;
}

/** "a,b,c" → numbers, each checked by `ok`; one-line errors naming the flag. */
function parseList(flag: string, what: string, ok: (n: number) => boolean) {
  return (value: string): number[] => {
    const parts = value.split(',').map((s) => s.trim());
    const nums = parts.map(Number);
    check(parts.every((p, i) => p !== '' && Number.isFinite(nums[i]) && ok(nums[i])), `${flag}: expected comma-separated ${what}, got "${value}"`);
    return nums;
  };
}

export function registerHeads(program: Command): void {
  program
    .command('heads')
    .description('score every attention head with a probe (retrieval heads, …) and list the top ones')
    .requiredOption('--probe <name>', `the probe: ${Object.keys(PROBES).join(', ')}`)
    .option('--model <dir>', 'Hugging Face model directory (default: the bundled model)')
    .option('--lengths <list>', 'prompt lengths in tokens, comma-separated (default: the probe\'s grid)', parseList('--lengths', 'whole numbers > 0', (n) => Number.isInteger(n) && n > 0))
    .option('--depths <list>', 'needle depths in [0, 1], comma-separated (default: the probe\'s grid)', parseList('--depths', 'numbers in [0, 1]', (n) => n >= 0 && n <= 1))
    .option('--samples <n>', 'samples (needles) per length and depth', parseCountFrom('--samples', 1))
    .option('--seed <n>', 'the first sample seed', parseCount('--seed'))
    .option('--out <file>', 'write the scores as JSON here (default: standard output)')
    .option('--top <n>', 'heads listed in the summary (default 10)', parseCountFrom('--top', 1))
    .option('--mask-check [k]', 'retrieval: then mask the top k heads (default: those above the threshold) and k random others, and compare needle accuracy', parseCountFrom('--mask-check', 1))
    .option('--mask-mode <mode>', 'how --mask-check masks a head: uniform (the paper: zeroed query, uniform attention; default) or zero (zeroed output, as --ablate-heads)')
    .option('--write-pattern <dir>', 'also write the scores as a DuoAttention pattern (config.json + full_attention_heads.tsv; gate of a KV head = max of its query heads) for --press duo-attention')
    .option('--html <file>', 'also write an HTML page: the layer × head grid of the scores (and --attention-head\'s map)')
    .option('--attention-head <layer.head>', 'with --html: draw this query head\'s attention over --attention-prompt, e.g. 6.4')
    .option('--attention-prompt <text>', `with --attention-head: the prompt (2…${MAX_ATTENTION_TOKENS} tokens)`)
    .action((flags: Flags) => runHeads(flags));
  // ACT's head search after --probe sinks (cli/act-search.ts).
  addActSearchFlags(program.commands.find((c) => c.name() === 'heads')!);
  // The retrieval-head ablation curve, and --scores FILE to skip the probe (cli/ablation-check.ts).
  addAblationFlags(program.commands.find((c) => c.name() === 'heads')!);
}

/** "6.4" → layer 6, head 4; one-line errors. */
function parseLayerHead(text: string): { layer: number; head: number } {
  const m = /^(\d+)\.(\d+)$/.exec(text.trim());
  check(m !== null, `--attention-head: expected LAYER.HEAD such as 6.4, got "${text}"`);
  return { layer: Number(m![1]), head: Number(m![2]) };
}

async function runHeads(flags: Flags): Promise<void> {
  const probe = probeEntry(flags.probe);
  check(flags.attentionHead === undefined || flags.html !== undefined, '--attention-head needs --html FILE');
  check((flags.attentionHead === undefined) === (flags.attentionPrompt === undefined), '--attention-head and --attention-prompt go together');
  const chosen = flags.attentionHead === undefined ? undefined : parseLayerHead(flags.attentionHead);
  const masking = flags.maskCheck !== undefined;
  check(!masking || flags.probe === 'retrieval', '--mask-check applies to --probe retrieval');
  check(flags.maskMode === undefined || masking, '--mask-mode needs --mask-check');
  check(flags.maskMode === undefined || flags.maskMode === 'uniform' || flags.maskMode === 'zero', `--mask-mode: expected uniform or zero, got "${flags.maskMode}"`);
  checkActSearchFlags(flags.probe, flags);
  checkAblationFlags(flags.probe, flags);
  const dir = flags.model ?? defaultModel();
  check(existsSync(dir), `model directory not found: ${dir}`);
  const lm = loadModel(dir);
  // The attention map first: a bad head or prompt fails before the probe's long run.
  const attention = chosen && headAttention(lm, lm.tokenizer.encode(flags.attentionPrompt!), chosen.layer, chosen.head);
  const grid = { lengths: flags.lengths, depths: flags.depths, samples: flags.samples, seed: flags.seed };
  const result: HeadScores & { maskCheck?: MaskCheck } = flags.scores !== undefined
    ? readScoresFlag(lm, flags.probe, flags.scores)
    : probe.run(lm, { ...grid, progress: progressLine(`${flags.probe} samples`) });
  if (masking) {
    const k = typeof flags.maskCheck === 'number' ? flags.maskCheck : undefined;
    result.maskCheck = maskCheck(lm, result, { ...grid, seed: (flags.seed ?? 0) + MASK_SEED, k, mode: flags.maskMode as MaskMode | undefined, progress: progressLine('mask-check samples') });
  }
  // A DuoAttention pattern from the scores (heads/duo-pattern.ts), for --press duo-attention --press-opt pattern=DIR.
  if (flags.writePattern !== undefined) writeDuoPattern(flags.writePattern, result, lm.config);
  // ACT's offline head search, written as a calibration file for --act FILE (heads/act-search.ts).
  const actSummary = runActSearchFlags(lm, flags.probe, flags, progressLine('ACT search runs'))
    + await runAblationFlags(lm, result, flags, progressLine('ablation-check prompts'));
  const json = toJson(result);
  const summary = summarise(result, flags.top ?? 10) + (flags.writePattern !== undefined ? `DuoAttention pattern written to ${flags.writePattern}\n` : '');
  if (flags.out !== undefined) {
    writeFileAtomic(flags.out, json);
    process.stdout.write(summary + `scores written to ${flags.out}\n`);
  } else {
    process.stdout.write(json);
    process.stderr.write(summary);
  }
  if (actSummary) (flags.out !== undefined ? process.stdout : process.stderr).write(actSummary);
  if (flags.html !== undefined) {
    await writeHeadsReport(flags.html, [result], attention);
    (flags.out !== undefined ? process.stdout : process.stderr).write(`HTML page written to ${flags.html}\n`);
  }
}

/** Indented JSON with each layer's scores on one line. */
export function toJson(result: HeadScores): string {
  const rows = result.scores.map((row) => '  ' + JSON.stringify(row)).join(',\n');
  return JSON.stringify({ ...result, scores: 0 }, null, 1).replace('"scores": 0', `"scores": [\n${rows}\n ]`) + '\n';
}

/** On a terminal, "label i/n" rewritten in place on standard error; elsewhere nothing. */
function progressLine(label: string): ((done: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  return (done, total) => process.stderr.write(`\r${label} ${done}/${total}${done === total ? '\n' : ''}`);
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** The console summary: top heads with their scores, how many are above the threshold, and the mask check. */
export function summarise(result: HeadScores & { maskCheck?: MaskCheck }, top: number): string {
  const total = result.layers * result.heads;
  const ranked = rankHeads(result.scores);
  const lines = [`${result.probe} scores of ${result.model}: ${result.layers} layers × ${result.heads} heads, samples: ${result.samples}`];
  if (result.samples === 0) lines.push('no sample counted (the retrieval probe counts only answered ones): every score is 0');
  lines.push(`top heads (LAYER.HEAD score): ${ranked.slice(0, top).map((h) => `${h.layer}.${h.head} ${h.score.toFixed(3)}`).join(', ')}`);
  if (result.threshold !== undefined) {
    const above = ranked.filter((h) => h.score > result.threshold!).length;
    lines.push(`above ${+result.threshold!.toPrecision(3)}: ${above} of ${total} heads (${pct(above / total)})`);
  }
  const m = result.maskCheck;
  if (m) {
    lines.push(
      `mask check (${m.mode}, k = ${m.k}: ${m.top.map((h) => `${h.layer}.${h.head}`).join(', ')}; samples: ${m.samples}): needle accuracy `
        + `none ${pct(m.accuracy.none)}, top ${m.k} ${pct(m.accuracy.top)}, random ${m.k} ${pct(m.accuracy.random)}`,
    );
  }
  return lines.join('\n') + '\n';
}
