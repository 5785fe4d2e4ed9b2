/**
 * The package entry (`import … from 'attend'`, resolved through package.json's exports to dist/, so `npm run build`
 * first): it exports the presses, and the README's example of compressing the KV cache from code runs as written.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as attend from 'attend';
import { BUNDLED_MODEL } from '../../src/cli/options.js';

const ROOT = join(import.meta.dirname, '..', '..');
const tmp = mkdtempSync(join(tmpdir(), 'attend-library-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
/** A real document of several hundred tokens. */
const documentText = readFileSync(join(ROOT, 'docs', 'presses.md'), 'utf8').slice(0, 2500);

test('the package entry exports the presses, the registry, plans, budgets and sessions', () => {
  for (const name of ['createPress', 'pressEntry', 'CompressionSession', 'entriesToKeep', 'topK', 'newCache', 'prefill', 'generate']) {
    assert.equal(typeof (attend as Record<string, unknown>)[name], 'function', name);
  }
  const names = attend.PRESSES.map((p) => p.name);
  assert.ok(names.includes('snapkv') && names.includes('h2o') && names.length >= 11, names.join(', '));
  for (const p of attend.PRESSES) {
    assert.equal(typeof p.summary, 'string');
    const required = Object.entries(p.options).filter(([, spec]) => spec.required).map(([key]) => key);
    if (required.length > 0) {
      // An option without a default is named in a one-line error.
      assert.throws(() => attend.createPress(p.name, {}), (e: Error) => e instanceof attend.AttendError && e.message.includes(required[0]), p.name);
      continue;
    }
    assert.equal(attend.createPress(p.name, {}).score instanceof Function, true, p.name);
  }
  assert.deepEqual(attend.pressEntry('h2o').decode?.({}), { every: 1 });
  assert.throws(() => attend.createPress('nope', {}), (e: Error) => e instanceof attend.AttendError && /unknown press "nope"/.test(e.message));
});

test('the package entry exports the core seams: kernels, hooks, selectors, backends, speculative decoding', () => {
  for (const name of ['parseKernel', 'referenceAttention', 'sees', 'ablationHooks', 'withHooks', 'forwardWithHidden', 'parseHeads', 'createSelector', 'SelectionSession', 'QuestSelector', 'CpuBackend', 'ReferenceBackend', 'SpeculativeDecoder']) {
    assert.equal(typeof (attend as Record<string, unknown>)[name], 'function', name);
  }
  assert.deepEqual(Object.keys(attend.ATTENTION_KERNELS), ['softmax', 'sigmoid']);
  assert.ok('quest' in attend.SELECTORS);
  assert.deepEqual(Object.keys(attend.FAMILIES).sort(), ['gpt2', 'llama']);
});

test('inspectModel: what a checkpoint is, from its config and headers', () => {
  const summary = attend.inspectModel(BUNDLED_MODEL);
  assert.equal(summary.config.numLayers, 8);
  assert.equal(summary.parameterCount, 30_941_696);
});

test('compressing a cache from code keeps the budget per head and frees the rest', () => {
  const lm = attend.loadModel(BUNDLED_MODEL);
  const ids = lm.tokenizer.encode(documentText);
  const full = attend.newCache(lm.config);
  attend.prefill(lm.model, full, ids);

  const plan: attend.CompressionPlan = { press: attend.createPress('snapkv', { window: 32 }), budget: { ratio: 0.5 } satisfies attend.Budget };
  const cache = attend.newCache(lm.config);
  const session = new attend.CompressionSession(plan, lm.model, cache);
  attend.prefill(lm.model, cache, ids, { observer: session.observer, afterChunk: (_, end) => session.afterChunk(end, ids.length) });
  const keep = Math.floor(ids.length * 0.5);
  for (const layer of cache.layers) for (const head of layer.heads) assert.equal(head.length, keep);
  assert.equal(cache.seenTokens, ids.length);
  assert.equal(session.stats.compressions, 1);
  assert.equal(session.stats.dropped, (ids.length - keep) * lm.config.numLayers * lm.config.numKvHeads);
  assert.ok(cache.liveBytes() < full.liveBytes() * 0.51, `${cache.liveBytes()} vs ${full.liveBytes()}`);
  assert.ok(cache.bytes() < full.bytes());
});

test("the README's compression example runs as written", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const library = readme.slice(readme.indexOf('## The library'), readme.indexOf('\n## ', readme.indexOf('## The library') + 1));
  const blocks = [...library.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
  const example = blocks.find((b) => b.includes('createPress'));
  assert.ok(example, "no ```ts block with createPress in the README's library section");
  assert.match(example, /from 'attend';/);
  const report = join(tmp, 'report.txt');
  writeFileSync(report, documentText);
  let code = example;
  for (const [from, to] of [["'path/to/model'", JSON.stringify(BUNDLED_MODEL)], ["'report.txt'", JSON.stringify(report)]]) {
    assert.ok(code.includes(from), `the example no longer reads ${from}`);
    code = code.replaceAll(from, to);
  }
  // Run from the repository root so that 'attend' resolves to this package, as it would for a user.
  const r = spawnSync(process.execPath, ['--input-type=module', '--eval', code], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^streaming-llm - attention sinks/m);
  assert.match(r.stdout, /compressions: 1/);
  const kept = r.stdout.match(/(\d+) entries kept of (\d+)/);
  assert.ok(kept, r.stdout);
  const c = attend.readModelConfig(BUNDLED_MODEL);
  const heads = c.numLayers * c.numKvHeads;
  assert.equal(Number(kept[1]), Math.floor(Number(kept[2]) / heads / 2) * heads, 'half the entries of every head kept');
  assert.match(r.stdout, /Q: Who wrote it\?/);
});
