/**
 * The HTML page of `attend heads --html FILE`: what each head does, at a glance. One layer × head grid per probe
 * score (a square per query head, coloured by its score, the heads above the probe's threshold marked), and
 * optionally the attention of one chosen head over a short prompt (query token × key token). Drawn like the bench
 * report (eval/report): Vega-Lite to static SVG at render time, one self-contained file, no script, no network.
 */
import type { TopLevelSpec } from 'vega-lite';
import { check } from '../errors.js';
import { prefill } from '../generate/prefill.js';
import type { AttentionBlock, AttentionObserver } from '../backend/backend.js';
import { escapeHtml } from '../eval/report/format.js';
import { htmlDocument } from '../eval/report/page.js';
import { renderSvg } from '../eval/report/svg.js';
import { writeFileAtomic } from '../io/files.js';
import type { LoadedModel } from '../models/load.js';
import type { HeadScores } from './probe.js';

/** One head's attention over a prompt: probs[q·n + k], row q the query token, column k the key token (causal). */
export interface HeadAttention {
  layer: number;
  head: number;
  tokens: string[];
  probs: Float32Array;
}

/** The longest prompt whose attention map is drawn: a square per token pair must stay readable on a page. */
export const MAX_ATTENTION_TOKENS = 160;

/**
 * The attention of query head `head` of `layer` over `ids`, from a fresh cache, read block by block through an
 * observer (the only tokens × tokens matrix is this one head's, for a prompt of at most MAX_ATTENTION_TOKENS).
 */
export function headAttention(lm: LoadedModel, ids: number[], layer: number, head: number): HeadAttention {
  const { numLayers, numHeads, numKvHeads } = lm.config;
  check(Number.isInteger(layer) && layer >= 0 && layer < numLayers, `--attention-head: layer ${layer} out of range (the model has layers 0…${numLayers - 1})`);
  check(Number.isInteger(head) && head >= 0 && head < numHeads, `--attention-head: head ${head} out of range (the model has query heads 0…${numHeads - 1})`);
  const n = ids.length;
  check(n >= 2 && n <= MAX_ATTENTION_TOKENS, `--attention-prompt: ${n} tokens; the attention map takes 2…${MAX_ATTENTION_TOKENS}`);
  const group = numHeads / numKvHeads;
  const kvHead = Math.floor(head / group);
  const g = head % group;
  const probs = new Float32Array(n * n);
  const observer: AttentionObserver = {
    observe(block: AttentionBlock) {
      if (block.layer !== layer || block.kvHead !== kvHead) return;
      const { queryPositions, cols } = block;
      for (let t = 0; t < queryPositions.length; t++) {
        const q = queryPositions[t]!;
        const row = (t * block.groupSize + g) * cols;
        // Entries are the prompt's tokens in order (a fresh cache, nothing compressed): entry k is position k.
        for (let k = 0; k < Math.min(cols, n); k++) probs[q * n + k] = block.probs[row + k]!;
      }
    },
  };
  prefill(lm.model, lm.model.makeCache(), ids, { chunkSize: n, observer });
  const tokens = ids.map((id) => lm.tokenizer.decode([id]));
  return { layer, head, tokens, probs };
}

/** A token as an axis label: visible whitespace, and its index so repeated tokens stay apart. */
function tokenLabel(token: string, i: number): string {
  const shown = token.replace(/\n/g, '⏎').replace(/\t/g, '⇥').replace(/ /g, '·');
  return `${i} ${shown.length > 14 ? `${shown.slice(0, 13)}…` : shown}`;
}

/** The layer × head grid of one probe's scores. */
export function scoresSpec(result: HeadScores): TopLevelSpec {
  const data = result.scores.flatMap((row, layer) => row.map((score, head) => ({
    layer: String(layer), head: String(head), score,
    above: result.threshold !== undefined && score > result.threshold,
  })));
  const layers = result.scores.map((_, l) => String(l));
  const heads = Array.from({ length: result.heads }, (_, h) => String(h));
  const x = { field: 'head', type: 'ordinal' as const, sort: heads, title: 'query head', axis: { labelAngle: 0 } };
  const y = { field: 'layer', type: 'ordinal' as const, sort: layers, title: 'layer' };
  const max = Math.max(1e-9, ...data.map((d) => d.score));
  return {
    description: `${result.probe} score per layer and head`,
    data: { values: data },
    width: { step: result.heads > 32 ? 14 : 28 },
    height: { step: result.layers > 32 ? 14 : 22 },
    layer: [
      {
        mark: { type: 'rect', stroke: 'white', strokeWidth: 1 },
        encoding: {
          x, y,
          color: { field: 'score', type: 'quantitative', title: `${result.probe} score`, scale: { domain: [0, max], scheme: 'viridis' } },
          tooltip: [{ field: 'layer' }, { field: 'head' }, { field: 'score', format: '.3f' }],
        },
      },
      // The probe's kind of head (above its threshold): a ring on the square.
      {
        transform: [{ filter: 'datum.above' }],
        mark: { type: 'point', shape: 'circle', filled: false, stroke: '#ff5a36', strokeWidth: 2, size: 90 },
        encoding: { x, y },
      },
    ],
  } as TopLevelSpec;
}

/** The attention of one head: query token (rows) × key token (columns), the masked future left blank. */
export function attentionSpec(a: HeadAttention): TopLevelSpec {
  const n = a.tokens.length;
  const labels = a.tokens.map(tokenLabel);
  const data: { q: string; k: string; p: number }[] = [];
  for (let q = 0; q < n; q++) for (let k = 0; k <= q; k++) data.push({ q: labels[q]!, k: labels[k]!, p: a.probs[q * n + k]! });
  const step = n > 80 ? 6 : n > 40 ? 10 : 16;
  return {
    description: `attention of layer ${a.layer} head ${a.head}`,
    data: { values: data },
    width: { step },
    height: { step },
    mark: { type: 'rect' },
    encoding: {
      x: { field: 'k', type: 'ordinal', sort: labels, title: 'key token (attended to)', axis: { labelAngle: -60, labelFontSize: n > 80 ? 6 : 9, labelLimit: 90 } },
      y: { field: 'q', type: 'ordinal', sort: labels, title: 'query token', axis: { labelFontSize: n > 80 ? 6 : 9, labelLimit: 90 } },
      color: { field: 'p', type: 'quantitative', title: 'attention', scale: { domain: [0, 1], scheme: 'greys' } },
      tooltip: [{ field: 'q', title: 'query' }, { field: 'k', title: 'key' }, { field: 'p', format: '.3f' }],
    },
  } as TopLevelSpec;
}

function caption(result: HeadScores): string {
  const above = result.threshold === undefined ? ''
    : ` Ringed: the ${result.scores.flat().filter((s) => s > result.threshold!).length} heads above the threshold ${result.threshold}.`;
  return `Score of every query head (${result.layers} layers × ${result.heads} heads) on ${result.samples} sample${result.samples === 1 ? '' : 's'}.${above}`;
}

/** The whole page: a grid per probe result and the attention map when one is given. */
export async function renderHeadsReport(results: HeadScores[], attention?: HeadAttention): Promise<string> {
  const figures: string[] = [];
  for (const [i, r] of results.entries()) {
    const svg = await renderSvg(scoresSpec(r), `h-${i}`);
    figures.push(`<section id="probe-${escapeHtml(r.probe)}"><h2>${escapeHtml(r.probe)} score per head</h2>`
      + `<figure class="plot" data-plot="scores-${escapeHtml(r.probe)}"><div class="svg">${svg}</div>`
      + `<figcaption>${escapeHtml(caption(r))}</figcaption></figure></section>`);
  }
  if (attention) {
    const svg = await renderSvg(attentionSpec(attention), 'h-attn');
    figures.push(`<section id="attention"><h2>Attention of layer ${attention.layer}, head ${attention.head}</h2>`
      + `<figure class="plot" data-plot="attention"><div class="svg">${svg}</div>`
      + `<figcaption>${escapeHtml(`Each row is a query token, each column a key token it may read (causal: the upper triangle is empty); darker = more attention. ${attention.tokens.length} tokens; whitespace shown as · ⏎ ⇥.`)}</figcaption></figure></section>`);
  }
  const model = results[0]?.model ?? '';
  return htmlDocument({
    title: `attend heads: ${model}`, heading: 'What each head does', subtitle: model, main: figures.join('\n'),
    generatedBy: 'attend heads', generated: new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC'),
  });
}

/** Renders the page and writes it atomically. */
export async function writeHeadsReport(path: string, results: HeadScores[], attention?: HeadAttention): Promise<void> {
  writeFileAtomic(path, await renderHeadsReport(results, attention));
}
