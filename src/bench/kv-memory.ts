/**
 * KV memory during prefill: Attend's compression after every prefill chunk against the kvpress way (an
 * uncompressed prefill, then compression), and against no compression, on the same prompt in the same run.
 * Peak cache bytes are exact (cache.bytes() at the fullest moment of each chunk); resident memory is measured
 * per case in a fresh process.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BUNDLED_MODEL } from '../cli/options.js';
import type { BenchOptions, Row } from './report.js';

interface CaseResult {
  tokens: number;
  mode: string;
  press: string;
  ratio: number;
  chunk: number;
  peakCache: number;
  finalCache: number;
  peakRssDelta: number;
  prefillMs: number;
}

const MB = 2 ** 20;

function runCase(tokens: number, mode: string, press: string, ratio: number, chunk: number): CaseResult {
  const script = fileURLToPath(new URL('./kv-memory-case.js', import.meta.url));
  const out = execFileSync(process.execPath, ['--expose-gc', script, BUNDLED_MODEL, String(tokens), mode, press, String(ratio), String(chunk)], {
    encoding: 'utf8',
  });
  return JSON.parse(out.trim().split('\n').at(-1)!) as CaseResult;
}

export async function benchKvMemory(opts: BenchOptions): Promise<Row[]> {
  const lengths = opts.budgetMs < 1000 ? [2048] : [4096, 8192];
  const rows: Row[] = [];
  for (const tokens of lengths) {
    const [full, kvpressWay, chunked] = (['full', 'prefill', 'chunks'] as const).map((mode) => runCase(tokens, mode, 'snapkv', 0.75, 512));
    for (const r of [full, kvpressWay, chunked]) {
      const label = r.mode === 'full' ? 'no compression' : r.mode === 'prefill' ? 'compress after prefill (kvpress)' : 'compress every chunk (Attend)';
      rows.push({
        section: 'kv-memory',
        case: `${tokens} tokens, snapkv ratio 0.75, chunk 512`,
        impl: label,
        threads: 0,
        ms: r.prefillMs,
        note:
          `peak KV ${(r.peakCache / MB).toFixed(1)} MiB, final KV ${(r.finalCache / MB).toFixed(1)} MiB, ` +
          `peak RSS +${(r.peakRssDelta / MB).toFixed(0)} MiB` +
          (r.mode === 'chunks' ? `; peak KV ${(chunked.peakCache / kvpressWay.peakCache).toFixed(2)}× the kvpress way` : ''),
      });
    }
  }
  return rows;
}
