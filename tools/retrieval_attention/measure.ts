/**
 * RetrievalAttention on attend-mini's real keys and queries (selectors/retrieval-attention.ts): per context length,
 * one prompt (niah_single, needle at half depth) is prefilled once with full attention, recording every layer's
 * prefill queries; then, for each index (the attention-aware one and, when usearch is installed, the HNSW
 * baseline), a copy of the cache decodes `--steps` tokens greedily under the selector, which first sees the
 * recorded prefill queries as the prefill's multi-row calls. At every sparse step the retrieved entries of each
 * query head are compared with the exact top-k of the same keys by q·k (recall@k), and SelectionSession counts the
 * share of held entries each step read; the attention-aware index also reports the share of its keys a search
 * compared. Prints one JSON line per run and a markdown table.
 *
 *   node --import tsx tools/retrieval_attention/measure.ts [--lengths 4096,8192] [--steps 8] \
 *       [--search-lists 100,200] [--layers 0,1,…] [--train-queries 0] [--build-list 500] [--key-only] [--no-baseline]
 *
 * --key-only adds the same graph built without the prefill queries (the ablation of the attention-aware part);
 * the HNSW baseline runs with expansion_search = each search list.
 */
import { parseArgs } from 'node:util';
import type { LayerCache } from '../../src/cache/kv-cache.js';
import { taskByName } from '../../src/eval/tasks/index.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import { usearchAvailable } from '../../src/selectors/ann/usearch-index.js';
import { innerProducts, topK } from '../../src/selectors/ann/vectors.js';
import { RetrievalAttentionSelector } from '../../src/selectors/retrieval-attention.js';
import { SelectionSession } from '../../src/selectors/selector.js';
import type { Selector, SelectorView } from '../../src/selectors/selector.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: new URL('../../models/attend-mini', import.meta.url).pathname },
    lengths: { type: 'string', default: '4096,8192' },
    steps: { type: 'string', default: '8' },
    'search-lists': { type: 'string', default: '100' },
    layers: { type: 'string' },
    'train-queries': { type: 'string', default: '0' },
    'key-only': { type: 'boolean', default: false },
    'build-list': { type: 'string', default: '500' },
    'no-baseline': { type: 'boolean', default: false },
  },
});
const lengths = values.lengths!.split(',').map(Number);
const steps = Number(values.steps);
const searchLists = values['search-lists']!.split(',').map(Number);
const trainQueries = Number(values['train-queries']);
const keyOnly = values['key-only']!;
const buildList = Number(values['build-list']);
const withBaseline = !values['no-baseline'] && usearchAvailable();

const lm = loadModel(values.model!);
const { config } = lm;
const onlyLayers = values.layers ? new Set(values.layers.split(',').map(Number)) : undefined;

/** Wraps the selector: for each query head of each sparse call, the retrieved entries' recall of the exact top-k. */
class RecallProbe implements Selector {
  readonly name: string;
  recall = 0;
  lists = 0;
  constructor(readonly inner: RetrievalAttentionSelector) {
    this.name = inner.name;
  }
  select(view: SelectorView): (Int32Array | null)[] | undefined {
    if (onlyLayers && !onlyLayers.has(view.layer)) return undefined;
    const lists = this.inner.select(view);
    if (!lists || view.positions.length !== 1) return lists;
    const { headDim: d, numHeads, numKvHeads } = config;
    const group = numHeads / numKvHeads;
    const { sinks, window, budget } = this.inner;
    lists.forEach((list, h) => {
      if (!list) return;
      const head = view.cache.heads[Math.floor(h / group)];
      const lo = sinks;
      const hi = head.length - window;
      const n = hi - lo;
      const scores = innerProducts(view.queries.subarray(h * d, (h + 1) * d), 1, head.keys(lo, n), n, d);
      const exact = new Int32Array(budget);
      const k = topK(scores, 0, n, budget, exact);
      const truth = new Set(Array.from(exact.subarray(0, k), (i) => i + lo));
      let hit = 0;
      for (const e of list) if (e >= lo && e < hi && truth.has(e)) hit++;
      this.recall += hit / k;
      this.lists++;
    });
    return lists;
  }
}

interface Run {
  length: number;
  index: string;
  searchList: number;
  recall: number;
  readShare: number;
  entriesPerList: number;
  scanShare: number;
  trainingQueries: number;
  buildS: number;
  decodeTokens: string;
}

const runs: Run[] = [];
for (const length of lengths) {
  const instance = taskByName('niah_single').generate({ seed: 1, contextLength: length, depth: 0.5, tokenizer: lm.tokenizer }) as { context: string; question: string; answers: string[] };
  const ids = [...lm.tokenizer.encode(instance.context), ...lm.tokenizer.encode(instance.question, { addSpecialTokens: false })];
  const cache = newCache(config);
  const recorded: { layer: number; queries: Float32Array; positions: Int32Array }[] = [];
  const record = (layer: number, queries: Float32Array, positions: Int32Array, _c: LayerCache) => {
    recorded.push({ layer, queries: queries.slice(), positions: positions.slice() });
    return undefined;
  };
  const t0 = performance.now();
  let last!: Float32Array;
  for (let s = 0; s < ids.length; s += 512) last = lm.model.backend.read(lm.model.forward(ids.slice(s, s + 512), cache, { select: record, lastOnly: true })).slice();
  console.error(`${length}: prefill of ${ids.length} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const kinds: { index: string; baseline: number; searchList: number; prefill: boolean }[] = [];
  for (const searchList of searchLists) {
    kinds.push({ index: 'attention-aware', baseline: 0, searchList, prefill: true });
    if (keyOnly) kinds.push({ index: 'same graph, no prefill queries', baseline: 0, searchList, prefill: false });
    if (withBaseline) kinds.push({ index: 'hnsw (usearch)', baseline: 1, searchList, prefill: true });
  }
  if (!usearchAvailable()) console.error('usearch is not installed: no HNSW baseline');
  for (const kind of kinds) {
    const selector = new RetrievalAttentionSelector({ baseline: kind.baseline, trainQueries, buildList, searchList: kind.searchList });
    const probe = new RecallProbe(selector);
    const session = new SelectionSession(probe, config);
    const copy = cache.clone();
    // The prefill's multi-row calls, as the selector would have seen them.
    if (kind.prefill) for (const r of recorded) session.select(r.layer, r.queries, r.positions, copy.layers[r.layer]);
    let logits = last;
    const tokens: number[] = [];
    const t1 = performance.now();
    for (let i = 0; i < steps; i++) {
      const next = logits.indexOf(Math.max(...logits));
      tokens.push(next);
      logits = lm.model.backend.read(lm.model.forward([next], copy, { select: session.select, lastOnly: true })).slice();
    }
    const run: Run = {
      length: ids.length,
      index: kind.index,
      searchList: Math.max(kind.searchList, selector.budget),
      recall: probe.recall / probe.lists,
      readShare: session.readShare(),
      entriesPerList: session.stats.entriesRead / session.stats.lists,
      scanShare: selector.scanShare(),
      trainingQueries: selector.stats.trainingQueries / Math.max(1, selector.stats.builds),
      buildS: selector.stats.buildMs / 1000,
      decodeTokens: lm.tokenizer.decode(tokens),
    };
    console.error(`${length} ${kind.index} L${run.searchList}: ${((performance.now() - t1) / 1000).toFixed(1)} s`);
    console.log(JSON.stringify(run));
    runs.push(run);
  }
}

console.log(`\nbuild list ${buildList}, training queries per KV head ${trainQueries || 'all'}`);
console.log('\n| prompt tokens | index | search list | recall@100 | entries read per step (share) | index scanned per search | training queries per index | build (s, all heads) |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of runs) {
  const scan = Number.isNaN(r.scanShare) ? 'not reported' : `${(100 * r.scanShare).toFixed(1)}%`;
  console.log(`| ${r.length} | ${r.index} | ${r.searchList} | ${r.recall.toFixed(3)} | ${r.entriesPerList.toFixed(0)} (${(100 * r.readShare).toFixed(1)}%) | ${scan} | ${r.trainingQueries.toFixed(0)} | ${r.buildS.toFixed(1)} |`);
}
