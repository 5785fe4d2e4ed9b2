/**
 * One case of the KV-memory benchmark, run in its own process so that its resident memory is its own:
 *   node dist/bench/kv-memory-case.js MODEL_DIR TOKENS MODE [PRESS RATIO CHUNK]
 * MODE: full (no compression), prefill (compress once the prompt is in, as kvpress does), chunks (compress after
 * every prefill chunk). Prints one JSON line: peak and final cache bytes, peak resident memory over the baseline
 * after loading, prefill milliseconds.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { prefill } from '../generate/prefill.js';
import { loadModel } from '../models/load.js';
import { newCache } from '../models/model.js';
import { createPress } from '../presses/registry.js';
import { CompressionSession } from '../presses/runner.js';
import { PACKAGE_ROOT } from '../cli/options.js';

const [modelDir, tokensArg, mode, pressName = 'snapkv', ratioArg = '0.75', chunkArg = '512'] = process.argv.slice(2);
const tokens = Number(tokensArg);
const lm = loadModel(modelDir);
const text = readFileSync(join(PACKAGE_ROOT, 'tools', 'fixtures', 'corpus.txt'), 'utf8');
let ids: number[] = [];
while (ids.length < tokens) ids = ids.concat(lm.tokenizer.encode(text));
ids = ids.slice(0, tokens);

global.gc?.();
const baseline = process.memoryUsage().rss;
let peakRss = baseline;
let peakCache = 0;
const cache = newCache(lm.config);
const session =
  mode === 'full' ? undefined : new CompressionSession({ press: createPress(pressName, {}), budget: { ratio: Number(ratioArg) }, during: mode as 'prefill' | 'chunks' }, lm.model, cache);
const t0 = performance.now();
prefill(lm.model, cache, ids, {
  chunkSize: Number(chunkArg),
  observer: session?.observer,
  afterChunk: (c, end) => {
    // The largest moment: the chunk's entries are in, compression has not run yet.
    peakCache = Math.max(peakCache, c.bytes());
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    session?.afterChunk(end, ids.length);
  },
});
const prefillMs = performance.now() - t0;
peakRss = Math.max(peakRss, process.memoryUsage().rss);
console.log(
  JSON.stringify({ tokens, mode, press: pressName, ratio: Number(ratioArg), chunk: Number(chunkArg), peakCache, finalCache: cache.bytes(), peakRssDelta: peakRss - baseline, prefillMs }),
);
