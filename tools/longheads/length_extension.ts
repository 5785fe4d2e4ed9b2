/**
 * LongHeads' claim on the bundled model (Lu et al. 2024, arXiv 2402.10685, §4: passkey retrieval and long-context
 * tasks past the pretraining length with no training): attend-mini, trained on 8K-token sequences, answers passkey
 * and single-needle questions at 16K and 32K tokens with LongHeads (every head reads at most its trained length,
 * remapped into it: selectors/longheads.ts), where full attention over positions it never saw fails.
 *
 *   node --import tsx tools/longheads/length_extension.ts [--model models/attend-mini] [--lengths 16384,32768]
 *       [--tasks passkey,niah_single] [--methods full,longheads] [--n 2] [--seed 1] [--chunk 512]
 *       [--option budget=8192] [--out /tmp/longheads/results.jsonl]
 *
 * Instances are the bench's (src/eval/tasks: RULER-style passkey and niah_single in attend-mini's held-out formats),
 * context tokenized with special tokens and the question without, as `attend bench` does; sample i has seed
 * --seed + i and its needle at depth 0.1, 0.3, 0.5, 0.7, 0.9 for seeds 1, 2, 3, 4, 5 (cycling), so a later run with
 * --seed 2 adds new samples to an earlier one. The prompt is prefilled in
 * chunks through the selector (LongHeads selects in the prefill too, as the official code does), then the answer
 * is decoded greedily and scored by RULER's string match (src/eval/scoring.ts). `attend bench` cannot run this:
 * it refuses contexts beyond the model's 8192 positions, which is the point here, so this script drives the model
 * directly. One JSON line per (instance, method) goes to --out as soon as it is done; a table with n and 95% Wilson
 * intervals closes the run (and goes to --out with .summary.json).
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { forwardChunks } from '../../src/generate/chunks.js';
import { loadModel } from '../../src/models/load.js';
import { score, wilson } from '../../src/eval/scoring.js';
import { taskByName } from '../../src/eval/tasks/index.js';
import type { TaskInstance } from '../../src/eval/types.js';
import { createSelector, SelectionSession } from '../../src/selectors/registry.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: new URL('../../models/attend-mini', import.meta.url).pathname },
    lengths: { type: 'string', default: '16384,32768' },
    tasks: { type: 'string', default: 'passkey,niah_single' },
    methods: { type: 'string', default: 'full,longheads' },
    n: { type: 'string', default: '2' },
    seed: { type: 'string', default: '1' },
    chunk: { type: 'string', default: '512' },
    option: { type: 'string', multiple: true, default: [] },
    out: { type: 'string', default: '/tmp/longheads/results.jsonl' },
  },
});

const list = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);
const lengths = list(values.lengths!).map(Number);
const tasks = list(values.tasks!);
const methods = list(values.methods!);
const n = Number(values.n);
const seed0 = Number(values.seed);
const chunk = Number(values.chunk);
const options = Object.fromEntries(values.option!.map((o) => {
  const [k, v] = o.split('=');
  return [k, Number(v)];
}));
const DEPTHS = [0.1, 0.3, 0.5, 0.7, 0.9];
for (const m of methods) if (m !== 'full' && m !== 'longheads') throw new Error(`--methods: full or longheads, not ${m}`);

const lm = loadModel(values.model!);
const { model, tokenizer } = lm;
const eos = new Set(lm.generation.eosTokenIds ?? (lm.config.eosTokenIds.length ? lm.config.eosTokenIds : tokenizer.eosTokenIds));
mkdirSync(dirname(values.out!), { recursive: true });
const log = (s: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);

interface Row {
  task: string;
  length: number;
  depth: number;
  seed: number;
  method: string;
  promptTokens: number;
  expected: string[];
  prediction: string;
  correct: number;
  prefillS: number;
  decodeS: number;
  readShare: number;
}

/** One instance through one method: chunked prefill (the selector sees every chunk), then greedy decoding. */
function run(instance: TaskInstance, method: string): Omit<Row, 'task' | 'length' | 'depth' | 'seed' | 'method'> {
  const ids = [...tokenizer.encode(instance.context), ...tokenizer.encode(instance.question, { addSpecialTokens: false })];
  const session = method === 'longheads' ? new SelectionSession(createSelector('longheads', options), lm.config) : undefined;
  const select = session?.select;
  const cache = model.makeCache();
  const t0 = performance.now();
  let last: Float32Array | undefined;
  forwardChunks(model, cache, ids, chunk, { lastOnly: true, select }, (logits, _, end) => {
    if (end === ids.length) last = model.backend.read(logits).slice();
  });
  const t1 = performance.now();
  const out: number[] = [];
  for (let i = 0; i < instance.maxNewTokens; i++) {
    const token = argmax(last!);
    if (eos.has(token)) break;
    out.push(token);
    if (i + 1 === instance.maxNewTokens) break;
    last = model.backend.read(model.forward([token], cache, { lastOnly: true, select })).slice();
  }
  const prediction = tokenizer.decode(out, { skipSpecialTokens: true });
  return {
    promptTokens: ids.length,
    expected: [...instance.answers],
    prediction,
    correct: score(instance, prediction),
    prefillS: (t1 - t0) / 1000,
    decodeS: (performance.now() - t1) / 1000,
    readShare: session ? session.readShare() : 1,
  };
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

const rows: Row[] = [];
log(`model ${values.model}; lengths ${lengths.join(', ')}; tasks ${tasks.join(', ')}; methods ${methods.join(', ')}; n ${n}; options ${JSON.stringify(options)}`);
for (const length of lengths) {
  for (const task of tasks) {
    for (let i = 0; i < n; i++) {
      const seed = seed0 + i;
      const depth = DEPTHS[(((seed - 1) % DEPTHS.length) + DEPTHS.length) % DEPTHS.length];
      const instance = taskByName(task).generate({ seed, contextLength: length, depth, tokenizer }) as TaskInstance;
      for (const method of methods) {
        const row = { task, length, depth, seed, method, ...run(instance, method) };
        rows.push(row);
        appendFileSync(values.out!, JSON.stringify(row) + '\n');
        log(`${task} ${length} depth ${depth} seed ${seed} ${method}: ${row.correct ? 'right' : 'wrong'} ` +
          `(${JSON.stringify(row.prediction)} vs ${row.expected.join(', ')}; ${row.promptTokens} tokens, prefill ${row.prefillS.toFixed(0)} s, ` +
          `decode ${row.decodeS.toFixed(1)} s, read share ${row.readShare.toFixed(3)})`);
      }
    }
  }
}

// Accuracy per (task, length, method) with n and the 95% Wilson interval.
const summary: Record<string, unknown>[] = [];
const lines = ['| task | length | method | accuracy | n | 95% Wilson |', '| --- | --- | --- | --- | --- | --- |'];
for (const task of tasks) {
  for (const length of lengths) {
    for (const method of methods) {
      const cell = rows.filter((r) => r.task === task && r.length === length && r.method === method);
      const right = cell.reduce((m, r) => m + r.correct, 0);
      const { lo, hi } = wilson(right, cell.length);
      summary.push({ task, length, method, right, n: cell.length, accuracy: right / cell.length, wilson: [lo, hi] });
      lines.push(`| ${task} | ${length} | ${method} | ${(right / cell.length).toFixed(2)} (${right}/${cell.length}) | ${cell.length} | ${lo.toFixed(2)}–${hi.toFixed(2)} |`);
    }
  }
}
writeFileSync(values.out!.replace(/\.jsonl$/, '') + '.summary.json', JSON.stringify({ options, chunk, summary }, null, 2) + '\n');
process.stdout.write(lines.join('\n') + '\n');
