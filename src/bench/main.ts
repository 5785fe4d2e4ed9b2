/**
 * `npm run bench` (node dist/bench/main.js): runs the benchmark sections and prints each as a markdown table, ready
 * for docs/performance.md. Options: --only a,b (section names), --paths openblas,wasm-simd,js, --no-ort,
 * --repeats N, --budget MS (per measurement), --quick, --json FILE.
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { matmulBackendInfo } from '../backend/cpu/matmul.js';
import { benchKvMemory } from './kv-memory.js';
import { benchBandwidth, benchMatmul } from './matmul.js';
import { type BenchOptions, type BenchSection, markdownTable, type Row } from './report.js';

/** The sections, in run order. Extension point: append e.g. { name: 'model', title: 'Prefill and decode', run }. */
export const sections: BenchSection[] = [
  { name: 'bandwidth', title: 'Memory bandwidth', run: benchBandwidth },
  { name: 'matmul', title: 'Matrix multiply', run: (opts) => benchMatmul(opts) },
  { name: 'kv-memory', title: 'KV memory during prefill (attend-mini)', run: benchKvMemory },
  { name: 'model', title: 'Prefill and decode (attend-mini)', run: (opts) => import('./model.js').then((m) => m.benchModel(opts)) },
  { name: 'kv-dtype', title: 'Decode with an f32, f16 or bf16 KV cache (attend-mini)', run: (opts) => import('./kv-dtype.js').then((m) => m.benchKvDtype(opts)) },
];

function machine(): string {
  const cpus = os.cpus();
  const env = ['OPENBLAS_CORETYPE', 'OPENBLAS_NUM_THREADS', 'ATTEND_MATMUL', 'ATTEND_MATMUL_THREADS']
    .filter((v) => process.env[v])
    .map((v) => `${v}=${process.env[v]}`);
  return [
    `date: ${new Date().toISOString()}`,
    `machine: ${cpus[0]?.model ?? '?'}, ${os.availableParallelism()} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.arch()}`,
    `node ${process.version}${env.length ? `, ${env.join(' ')}` : ''}`,
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      paths: { type: 'string' },
      'no-ort': { type: 'boolean' },
      repeats: { type: 'string' },
      budget: { type: 'string' },
      quick: { type: 'boolean' },
      json: { type: 'string' },
    },
  });
  const opts: BenchOptions = {
    repeats: Number(values.repeats ?? (values.quick ? 5 : 21)),
    budgetMs: Number(values.budget ?? (values.quick ? 400 : 3000)),
    paths: values.paths?.split(','),
    noOrt: values['no-ort'],
  };
  const only = values.only?.split(',');
  console.log(machine());
  const mm = matmulBackendInfo();
  console.log(`matmul default: ${mm.name}, ${mm.threads} threads (${mm.detail})\n`);
  const rows: Row[] = [];
  for (const s of sections) {
    if (only && !only.includes(s.name)) continue;
    const got = await s.run(opts);
    rows.push(...got);
    console.log(`## ${s.title}\n\n${markdownTable(got)}\n`);
  }
  if (values.json) writeFileSync(values.json, JSON.stringify({ machine: machine(), rows }, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
