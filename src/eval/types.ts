/**
 * The shapes shared by the long-context benchmark (`attend bench`): task instances, sweep cells and the JSON line
 * written for each cell. Tasks live in eval/tasks/, the sweep runner in eval/sweep.ts, the report in eval/report/.
 */
import type { TextTokenizer } from '../io/tokenizer.js';

/** A prompt split where a query-agnostic press compresses: the context alone, then the question on top. */
export interface TaskInstance {
  task: string;
  /** Target length of the whole prompt in tokens (the instance is fitted to it). */
  contextLength: number;
  /** Where the needle sits, 0 (start) … 1 (end), for tasks that have one. */
  depth?: number;
  seed: number;
  /** The haystack and everything before the question. */
  context: string;
  /** The question and the answer cue ("… Answer:"); generation continues right after it. */
  question: string;
  /** Every string the answer must contain (RULER's string_match_all) or one of which it must contain (part). */
  answers: string[];
  metric: 'all' | 'part';
  /** Tokens to generate for the answer. */
  maxNewTokens: number;
}

/** A long document whose perplexity is measured (streamed, for methods that keep running unbounded). */
export interface PerplexityInstance {
  task: 'perplexity';
  contextLength: number;
  seed: number;
  text: string;
}

export interface TaskOptions {
  seed: number;
  contextLength: number;
  depth?: number;
  tokenizer: TextTokenizer;
}

export interface TaskGenerator {
  name: string;
  description: string;
  /** Whether the task places a needle at a depth (a depth sweep makes sense). */
  hasDepth: boolean;
  /**
   * Whether an instance is drawn from a fixed pool by (seed, length, depth), so that one seed gives unrelated
   * instances at other lengths and depths; otherwise the seed fixes the needle, which recurs there.
   */
  pooled?: boolean;
  generate(opts: TaskOptions): TaskInstance | PerplexityInstance;
}

/** One point of a sweep. */
export interface CellKey {
  model: string;
  task: string;
  contextLength: number;
  depth: number | null;
  seed: number;
  /** 'full' for no compression, else a press name. */
  method: string;
  options: Record<string, number | string>;
  budget: { ratio: number } | { tokens: number } | null;
  /** 'prefill' or 'chunks' (when compression runs), null for full. */
  during: 'prefill' | 'chunks' | null;
  /** Query-aware: the question is in the cache when it is compressed. */
  queryAware: boolean;
  prefillChunk: number;
  /**
   * A selector cell that selects within a compressed cache: the press that compressed it first, at this ratio
   * (the share of the KV removed), in the cell's query mode. Absent for every other cell.
   */
  within?: WithinPress;
  /**
   * A cell run on the model with ACT attention calibration (eval/act-method.ts): the calibration read from the
   * method's "act" file. Absent for every other cell.
   */
  act?: ActCell;
}

/** An ACT calibration as a cell holds it: the file it came from, β, the sink threshold and the calibrated query heads. */
export interface ActCell {
  path: string;
  beta: number;
  threshold: number;
  heads: { layer: number; head: number }[];
}

/** The press under a selector: what the cache keeps, before the selector chooses what each step reads. */
export interface WithinPress {
  press: string;
  ratio: number;
  options?: Record<string, number | string>;
}

export interface CellMetrics {
  /** RULER string match of this cell's answer: 0…1 (part credit for 'all' tasks with several answers). */
  accuracy: number;
  /** For perplexity cells. */
  perplexity?: number;
  prediction?: string;
  /** The answers the prediction was scored against (the instance's); absent in results written before it was kept. */
  expected?: string[];
  /** Cache bytes after prefill (and compression), and the most it held at any time. */
  kvBytes: number;
  peakKvBytes: number;
  /** Resident memory of the process at its highest during the cell. */
  peakRssBytes: number;
  promptTokens: number;
  ttftMs: number;
  prefillTokensPerS: number;
  decodeTokensPerS: number;
  /** Selector cells: entries the sparse decoding steps read over entries the cache held (summed over heads and steps). */
  readShare?: number;
  /** Selector cells: entries read per KV head per sparse layer step, on average. */
  entriesReadPerStep?: number;
  /**
   * The prompt was prefilled once for this cell and others of its instance (eval/shared-prefill.ts): prediction
   * and bytes are those of a run of its own; ttftMs is the shared prefill's time plus this cell's compression
   * (and, query-agnostic, its question tokens), prefillTokensPerS follows from it; peakKvBytes is the full cache at
   * the end of the prefill, as in a run of its own; peakRssBytes also counts the shared cache kept meanwhile.
   */
  sharedPrefill?: true;
}

/** One JSON line of the results file. */
export interface CellResult extends CellKey {
  /** The git commit of the code that produced it, and when. */
  commit: string;
  date: string;
  metrics: CellMetrics;
}

/** The identity of a cell for resuming: everything but metrics, commit and date. */
export function cellId(key: CellKey): string {
  const { model, task, contextLength, depth, seed, method, options, budget, during, queryAware, prefillChunk } = key;
  const sortedOptions = Object.fromEntries(Object.entries(options).sort(([a], [b]) => a.localeCompare(b)));
  const id: unknown[] = [model, task, contextLength, depth, seed, method, sortedOptions, budget, during, queryAware, prefillChunk];
  // Only cells with a press under their selector carry it, so the ids of every other cell stay as they were.
  if (key.within) {
    const { press, ratio, options: o = {} } = key.within;
    id.push({ press, ratio, options: Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b))) });
  }
  // Likewise ACT cells: the calibration, not its file's path, tells two cells apart.
  if (key.act) id.push({ act: { beta: key.act.beta, threshold: key.act.threshold, heads: key.act.heads } });
  return JSON.stringify(id);
}
