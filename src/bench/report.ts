/** Shared shapes of the benchmark sections and the plain-text/markdown table they print. */

export interface BenchOptions {
  /** Samples per measurement (median taken). */
  repeats: number;
  /** Wall-clock budget per measurement, ms. */
  budgetMs: number;
  /** Restrict our matmul to these paths (default: every available one). */
  paths?: string[];
  /** Skip onnxruntime-node. */
  noOrt?: boolean;
}

export interface Row {
  section: string;
  /** What was measured, e.g. '512×1536, M=64'. */
  case: string;
  /** Implementation: our path name, 'onnxruntime' or a method. */
  impl: string;
  threads: number;
  /** Median time per call, ms. */
  ms: number;
  gflops?: number;
  /** Bytes moved per second (weights read, for one-row matmuls), GB/s = 1e9 B/s. */
  gbps?: number;
  /** Our GFLOP/s over onnxruntime-node's on the same case. */
  vsOrt?: number;
  note?: string;
}

/**
 * One section of `npm run bench`. Add a section (e.g. model prefill/decode tokens/s) by appending to the list in
 * main.ts; the table printer only needs the Row fields it fills.
 */
export interface BenchSection {
  name: string;
  title: string;
  run(opts: BenchOptions): Promise<Row[]>;
}

const fmt = (x: number | undefined, digits: number) => (x === undefined ? '' : x.toFixed(digits));

function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '';
  return ms >= 100 ? ms.toFixed(0) : ms >= 1 ? ms.toFixed(2) : ms.toPrecision(3);
}

/** A markdown table of rows (one section). */
export function markdownTable(rows: Row[]): string {
  const head = ['case', 'implementation', 'threads', 'ms/call', 'GFLOP/s', 'GB/s', 'vs ORT', 'note'];
  const body = rows.map((r) => [
    r.case,
    r.impl,
    String(r.threads),
    fmtMs(r.ms),
    fmt(r.gflops, 1),
    fmt(r.gbps, 1),
    r.vsOrt === undefined ? '' : `${r.vsOrt.toFixed(2)}×`,
    r.note ?? '',
  ]);
  const used = head.map((_, i) => body.some((row) => row[i] !== ''));
  const pick = (cells: string[]) => `| ${cells.filter((_, i) => used[i]).join(' | ')} |`;
  const align = head.map((_, i) => (i >= 2 && i <= 6 ? '---:' : '---'));
  return [pick(head), pick(align), ...body.map(pick)].join('\n');
}
