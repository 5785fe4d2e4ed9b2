/**
 * The press contract, for every press in the registry (a new one is tested here without being added): a chunked
 * prefill compressed after every chunk, then greedy decoding compressed while it runs (the method's own schedule,
 * or every other step), under a ratio and under a token budget, on a small parity checkpoint. After every chunk
 * and every step: the budget holds as runner.ts promises it, each head's original positions are strictly
 * ascending and below nextPosition, every compacted head holds exactly its kept entries' bytes, logits are finite.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { KVCache } from '../../src/cache/kv-cache.js';
import { prefill } from '../../src/generate/prefill.js';
import { loadModel } from '../../src/models/load.js';
import { newCache } from '../../src/models/model.js';
import type { Budget } from '../../src/presses/budget.js';
import { roundHalfEven } from '../../src/presses/lukv.js';
import { PRESSES, resolveOptions } from '../../src/presses/registry.js';
import { CompressionSession } from '../../src/presses/runner.js';
import { argmax } from '../helpers/argmax.js';
import { PARITY_DIR } from '../helpers/fixtures.js';

const lm = loadModel(join(PARITY_DIR, 'llama-gqa-tied'));
const { numLayers, numKvHeads } = lm.config;
const ids = Array.from({ length: 40 }, (_, i) => (i * 53 + 7) % lm.config.vocabSize);
const CHUNK = 8;
const STEPS = 6;
const BUDGETS: Budget[] = [{ ratio: 0.5 }, { tokens: 10 }];

import { CONTRACT_OPTIONS as OPTIONS } from '../helpers/press-options.js';

/**
 * Presses that set their own size (PressEntry.sizesItself) run once, without a budget, and no budget is checked;
 * these leave the prompt alone, as kvpress's DecodingPress does, so only their decoding must compress.
 */
const DECODING_ONLY = new Set(['decoding', 'compression-ratio-decoding']);
DECODING_ONLY.add('cam');

/**
 * Presses whose budget is not per head, as press.ts allows: PyramidKV's layerKeep spreads it over the layers
 * (their total is the budget), AdaKV's select over the heads of a layer (their total is the budget). Every
 * other press must keep every head within the budget.
 */
const SHARED: Record<string, 'layers' | 'heads'> = { pyramidkv: 'layers', adakv: 'heads' };
// reconstruction: KVzip selects across all layers and heads, KVCompose sets each layer's count.
SHARED.kvzip = 'layers';
SHARED.kvcompose = 'layers';
// wrappers: CriticalAdaKV selects across the heads of a layer (as AdaKV), per-layer compression shapes the layers.
SHARED['critical-adakv'] = 'heads';
SHARED['per-layer-compression'] = 'layers';
// trained: Fast KVzip selects across all layers and heads (as KVzip); LU-KV's curve sets each layer's and head's count.
SHARED.fastkvzip = 'layers';
SHARED.lukv = 'layers';
// trained: RestoreKV compresses once, after the whole prompt, adding its restore tokens' entries (positions beyond the
// tokens seen), so neither per chunk nor while decoding: test/presses/trained.test.ts checks its prefill compression.
const ONCE = new Set(['restorekv']);

/**
 * Presses that prune key channels instead of entries (Press.keyChannels: ThinK): every head keeps every entry, and
 * at each compression the budget's fraction of the tokens seen is the fraction of key channels removed,
 * ⌊headDim·r⌋, from every entry held (channelBreaches checks that instead of the entries' budget).
 */
const KEY_CHANNELS = new Set(['think']);

/**
 * Presses whose --ratio is the share of KV heads they compress (DuoAttention: the round(R·layers·heads) streaming heads
 * keep sinks and a recent window, every other head keeps all it saw). They run under the ratio only (a token budget
 * names no share of heads), and the budget holds when at most that many heads hold fewer entries than the tokens
 * seen; test/presses/duo-attention.test.ts checks what each head keeps.
 */
const HEAD_SHARE = new Set(['duo-attention']);

function headShareBreaches(cache: KVCache, budget: Budget, when: string): string[] {
  const ratio = 'ratio' in budget ? budget.ratio : NaN;
  const allowedHeads = roundHalfEven(numLayers * numKvHeads * ratio);
  const short = cache.layers.flatMap((l, layer) => l.heads.flatMap((head, h) => (head.length < cache.seenTokens ? [`${layer}.${h}`] : [])));
  return short.length > allowedHeads ? [`${when}: ${short.length} heads hold fewer than the ${cache.seenTokens} tokens seen (${short}), the ratio allows ${allowedHeads}`] : [];
}

/**
 * Breaches of a key-channel press's budget: an entry dropped, or (`fresh` entries appended since the last
 * compression, 0 right after one) entries not pruned or pruned to another number of channels than the budget's.
 */
function channelBreaches(cache: KVCache, budget: Budget, fresh: number, when: string): string[] {
  const seen = cache.seenTokens;
  const d = lm.config.headDim;
  const removed = Math.floor(d * ('ratio' in budget ? budget.ratio : 1 - Math.min(budget.tokens, seen) / seen));
  return cache.layers.flatMap((l, layer) =>
    l.heads.flatMap((head, h) => {
      const where = `${when}: layer ${layer} head ${h}`;
      if (head.length !== seen) return [`${where} holds ${head.length} entries of ${seen}`];
      if (removed === 0) return [];
      const pruned = head.pruned ?? 0;
      if (pruned < head.length - fresh) return [`${where}: ${pruned} of ${head.length} entries have pruned keys`];
      if (fresh === 0 && head.keyChannels?.length !== d - removed) return [`${where} keeps ${head.keyChannels?.length} key channels, not ${d - removed}`];
      return [];
    }),
  );
}

/** Entries per head the budget allows after `seen` tokens (what entriesToKeep gives a head that holds them all). */
function allowed(budget: Budget, seen: number): number {
  return 'ratio' in budget ? Math.floor(seen * (1 - budget.ratio)) : Math.min(budget.tokens, seen);
}

/** Budget breaches of `cache` against `limit` entries per head, the way `press` shares its budget. */
function overBudget(press: string, cache: KVCache, limit: number, when: string): string[] {
  const lengths = cache.layers.map((l) => l.heads.map((h) => h.length));
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  if (SHARED[press] === 'layers') {
    const total = sum(lengths.flat());
    return total > limit * numLayers * numKvHeads ? [`${when}: ${total} entries in all, budget ${limit} × ${numLayers * numKvHeads} heads (${lengths.join(' | ')})`] : [];
  }
  return lengths.flatMap((heads, layer) => {
    if (SHARED[press] === 'heads') {
      const total = sum(heads);
      return total > limit * numKvHeads ? [`${when}: layer ${layer} holds ${total}, budget ${limit} × ${numKvHeads} heads (${heads})`] : [];
    }
    return heads.flatMap((n, h) => (n > limit ? [`${when}: layer ${layer} head ${h} holds ${n}, budget ${limit}`] : []));
  });
}

function checkPositions(cache: KVCache, when: string): void {
  cache.layers.forEach((l, layer) =>
    l.heads.forEach((head, h) => {
      const p = head.positions;
      for (let i = 0; i < p.length; i++) {
        assert.ok(p[i] >= 0 && p[i] < cache.nextPosition, `${when}: layer ${layer} head ${h}: position ${p[i]} outside [0, ${cache.nextPosition})`);
        assert.ok(i === 0 || p[i] > p[i - 1], `${when}: layer ${layer} head ${h}: positions ${p[i - 1]}, ${p[i]} not strictly ascending`);
      }
    }),
  );
}

/** Runs one compression (`compress`) and checks that every head it compacted released the dropped entries' memory. */
function checkFreed(cache: KVCache, session: CompressionSession, when: string, compress: () => void): void {
  const heads = cache.layers.flatMap((l) => l.heads);
  const before = heads.map((h) => ({ length: h.length, bytes: h.bytes(), live: h.liveBytes() }));
  const dropped = session.stats.dropped;
  compress();
  let removed = 0;
  heads.forEach((head, i) => {
    const was = before[i];
    const where = `${when}: layer ${Math.floor(i / numKvHeads)} head ${i % numKvHeads}`;
    assert.ok(head.length <= was.length, `${where} grew from ${was.length} to ${head.length} entries`);
    if (head.length === was.length) return;
    removed += was.length - head.length;
    // Exactly the kept entries' bytes, no spare room: what was dropped is gone, not masked.
    assert.equal(head.bytes(), head.liveBytes(), `${where}: ${head.bytes()} bytes allocated for ${head.length} entries (${head.liveBytes()} live)`);
    assert.ok(head.liveBytes() < was.live && head.bytes() < was.bytes, `${where}: ${was.bytes} → ${head.bytes()} bytes`);
  });
  assert.equal(session.stats.dropped - dropped, removed, `${when}: entries the session says it dropped`);
}

function finite(logits: Float32Array, when: string): Float32Array {
  assert.equal(logits.length, lm.config.vocabSize, `${when}: one row of logits`);
  assert.ok(logits.every(Number.isFinite), `${when}: logits not finite`);
  return logits;
}

for (const entry of PRESSES) {
  if (ONCE.has(entry.name)) continue;
  for (const budget of entry.sizesItself ? [undefined] : HEAD_SHARE.has(entry.name) ? BUDGETS.filter((b) => 'ratio' in b) : BUDGETS) {
    const label = !budget ? 'its own size' : 'ratio' in budget ? `ratio ${budget.ratio}` : `${budget.tokens} tokens`;
    test(`${entry.name}, ${label}: chunked prefill and decoding keep the contract`, () => {
      const options = resolveOptions(entry, OPTIONS[entry.name] ?? {});
      const decode = entry.decode?.(options) ?? { every: 2 };
      const cache = newCache(lm.config);
      const session = new CompressionSession({ press: entry.create(options), budget, during: 'chunks', decode }, lm.model, cache);
      const breaches: string[] = [];

      let seen = 0;
      let logits = prefill(lm.model, cache, ids, {
        chunkSize: CHUNK,
        observer: session.observer,
        afterChunk: (_, end) => {
          const when = `after the chunk ending at ${end}`;
          // The chunk is in: at most the budget of the tokens before it, plus the chunk.
          const channels = KEY_CHANNELS.has(entry.name);
          const heads = HEAD_SHARE.has(entry.name);
          if (budget && heads) breaches.push(...headShareBreaches(cache, budget, `${when}, before compression`));
          else if (budget && !channels) breaches.push(...overBudget(entry.name, cache, allowed(budget, seen) + (end - seen), `${when}, before compression`));
          checkFreed(cache, session, when, () => session.afterChunk(end, ids.length));
          if (budget && heads) breaches.push(...headShareBreaches(cache, budget, when));
          else if (budget) breaches.push(...(channels ? channelBreaches(cache, budget, 0, when) : overBudget(entry.name, cache, allowed(budget, end), when)));
          checkPositions(cache, when);
          seen = end;
        },
      });
      finite(logits, 'prefill');
      const prefillCompressions = session.stats.compressions;
      assert.ok(prefillCompressions > 0 || DECODING_ONLY.has(entry.name), 'the prefill was never compressed');

      // Decoding returns to the prefill's budget every `every` steps; in between, one entry per step is added.
      const target = budget ? allowed(budget, ids.length) : 0;
      const every = decode.every;
      assert.ok(every !== undefined && every <= STEPS, `decoding compresses every ${every} steps: not within ${STEPS}`);
      for (let s = 1; s <= STEPS; s++) {
        const when = `decoding step ${s}`;
        logits = finite(lm.model.forward([argmax(logits)], cache, { lastOnly: true, observer: session.observer }).f32, when);
        checkFreed(cache, session, when, () => session.afterDecodeStep());
        if (budget && HEAD_SHARE.has(entry.name)) breaches.push(...headShareBreaches(cache, budget, when));
        else if (budget && KEY_CHANNELS.has(entry.name)) breaches.push(...channelBreaches(cache, budget, s % every, when));
        else if (budget) breaches.push(...overBudget(entry.name, cache, target + (s % every), when));
        checkPositions(cache, when);
      }
      assert.equal(cache.seenTokens, ids.length + STEPS, "tokens seen (a re-rotated cache continues at its compressed length)");
      assert.ok(session.stats.compressions > prefillCompressions, 'decoding never compressed');
      assert.deepEqual(breaches, [], 'within the budget');
    });
  }
}

test('the options and shared budgets above name registered presses', () => {
  const names = new Set(PRESSES.map((p) => p.name));
  for (const name of [...Object.keys(OPTIONS), ...Object.keys(SHARED), ...DECODING_ONLY, ...KEY_CHANNELS, ...HEAD_SHARE]) assert.ok(names.has(name), name);
});
