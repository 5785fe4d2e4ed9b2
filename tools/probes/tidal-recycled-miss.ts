/**
 * Why TidalDecode and Recycled Attention miss the needle on attend-mini where Quest finds it: per decoding step of a
 * niah_single answer, which heads copy the needle under full attention, and whether each selector lets those heads
 * read the entry they copy.
 *
 *   node --import tsx tools/probes/tidal-recycled-miss.ts [--length 2048] [--seeds 0,1] [--depth 0.5] [--budget 256]
 *       [--reselect N]   (TidalDecode's re-selection layer; default: its own, 5 on attend-mini)
 *
 * The answer (a space and 7 digits, one token each) is teacher-forced, so every selector sees the same steps: the step
 * that feeds answer token i must emit token i+1, whose source is the needle's entry at `target` (the needle holds the
 * answer's tokens in order). Under full attention a head whose largest weight is on `target` is a copy head of that
 * step. Under each selector (its defaults, the given budget) the probe records, for those heads, whether the entry
 * list the selector gives them holds `target`, and where `target` ranked when the selector chose:
 *  - TidalDecode: in the scores of the same query head at the selection layer whose choice the copy head's layer reads
 *    (layer 2 for 3–4, layer 5 for 6–7 on attend-mini; the selection layers and 0–1 read everything);
 *  - Recycled Attention: in its KV head's ranking at the layer's last full step (the prompt's last token: it sees
 *    the prefill, as in generation), max over the group's probabilities;
 *  - Quest: pages, no ranking shown (it scores the step's own query against page bounds).
 * Nothing here changes a selector: each is run as the bench runs it, and the probe only reads its lists.
 */
import { parseArgs } from 'node:util';
import { prefill } from '../../src/generate/prefill.js';
import type { LayerCache } from '../../src/cache/kv-cache.js';
import { taskByName } from '../../src/eval/tasks/index.js';
import type { TaskInstance } from '../../src/eval/types.js';
import { loadModel } from '../../src/models/load.js';
import type { SelectEntries } from '../../src/models/batch.js';
import { createSelector } from '../../src/selectors/registry.js';
import { seesPrefill, type Selector } from '../../src/selectors/selector.js';
import { TidalDecodeSelector } from '../../src/selectors/tidal-decode.js';

const { values: args } = parseArgs({
  options: {
    length: { type: 'string', default: '2048' },
    seeds: { type: 'string', default: '0,1' },
    depth: { type: 'string', default: '0.5' },
    budget: { type: 'string', default: '256' },
    reselect: { type: 'string' },
  },
});
const length = Number(args.length);
const budget = Number(args.budget);
const lm = loadModel(new URL('../../models/attend-mini', import.meta.url).pathname);
const { config, model } = lm;
const { numLayers: L, numHeads: H, headDim: d } = config;
const group = H / config.numKvHeads;

/** Per query head, the scaled scores of the step's query against every entry of its KV head. */
function scores(queries: Float32Array, cache: LayerCache): Float64Array[] {
  return Array.from({ length: H }, (_, h) => {
    const head = cache.heads[Math.floor(h / group)];
    const n = head.length;
    const keys = head.keys(0, n);
    const s = new Float64Array(n);
    for (let e = 0; e < n; e++) {
      let dot = 0;
      for (let i = 0; i < d; i++) dot += queries[h * d + i] * keys[e * d + i];
      s[e] = dot / Math.sqrt(d);
    }
    return s;
  });
}

function softmax(s: Float64Array): Float64Array {
  const max = Math.max(...s);
  const p = s.map((x) => Math.exp(x - max));
  const sum = p.reduce((a, b) => a + b, 0);
  return p.map((x) => x / sum);
}

/** 1-based rank of entry `e` in `s` (descending). */
const rankOf = (s: ArrayLike<number>, e: number) => {
  let r = 1;
  for (let i = 0; i < s.length; i++) if (s[i] > s[e]) r++;
  return r;
};

/** Whether query head h reads entry e, given what a selector returned for the layer. */
function reads(lists: ReturnType<SelectEntries>, h: number, e: number): boolean {
  if (!lists) return true;
  if (!Array.isArray(lists)) throw new Error('remapped reads are not probed');
  const list = lists.length === H ? lists[h] : lists[Math.floor(h / group)];
  return !list || list.includes(e);
}

interface StepRecord {
  /** Copy heads of the step under full attention: layer, head, weight on the target. */
  copy: { l: number; h: number; w: number }[];
  /** Per selector: per copy head, whether it read the target, and the target's rank when the selector chose. */
  bySelector: Record<string, { read: boolean; rank?: number }[]>;
}

for (const seed of args.seeds.split(',').map(Number)) {
  const t0 = performance.now();
  const instance = taskByName('niah_single').generate({ seed, contextLength: length, depth: Number(args.depth), tokenizer: lm.tokenizer }) as TaskInstance;
  const ids = [...lm.tokenizer.encode(instance.context), ...lm.tokenizer.encode(instance.question, { addSpecialTokens: false })];
  const answer = lm.tokenizer.encode(' ' + instance.answers[0], { addSpecialTokens: false });
  // The needle's copy of the answer: the answer's tokens in the prompt (without the leading space if it merged).
  let start = -1;
  let offset = 0;
  for (const [o, seq] of [[0, answer], [1, answer.slice(1)]] as const) {
    for (let p = 0; p + seq.length <= ids.length && start < 0; p++) if (seq.every((t, j) => ids[p + j] === t)) start = p;
    if (start >= 0) {
      offset = o;
      break;
    }
  }
  if (start < 0) throw new Error(`seed ${seed}: the answer's tokens are not in the prompt`);
  const targetOf = (j: number) => start + j - offset; // the entry that answer token j copies
  const base = model.makeCache();
  const prefillLogits = prefill(model, base, ids, { chunkSize: 512 });
  const first = prefillLogits.indexOf(Math.max(...prefillLogits));
  const steps = answer.length - 1; // step i feeds answer[i] and must emit answer[i + 1]
  const records: StepRecord[] = Array.from({ length: steps }, () => ({ copy: [], bySelector: {} }));

  // Full attention: the copy heads of each step.
  {
    const cache = base.clone();
    let step = 0;
    const spy: SelectEntries = (layer, queries, positions, lc) => {
      const target = targetOf(step + 1);
      scores(queries, lc).forEach((s, h) => {
        const p = softmax(s);
        if (rankOf(p, target) === 1) records[step].copy.push({ l: layer, h, w: p[target] });
      });
      return undefined;
    };
    for (step = 0; step < steps; step++) model.forward([answer[step]], cache, { select: spy, lastOnly: true });
  }

  const selectors: [string, () => Selector][] = [
    ['tidal-decode', () => createSelector('tidal-decode', { budget, ...(args.reselect ? { reselectLayer: Number(args.reselect) } : {}) })],
    ['recycled-attention', () => createSelector('recycled-attention', { budget })],
    ['quest', () => createSelector('quest', { budget })],
  ];
  const free: Record<string, string> = {};
  for (const [name, make] of selectors) {
    // Teacher-forced: what the copy heads read.
    const sel = make();
    // A selector that sees the prefill (Recycled Attention: the prompt's last token is its first full step) gets
    // its own, as in generation; the others decode from a copy of the shared one.
    const cache = seesPrefill(sel) ? model.makeCache() : base.clone();
    let step = 0;
    const tidal = sel instanceof TidalDecodeSelector ? sel : undefined;
    const reselect = tidal?.reselectLayer(L);
    /** TidalDecode: the scores of the last selection layer; Recycled Attention: per layer, the last full step's probabilities (max over the group). */
    let chooserScores: Float64Array[] | undefined;
    const fullStep = new Map<number, Float64Array[]>();
    const wrapped: SelectEntries = (layer, queries, positions, lc) => {
      const lists = sel.select({ layer, config, cache: lc, queries, positions });
      const last = queries.subarray((positions.length - 1) * H * d); // the call's last row (a prefill chunk has many)
      if (tidal && (layer === tidal.denseLayers || layer === reselect)) chooserScores = scores(last, lc);
      if (name === 'recycled-attention' && !lists) {
        const byKv = Array.from({ length: config.numKvHeads }, () => new Float64Array(lc.heads[0].length));
        scores(last, lc).forEach((s, h) => softmax(s).forEach((p, e) => {
          const kv = byKv[Math.floor(h / group)];
          kv[e] = Math.max(kv[e], p);
        }));
        fullStep.set(layer, byKv);
      }
      if (positions.length !== 1) return lists;
      const target = targetOf(step + 1);
      for (const c of records[step].copy.filter((c) => c.l === layer)) {
        let rank: number | undefined;
        if (tidal && layer > tidal.denseLayers && layer !== reselect && chooserScores) rank = rankOf(chooserScores[c.h], target);
        if (name === 'recycled-attention' && lists) rank = rankOf(fullStep.get(layer)![Math.floor(c.h / group)], target);
        (records[step].bySelector[name] ??= []).push({ read: reads(lists, c.h, target), rank });
      }
      return lists;
    };
    if (seesPrefill(sel)) prefill(model, cache, ids, { chunkSize: 512, select: wrapped });
    for (step = 0; step < steps; step++) model.forward([answer[step]], cache, { select: wrapped, lastOnly: true });
    // Free-running greedy: what the selector answers.
    const own = make();
    const ownSelect: SelectEntries = (l, q, p, lc) => own.select({ layer: l, config, cache: lc, queries: q, positions: p });
    const c2 = seesPrefill(own) ? model.makeCache() : base.clone();
    if (seesPrefill(own)) prefill(model, c2, ids, { chunkSize: 512, select: ownSelect });
    const out = [first];
    for (let i = 0; i < steps; i++) {
      const logits = model.backend.read(model.forward([out[i]], c2, { select: ownSelect, lastOnly: true }));
      out.push(logits.indexOf(Math.max(...logits)));
    }
    free[name] = lm.tokenizer.decode(out);
  }

  console.log(`\nseed ${seed}: niah_single, ${ids.length} tokens, needle value ${instance.answers[0]} at entries ${targetOf(1)}–${targetOf(steps)}, budget ${budget}`);
  console.log(`greedy answers: ${Object.entries(free).map(([n, a]) => `${n} ${JSON.stringify(a)}`).join(', ')}`);
  console.log('step | emits | copy heads under full attention (layer.head weight) | copy heads that read the target: tidal-decode (rank at its selection layer) | recycled-attention (rank at its full step) | quest');
  records.forEach((r, i) => {
    const col = (name: string, ranked: boolean) => {
      const xs = r.bySelector[name] ?? [];
      const ranks = ranked ? ` (${xs.map((x) => (x.rank === undefined ? 'full' : x.rank)).join(' ')})` : '';
      return `${xs.filter((x) => x.read).length}/${xs.length}${ranks}`;
    };
    const copy = r.copy.map((c) => `${c.l}.${c.h} ${c.w.toFixed(2)}`).join(', ');
    console.log(`${i} | ${JSON.stringify(lm.tokenizer.decode([answer[i + 1]]))} | ${copy || 'none'} | ${col('tidal-decode', true)} | ${col('recycled-attention', true)} | ${col('quest', false)}`);
  });
  console.log(`(${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}
