/**
 * SpecKV and SpecPC in `attend bench`: SpecPC's config kind ({"prompt": "specpc", …}) parses into query-aware cells
 * and refuses bad input in one line; both run with a prefill of their own in a shared sweep (SpecKV's draft must see
 * the prompt's ids, SpecPC prefills the ids it kept), so their answers and bytes are those of a sweep without
 * sharing; on the bundled model SpecPC's cell holds the kept share of the prompt.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BUNDLED_MODEL } from '../../src/cli/options.js';
import { AttendError } from '../../src/errors.js';
import { runGeneration } from '../../src/eval/run-cell.js';
import { groupBySharedPrefill } from '../../src/eval/shared-prefill.js';
import { expandSweep, parseSweepConfig, SWEEP_DEFAULTS, type SweepConfig, validateSweep } from '../../src/eval/sweep-config.js';
import { runSweep } from '../../src/eval/sweep.js';
import { taskByName } from '../../src/eval/tasks/index.js';
import type { CellKey, TaskInstance } from '../../src/eval/types.js';
import { loadModel } from '../../src/models/load.js';

const DRAFT = 'models/attend-mini-draft';
const tmp = mkdtempSync(join(tmpdir(), 'attend-speckv-sweep-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function parse(methods: unknown[], extra: Record<string, unknown> = {}): SweepConfig {
  return parseSweepConfig({ methods, ...extra }, 'sweep.json');
}

function refuses(methods: unknown[], pattern: RegExp, extra: Record<string, unknown> = {}): void {
  assert.throws(() => {
    const config = parse(methods, extra);
    validateSweep(config, 8192, 'sweep.json');
  }, (e: unknown) => {
    assert.ok(e instanceof AttendError, String(e));
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes('\n'), e.message);
    return true;
  });
}

test('a prompt compressor parses into one query-aware cell per budget, with no "during"', () => {
  const config = parse([{ press: 'full' }, { prompt: 'specpc', ratios: [0.5, 0.75], budgets: [1024], options: { draft: DRAFT, kernel: 16 } }],
    { queryAware: [false, true], contextLengths: [4096] });
  validateSweep(config, 8192, 'sweep.json');
  const cells = expandSweep(config, 'attend-mini').filter((c) => c.method === 'specpc');
  assert.deepEqual(cells.map((c) => [c.budget, c.queryAware, c.during]), [
    [{ ratio: 0.5 }, true, null],
    [{ ratio: 0.75 }, true, null],
    [{ tokens: 1024 }, true, null],
  ]);
  assert.deepEqual(cells[0].options, { draft: DRAFT, kernel: 16 });
  // Parsed again (as a resumed sweep's config is), the normalised method is the same.
  assert.deepEqual(parseSweepConfig(JSON.parse(JSON.stringify(config)), 'again').methods, config.methods);
});

test('a prompt compressor refuses bad input in one line naming the problem', () => {
  const specpc = (rest: Record<string, unknown>) => ({ prompt: 'specpc', ratios: [0.75], options: { draft: DRAFT }, ...rest });
  refuses([specpc({ prompt: 'snapkv' })], /"prompt" must be a prompt compressor's name \(specpc\), got "snapkv"/);
  refuses([specpc({ press: 'snapkv' })], /give one of "press", "selector" or "prompt"/);
  refuses([specpc({ options: {} })], /specpc needs "options": \{"draft": DIR\}/);
  refuses([specpc({ options: undefined })], /specpc needs "options" such as/);
  refuses([specpc({ options: { draft: DRAFT, window: '64' } })], /specpc option "window" must be a number \(got "64"\)/);
  refuses([specpc({ options: { draft: DRAFT, size: 3 } })], /specpc has no option "size" \(options: draft, window/);
  refuses([specpc({ during: 'chunks' })], /runs before the prefill and takes no "during"/);
  refuses([specpc({ ratios: undefined })], /specpc needs ratios or budgets/);
  refuses([specpc({ ratios: [1.5] })], /"ratios" must be a non-empty list of numbers in \(0, 1\)/);
  refuses([{ press: 'specpc', prompt: true, ratios: [0.5] }], /specpc needs "options": \{"draft": DIR\}/);
  refuses([{ press: 'snapkv', prompt: true, ratios: [0.5] }], /"prompt" must be a prompt compressor's name \(specpc\), got "snapkv"/);
  refuses([specpc({})], /specpc compresses a prompt before its prefill and has no perplexity cells/, { tasks: ['perplexity'] });
});

const lm = loadModel(BUNDLED_MODEL);
const config: SweepConfig = {
  ...SWEEP_DEFAULTS,
  tasks: ['passkey'],
  contextLengths: [300],
  samples: 1,
  prefillChunk: 64,
  queryAware: [true],
  methods: [
    { press: 'full' },
    { press: 'snapkv', ratios: [0.5], options: { window: 8 } },
    { press: 'speckv', ratios: [0.5], options: { draft: DRAFT, lookahead: 8 } },
    { press: 'specpc', prompt: true, ratios: [0.5], options: { draft: DRAFT } },
  ],
};

test('speckv and specpc prefill alone in a shared sweep, with the answers and bytes of an unshared one', async () => {
  const cells = expandSweep(config, 'attend-mini');
  assert.deepEqual(groupBySharedPrefill(cells).map((g) => g.map((c) => c.method)), [['full', 'snapkv'], ['speckv'], ['specpc']]);
  const shared = await runSweep(lm, cells, join(tmp, 'shared.jsonl'), { sharedPrefill: true });
  const own = await runSweep(lm, cells, join(tmp, 'own.jsonl'), { sharedPrefill: false });
  for (const [i, r] of shared.entries()) {
    assert.equal(r.metrics.prediction, own[i].metrics.prediction, r.method);
    assert.equal(r.metrics.kvBytes, own[i].metrics.kvBytes, r.method);
    assert.equal(r.metrics.sharedPrefill, r.method === 'full' || r.method === 'snapkv' ? true : undefined, r.method);
  }
  const full = own.find((r) => r.method === 'full')!;
  for (const method of ['speckv', 'specpc']) {
    const r = own.find((x) => x.method === method)!;
    assert.equal(r.metrics.promptTokens, full.metrics.promptTokens, method);
    assert.ok(r.metrics.kvBytes < 0.6 * full.metrics.kvBytes, `${method} keeps about half: ${r.metrics.kvBytes} of ${full.metrics.kvBytes}`);
  }
});

test("specpc's cell prefills the kept half of the prompt, at positions 0 … keep − 1", async () => {
  const cell = expandSweep(config, 'attend-mini').find((c) => c.method === 'specpc') as CellKey;
  const instance = taskByName('passkey').generate({ seed: cell.seed, contextLength: 300, tokenizer: lm.tokenizer }) as TaskInstance;
  const n = lm.tokenizer.encode(instance.context).length + lm.tokenizer.encode(instance.question, { addSpecialTokens: false }).length;
  const keep = Math.floor(n * 0.5);
  const { cache } = await runGeneration(lm, cell, instance);
  for (const head of cache.layers.flatMap((l) => l.heads)) {
    // The kept prompt, then the answer's tokens (all but the last generated one, which is never run).
    assert.ok(head.length >= keep && head.length < keep + instance.maxNewTokens, `${head.length} entries for ${keep} kept of ${n}`);
    assert.equal(head.positions[keep - 1], keep - 1);
  }
});
