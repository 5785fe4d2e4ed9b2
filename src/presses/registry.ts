/**
 * Every press by name, with its options, their defaults and the source they come from: what `--press NAME
 * --press-opt KEY=VALUE` and `attend presses` read. Adding a method = one file + one entry here + its test.
 */
import { AttendError } from '../errors.js';
import { AdaKVPress } from './adakv.js';
import { BLOCK_DEFAULTS, BlockPress } from './block.js';
import { CHUNK_DEFAULTS, ChunkPress } from './chunk.js';
import { CHUNKKV_DEFAULTS, ChunkKVPress } from './chunkkv.js';
import { ComposedPress } from './composed.js';
import { CRITICAL_ADAKV_DEFAULTS, CriticalAdaKVPress } from './critical-adakv.js';
import { CRITICALKV_DEFAULTS, CriticalKVPress } from './criticalkv.js';
import { PerLayerCompressionPress } from './per-layer-compression.js';
import { numberList } from './wrapped.js';
import { CAM_DEFAULTS, CamPress } from './cam.js';
import { CAP_DEFAULTS, CapPress } from './cap.js';
import { COMPACTOR_DEFAULTS, CompactorPress, parseBlending } from './compactor.js';
import { CriticPress, CRITIC_DEFAULTS } from './critic.js';
import { CUR_DEFAULTS, CURPress, type LeverageType } from './cur.js';
import { COMPRESSION_RATIO_DECODING_DEFAULTS, CompressionRatioDecodingPress } from './compression-ratio-decoding.js';
import { DECODING_DEFAULTS, DecodingPress } from './decoding.js';
import { DMS_DEFAULTS, DMSPress } from './dms.js';
import { ExpectedAttentionPress, ExpectedAttentionStatsPress, expectedAttentionFrom, expectedAttentionOptions, readQueryStatistics } from './expected-attention.js';
import { FINCH_DEFAULTS, FinchPress } from './finch.js';
import { H2OPress } from './h2o.js';
import { KeyRerotationPress } from './key-rerotation.js';
import { KeyDiffPress } from './keydiff.js';
import { KnormPress } from './knorm.js';
import { LAGKV_DEFAULTS, LagKVPress } from './lagkv.js';
import { LAZY_EVICTION_DEFAULTS, LazyEvictionPress } from './lazy-eviction.js';
import { LEVERAGE_SCORE_DEFAULTS, LeverageScorePress } from './leverage-score.js';
import { MERGING_DEFAULTS, MergingPress } from './merging.js';
import { NON_CAUSAL_ATTENTION_DEFAULTS, NonCausalAttentionPress } from './non-causal-attention.js';
import { ObservedAttentionPress } from './observed-attention.js';
import type { Press } from './press.js';
import { PYRAMIDKV_DEFAULTS, PyramidKVPress } from './pyramidkv.js';
import { PrefillDecodingPress } from './prefill-decoding.js';
import { RandomPress } from './random.js';
import type { CompressionPlan } from './runner.js';
import { type Aggregation, KVCOMPOSE_DEFAULTS, KVComposePress } from './kvcompose.js';
import { KVZIP_DEFAULTS, KVzipPress } from './kvzip.js';
import { SIMLAYERKV_DEFAULTS, SimLayerKVPress } from './simlayerkv.js';
import { SNAPKV_DEFAULTS, SnapKVPress } from './snapkv.js';
import { type Reduction, SPECKV_DEFAULTS, SpecKVPress } from './speckv.js';
import { StreamingLLMPress } from './streaming-llm.js';
import { TOVAPress } from './tova.js';
import { FASTKVZIP_DEFAULTS, FastKVzipPress, readFastKVzipGates } from './fastkvzip.js';
import { KVzapPress, readKVzapModel } from './kvzap.js';
import { LUKV_DEFAULT_EPSILON, LUKV_DEFAULTS, LUKVPress, readBudgetCurve } from './lukv.js';
import { QFilterPress, readQFilters } from './qfilter.js';
import { RESTOREKV_DEFAULTS, readRestoreAdapter, RestoreKVPress } from './restorekv.js';
import { THINK_DEFAULTS, ThinKPress } from './think.js';
import { duoAttentionFrom } from './duo-attention.js';
import { RAZOR_DEFAULTS, RazorAttentionPress } from './razor-attention.js';

export interface OptionSpec {
  default: number | string;
  description: string;
  /**
   * 'int': a whole number ≥ 0; 'number': any finite number; 'press': another press's name; 'string': any text (a
   * path…); 'bool': true or false (also 1 or 0), resolved to 1 or 0; 'numbers': a comma-separated list of finite
   * numbers (kept as that text, normalised); 'presses': a comma-separated list of press names.
   */
  kind: 'int' | 'number' | 'press' | 'string' | 'bool' | 'numbers' | 'presses';
  /** The option has no default: it must be given (`default` is then only shown). */
  required?: boolean;
}

export interface PressEntry {
  name: string;
  summary: string;
  source: string;
  options: Record<string, OptionSpec>;
  create(options: Record<string, number | string>): Press;
  /** Decoding-time compression the method itself prescribes (e.g. H2O evicts at every step). */
  decode?(options: Record<string, number | string>): CompressionPlan['decode'];
  /** Its presses set their own size (Press.sizesItself): they take no --ratio or --budget. */
  sizesItself?: boolean;
  /**
   * What its --ratio is the share of, where it is not the KV entries removed (DuoAttention: 'KV heads made
   * streaming'); budgets are then labelled with it instead of "% kept".
   */
  ratioOf?: string;
}

const num = (o: Record<string, number | string>, k: string) => Number(o[k]);

/** The options DecodingPress and its kin share (decoding.ts), with kvpress's defaults. */
function decodingOptions(): Record<string, OptionSpec> {
  return {
    'compression-interval': { default: DECODING_DEFAULTS.interval, description: 'decoding steps between compressions', kind: 'int' },
    'hidden-states-buffer-size': { default: DECODING_DEFAULTS.bufferSize, description: 'decoding steps buffered for the scorer besides the current one', kind: 'int' },
  };
}

function decodingFrom(o: Record<string, number | string>) {
  return { interval: num(o, 'compression-interval'), targetSize: num(o, 'target-size'), bufferSize: num(o, 'hidden-states-buffer-size') };
}

export const PRESSES: PressEntry[] = [
  {
    name: 'streaming-llm',
    summary: 'attention sinks + the most recent tokens',
    source: 'Xiao et al. 2023, arXiv 2309.17453; kvpress StreamingLLMPress',
    options: { sinks: { default: 4, description: 'initial tokens always kept', kind: 'int' } },
    create: (o) => new StreamingLLMPress({ sinks: num(o, 'sinks') }),
  },
  {
    name: 'snapkv',
    summary: "the last window's attention, pooled, picks entries per head",
    source: 'Li et al. 2024, arXiv 2404.14469; kvpress SnapKVPress',
    options: {
      window: { default: SNAPKV_DEFAULTS.window, description: 'observation window (last queries)', kind: 'int' },
      kernel: { default: SNAPKV_DEFAULTS.kernel, description: 'average-pooling width', kind: 'int' },
    },
    create: (o) => new SnapKVPress({ window: num(o, 'window'), kernel: num(o, 'kernel') }),
  },
  {
    name: 'pyramidkv',
    summary: 'SnapKV scores with budgets shrinking with depth',
    source: 'Cai et al. 2024, arXiv 2406.02069; kvpress PyramidKVPress, KVCache-Factory',
    options: {
      window: { default: PYRAMIDKV_DEFAULTS.window, description: 'observation window', kind: 'int' },
      kernel: { default: PYRAMIDKV_DEFAULTS.kernel, description: 'average-pooling width', kind: 'int' },
      beta: { default: PYRAMIDKV_DEFAULTS.beta, description: 'pyramid steepness (≥ 1)', kind: 'number' },
    },
    create: (o) => new PyramidKVPress({ window: num(o, 'window'), kernel: num(o, 'kernel'), beta: num(o, 'beta') }),
  },
  {
    name: 'observed-attention',
    summary: 'attention received during prefill, averaged over the queries that saw each entry',
    source: 'kvpress ObservedAttentionPress (related to H2O)',
    options: {},
    create: () => new ObservedAttentionPress(),
  },
  {
    name: 'h2o',
    summary: 'heavy hitters (accumulated attention) + recent tokens, evicting at every decoding step',
    source: 'Zhang et al. 2023, arXiv 2306.14048; FMInference/H2O real-drop cache',
    options: { recent: { default: 0.5, description: 'fraction of the budget kept for recent tokens', kind: 'number' } },
    create: (o) => new H2OPress({ recentFraction: num(o, 'recent') }),
    decode: () => ({ every: 1 }),
  },
  {
    name: 'tova',
    summary: "the latest token's attention, averaged over heads, picks entries per layer",
    source: 'Oren et al. 2024, arXiv 2401.06104; kvpress TOVAPress',
    options: {},
    create: () => new TOVAPress(),
  },
  {
    name: 'knorm',
    summary: 'keep the keys with the smallest L2 norm',
    source: 'Devoto et al. 2024, arXiv 2406.11430; kvpress KnormPress',
    options: {},
    create: () => new KnormPress(),
  },
  {
    name: 'random',
    summary: 'uniform random scores (baseline)',
    source: 'kvpress RandomPress',
    options: { seed: { default: 0, description: 'random seed', kind: 'int' } },
    create: (o) => new RandomPress({ seed: num(o, 'seed') }),
  },
  {
    name: 'adakv',
    summary: "a scorer's scores compared across heads: heads keep different numbers of entries, memory freed per head",
    source: 'Feng et al. 2024, arXiv 2407.11550; kvpress AdaKVPress',
    options: {
      scorer: { default: 'snapkv', description: 'the press whose scores are used', kind: 'press' },
      alpha: { default: 0.2, description: 'safeguard: fraction of the average budget each head keeps first', kind: 'number' },
    },
    create: (o) => new AdaKVPress(createPress(String(o.scorer), {}), { alpha: num(o, 'alpha') }),
  },
  {
    name: 'lazy-eviction',
    summary: 'recurrence-interval tracking while decoding, lagged eviction every observation window',
    source: 'Zhang et al. 2025, arXiv 2506.15969; Halo-949/LazyEviction',
    options: {
      window: { default: LAZY_EVICTION_DEFAULTS.window, description: 'observation window (steps between evictions, recent entries kept)', kind: 'int' },
      alpha: { default: LAZY_EVICTION_DEFAULTS.alpha, description: 'attention that counts as renewed', kind: 'number' },
    },
    create: (o) => new LazyEvictionPress({ window: num(o, 'window'), alpha: num(o, 'alpha') }),
    decode: (o) => ({ every: num(o, 'window') }),
  },
  {
    name: 'critic',
    summary: 'token importance from attention received, attention entropy and output sensitivity',
    source: 'PORAG/ATLAS paper, arXiv 2504.01281, appendix A.1 (no official code; choices in src/presses/critic.ts)',
    options: {
      'w-attention': { default: CRITIC_DEFAULTS.weights.attention, description: 'weight of attention received', kind: 'number' },
      'w-entropy': { default: CRITIC_DEFAULTS.weights.entropy, description: 'weight of attention entropy', kind: 'number' },
      'w-gradient': { default: CRITIC_DEFAULTS.weights.gradient, description: 'weight of output sensitivity', kind: 'number' },
      'min-tokens': { default: CRITIC_DEFAULTS.minTokens, description: 'never compress a layer below this', kind: 'int' },
    },
    create: (o) =>
      new CriticPress({
        weights: { attention: num(o, 'w-attention'), entropy: num(o, 'w-entropy'), gradient: num(o, 'w-gradient') },
        minTokens: num(o, 'min-tokens'),
      }),
    decode: () => ({ every: 1 }),
  },
  // kvpress breadth (issue 14), one block per group; keep entries inside your group's block.
  // -- scorers: expected attention, CAP, KeyDiff, LagKV, CUR
  {
    name: 'expected-attention',
    summary: "attention the future queries are expected to pay (the prompt's query mean and covariance, averaged future RoPE), × value norms",
    source: 'Devoto et al. 2025, arXiv 2510.00636; kvpress ExpectedAttentionPress',
    options: expectedAttentionOptions(),
    create: (o) => new ExpectedAttentionPress(expectedAttentionFrom(o)),
  },
  {
    name: 'expected-attention-stats',
    summary: 'expected attention from precomputed query statistics (a kvpress ExpectedAttentionStats file) instead of the prompt',
    source: 'Devoto et al. 2025, arXiv 2510.00636; kvpress ExpectedAttentionStatsPress',
    options: {
      stats: { default: '', description: 'kvpress ExpectedAttentionStats folder (model.safetensors: query_mean, query_cov) or .safetensors file', kind: 'string', required: true },
      ...expectedAttentionOptions(),
    },
    create: (o) => {
      if (!String(o.stats)) throw new AttendError('press expected-attention-stats needs --press-opt stats=PATH (a kvpress ExpectedAttentionStats folder or .safetensors file; tools/press_stats/ makes one)');
      return new ExpectedAttentionStatsPress(readQueryStatistics(String(o.stats)), expectedAttentionFrom(o));
    },
  },
  {
    name: 'cap',
    summary: "query-weighted leverage of each value in the capacity matrix (CapKV), the anchor the prompt's mean query at averaged future RoPE",
    source: 'CapKV, arXiv 2604.25975; kvpress CapPress',
    options: {
      tau: { default: CAP_DEFAULTS.tau, description: 'temperature of the query-key alignment weights', kind: 'number' },
      'n-future-positions': { default: CAP_DEFAULTS.nFuturePositions, description: 'future positions the RoPE rotation is averaged over', kind: 'int' },
      'n-sink': { default: CAP_DEFAULTS.nSink, description: 'initial entries always kept', kind: 'int' },
      epsilon: { default: CAP_DEFAULTS.epsilon, description: 'added to the weights in the capacity matrix', kind: 'number' },
    },
    create: (o) => new CapPress({ tau: num(o, 'tau'), nFuturePositions: num(o, 'n-future-positions'), nSink: num(o, 'n-sink'), epsilon: num(o, 'epsilon') }),
  },
  {
    name: 'keydiff',
    summary: "keep the keys least similar to the head's mean normalised key",
    source: 'Park et al. 2025, arXiv 2504.15364; kvpress KeyDiffPress',
    options: {},
    create: () => new KeyDiffPress(),
  },
  {
    name: 'lagkv',
    summary: 'partitions scored by min-max-normalised spread against the next partition (lag reference); sinks and the tail kept',
    source: 'Liang et al. 2025, arXiv 2504.04704; kvpress LagKVPress',
    options: {
      'n-sink': { default: LAGKV_DEFAULTS.nSink, description: 'initial entries always kept', kind: 'int' },
      'lag-size': { default: LAGKV_DEFAULTS.lagSize, description: 'entries per partition (≥ 1)', kind: 'int' },
      'cross-scoring': { default: String(LAGKV_DEFAULTS.crossScoring), description: 'compare scores across partitions instead of ranking within each', kind: 'bool' },
    },
    create: (o) => new LagKVPress({ nSink: num(o, 'n-sink'), lagSize: num(o, 'lag-size'), crossScoring: num(o, 'cross-scoring') === 1 }),
  },
  {
    name: 'cur',
    summary: 'approximate CUR leverage of keys and values (squared norms, normalised per local window), sinks kept',
    source: 'Sengupta et al. 2025 (CurDKV), arXiv 2509.15038; kvpress CURPress',
    options: {
      'num-sinks': { default: CUR_DEFAULTS.numSinks, description: 'initial entries always kept', kind: 'int' },
      'leverage-type': { default: CUR_DEFAULTS.leverageType, description: 'key, value, kv_avg or kv_product', kind: 'string' },
      'use-random-leverage': { default: String(CUR_DEFAULTS.useRandomLeverage), description: 'project keys and values on a Gaussian [d × 20] first (random)', kind: 'bool' },
      'use-local-approximation': { default: String(CUR_DEFAULTS.useLocalApproximation), description: 'normalise the leverages within local windows', kind: 'bool' },
      'local-window-size': { default: CUR_DEFAULTS.localWindowSize, description: 'entries per local window (≥ 1)', kind: 'int' },
      seed: { default: CUR_DEFAULTS.seed, description: "seed of Attend's Gaussian projection (use-random-leverage)", kind: 'int' },
      projection: { default: '', description: 'file of recorded N(0,1) projection draws (f32 LE, see cur.ts) instead of the seed', kind: 'string' },
    },
    create: (o) =>
      new CURPress({
        numSinks: num(o, 'num-sinks'),
        leverageType: String(o['leverage-type']) as LeverageType,
        useRandomLeverage: num(o, 'use-random-leverage') === 1,
        useLocalApproximation: num(o, 'use-local-approximation') === 1,
        localWindowSize: num(o, 'local-window-size'),
        seed: num(o, 'seed'),
        projection: String(o.projection),
      }),
  },
  // -- end scorers
  // -- sketches: non-causal attention, leverage score, Compactor
  {
    name: 'non-causal-attention',
    summary: "non-causal attention within chunks of the prompt, summed over each chunk's queries, × value norms",
    source: 'Chari & Van Durme 2025 (Compactor), arXiv 2507.08143; kvpress NonCausalAttnPress',
    options: {
      'chunk-size': { default: NON_CAUSAL_ATTENTION_DEFAULTS.chunkSize, description: 'tokens per chunk of non-causal attention', kind: 'int' },
    },
    create: (o) => new NonCausalAttentionPress({ chunkSize: num(o, 'chunk-size') }),
  },
  {
    name: 'leverage-score',
    summary: 'approximate leverage scores of the centred pre-RoPE keys under a Gaussian sketch (outliers kept)',
    source: 'Chari & Van Durme 2025 (Compactor), arXiv 2507.08143; kvpress LeverageScorePress',
    options: {
      'sketch-dimension': { default: LEVERAGE_SCORE_DEFAULTS.sketchDimension, description: 'columns of the Gaussian sketch', kind: 'int' },
      seed: { default: LEVERAGE_SCORE_DEFAULTS.seed, description: "seed of Attend's Gaussian sketch", kind: 'int' },
      sketch: { default: LEVERAGE_SCORE_DEFAULTS.sketch, description: 'file of recorded N(0,1) sketch draws (f32 LE, see leverage-score.ts) instead of the seed', kind: 'string' },
    },
    create: (o) =>
      new LeverageScorePress({ sketchDimension: num(o, 'sketch-dimension'), seed: num(o, 'seed'), sketch: String(o.sketch) }),
  },
  {
    name: 'compactor',
    summary: 'leverage scores blended with non-causal chunked attention, sinks at both ends',
    source: 'Chari & Van Durme 2025, arXiv 2507.08143; kvpress CompactorPress',
    options: {
      'sink-size-start': { default: COMPACTOR_DEFAULTS.sinkSizeStart, description: 'initial entries always kept', kind: 'int' },
      'sink-size-end': { default: COMPACTOR_DEFAULTS.sinkSizeEnd, description: 'most recent entries always kept', kind: 'int' },
      'chunk-size': { default: COMPACTOR_DEFAULTS.chunkSize, description: 'tokens per chunk of non-causal attention', kind: 'int' },
      'sketch-dimension': { default: COMPACTOR_DEFAULTS.sketchDimension, description: 'columns of the Gaussian sketch', kind: 'int' },
      blending: { default: COMPACTOR_DEFAULTS.blending, description: 'weight of the leverage scores: a number, or "ratio" (the compression ratio)', kind: 'string' },
      seed: { default: COMPACTOR_DEFAULTS.seed, description: "seed of Attend's Gaussian sketch", kind: 'int' },
      sketch: { default: COMPACTOR_DEFAULTS.sketch, description: 'file of recorded N(0,1) sketch draws (f32 LE, see leverage-score.ts) instead of the seed', kind: 'string' },
    },
    create: (o) =>
      new CompactorPress({
        sinkSizeStart: num(o, 'sink-size-start'),
        sinkSizeEnd: num(o, 'sink-size-end'),
        chunkSize: num(o, 'chunk-size'),
        sketchDimension: num(o, 'sketch-dimension'),
        blending: parseBlending(o.blending),
        seed: num(o, 'seed'),
        sketch: String(o.sketch),
      }),
  },
  // -- end sketches
  // -- wrappers: chunk, chunkkv, block, criticalkv, critical-adakv, per-layer-compression, composed
  {
    name: 'chunk',
    summary: 'each chunk of the sequence compressed on its own by a scorer, so compression is spread evenly',
    source: 'FINCH, Corallo & Papotti 2024, TACL, doi 10.1162/tacl_a_00716 (chunked processing); kvpress ChunkPress',
    options: {
      scorer: { default: 'snapkv', description: 'the press that scores the entries of each chunk', kind: 'press' },
      'chunk-length': { default: CHUNK_DEFAULTS.chunkLength, description: 'positions per chunk', kind: 'int' },
    },
    create: (o) => new ChunkPress(createPress(String(o.scorer), {}), { chunkLength: num(o, 'chunk-length') }),
  },
  {
    name: 'chunkkv',
    summary: "whole chunks of entries kept, ranked by a scorer's scores summed over heads and averaged per chunk",
    source: 'Liu et al. 2025, arXiv 2502.00299; kvpress ChunkKVPress',
    options: {
      scorer: { default: 'snapkv', description: 'the press whose scores rank the chunks', kind: 'press' },
      'chunk-length': { default: CHUNKKV_DEFAULTS.chunkLength, description: 'entries per chunk', kind: 'int' },
    },
    create: (o) => new ChunkKVPress(createPress(String(o.scorer), {}), { chunkLength: num(o, 'chunk-length') }),
  },
  {
    name: 'block',
    summary: 'block-wise eviction: the kept entries and the next block scored together, the budget kept, block after block',
    source: 'Park et al. 2025 (KeyDiff), arXiv 2504.15364; kvpress BlockPress',
    options: {
      scorer: { default: 'keydiff', description: 'the press that scores each step', kind: 'press' },
      'block-size': { default: BLOCK_DEFAULTS.blockSize, description: 'entries added per step', kind: 'int' },
    },
    create: (o) => new BlockPress(createPress(String(o.scorer), {}), { blockSize: num(o, 'block-size') }),
  },
  {
    name: 'criticalkv',
    summary: "a scorer's best entries kept first, the rest by score × ‖W_o·v‖₁ (how much each value moves the output)",
    source: 'Feng et al. 2025, arXiv 2502.03805; kvpress CriticalKVPress',
    options: {
      scorer: { default: 'snapkv', description: 'the press whose scores are rescaled', kind: 'press' },
      epsilon: { default: CRITICALKV_DEFAULTS.epsilon, description: 'added to the scores before rescaling', kind: 'number' },
      'first-stage-ratio': { default: CRITICALKV_DEFAULTS.firstStageRatio, description: 'share of the budget kept by the scorer alone', kind: 'number' },
    },
    create: (o) =>
      new CriticalKVPress(createPress(String(o.scorer), {}), { epsilon: num(o, 'epsilon'), firstStageRatio: num(o, 'first-stage-ratio') }),
  },
  {
    name: 'critical-adakv',
    summary: "CriticalKV's two stages on AdaKV's head-adaptive budgets: heads keep different numbers of entries",
    source: 'Feng et al. 2025, arXiv 2502.03805; kvpress CriticalAdaKVPress',
    options: {
      scorer: { default: 'snapkv', description: 'the press whose scores are used', kind: 'press' },
      alpha: { default: CRITICAL_ADAKV_DEFAULTS.alpha, description: 'safeguard: fraction of the average budget each head keeps first', kind: 'number' },
      epsilon: { default: CRITICAL_ADAKV_DEFAULTS.epsilon, description: 'added to the scores before rescaling', kind: 'number' },
      'first-stage-ratio': { default: CRITICAL_ADAKV_DEFAULTS.firstStageRatio, description: "share of each head's budget kept by the scorer alone", kind: 'number' },
    },
    create: (o) =>
      new CriticalAdaKVPress(createPress(String(o.scorer), {}), {
        alpha: num(o, 'alpha'),
        epsilon: num(o, 'epsilon'),
        firstStageRatio: num(o, 'first-stage-ratio'),
      }),
  },
  {
    name: 'per-layer-compression',
    summary: 'each layer compressed with its own ratio (the list shapes the budget over the layers)',
    source: 'kvpress PerLayerCompressionPress',
    options: {
      scorer: { default: 'snapkv', description: 'the press whose scores are used', kind: 'press' },
      ratios: { default: '', description: 'one compression ratio per layer, comma-separated', kind: 'numbers', required: true },
    },
    create: (o) => new PerLayerCompressionPress(createPress(String(o.scorer), {}), numberList(o.ratios)),
  },
  {
    name: 'composed',
    summary: 'presses applied one after the other, each removing its ratio of what the one before kept',
    source: 'kvpress ComposedPress',
    options: {
      presses: { default: 'snapkv,knorm', description: 'the presses, comma-separated, in the order they run (each on its defaults)', kind: 'presses' },
      ratios: { default: '0.3,0.2', description: 'the ratio each press removes, comma-separated (they split the budget)', kind: 'numbers' },
    },
    create: (o) => new ComposedPress(String(o.presses).split(',').map((n) => createPress(n, {})), numberList(o.ratios)),
  },
  // -- end wrappers
  // -- decoding: decoding, prefill-decoding, compression-ratio-decoding, dms, simlayerkv
  {
    name: 'decoding',
    summary: "compresses while decoding only: every compression-interval steps back to target-size entries per head, by a scorer reading the queries buffered since",
    source: 'kvpress DecodingPress (kvpress generation presses)',
    options: {
      scorer: { default: 'knorm', description: 'the press whose scores are used', kind: 'press' },
      ...decodingOptions(),
      'target-size': { default: DECODING_DEFAULTS.targetSize, description: 'entries per head a compression leaves', kind: 'int' },
    },
    create: (o) => new DecodingPress(createPress(String(o.scorer), {}), decodingFrom(o)),
    decode: (o) => ({ every: num(o, 'compression-interval') }),
    sizesItself: true,
  },
  {
    name: 'prefill-decoding',
    summary: 'one press for the prefill (under the budget), a decoding press (target-size every compression-interval steps) while decoding',
    source: 'kvpress PrefillDecodingPress with DecodingPress',
    options: {
      prefill: { default: 'knorm', description: 'the press that compresses the prompt (on its defaults)', kind: 'press' },
      decoding: { default: 'knorm', description: "the decoding press's scorer (on its defaults)", kind: 'press' },
      ...decodingOptions(),
      'target-size': { default: DECODING_DEFAULTS.targetSize, description: 'entries per head a decoding compression leaves', kind: 'int' },
    },
    create: (o) => new PrefillDecodingPress(createPress(String(o.prefill), {}), new DecodingPress(createPress(String(o.decoding), {}), decodingFrom(o))),
    decode: (o) => ({ every: num(o, 'compression-interval') }),
  },
  {
    name: 'compression-ratio-decoding',
    summary: 'compresses while decoding only: every compression-interval steps back to a share of the tokens seen, by a scorer',
    source: 'kvpress CompressionRatioDecodingPress',
    options: {
      scorer: { default: 'knorm', description: 'the press whose scores are used', kind: 'press' },
      'target-compression-ratio': {
        default: COMPRESSION_RATIO_DECODING_DEFAULTS.targetRatio,
        description: 'fraction of the tokens seen that decoding removes, in [0, 1)',
        kind: 'number',
      },
      ...decodingOptions(),
    },
    create: (o) =>
      new CompressionRatioDecodingPress(createPress(String(o.scorer), {}), {
        targetRatio: num(o, 'target-compression-ratio'),
        interval: num(o, 'compression-interval'),
        bufferSize: num(o, 'hidden-states-buffer-size'),
      }),
    decode: (o) => ({ every: num(o, 'compression-interval') }),
    sizesItself: true,
  },
  {
    name: 'dms',
    summary: "evicts, for good, tokens that leave a sliding window with a scorer's score below a threshold: heads keep what the content gives",
    source: 'Łańcucki et al. 2025 (DMS), arXiv 2506.05345; kvpress DMSPress',
    options: {
      scorer: { default: 'knorm', description: 'the press whose scores are compared with the threshold', kind: 'press' },
      threshold: { default: '', description: 'tokens scored below it are evicted', kind: 'number', required: true },
      'sliding-window-size': { default: DMS_DEFAULTS.window, description: 'most recent tokens never evicted', kind: 'int' },
      decoding: { default: String(DMS_DEFAULTS.decoding), description: 'also evict while decoding, at every step', kind: 'bool' },
    },
    create: (o) =>
      new DMSPress(createPress(String(o.scorer), {}), { threshold: num(o, 'threshold'), window: num(o, 'sliding-window-size'), decoding: num(o, 'decoding') === 1 }),
    decode: (o) => (num(o, 'decoding') === 1 ? { every: 1 } : undefined),
    sizesItself: true,
  },
  {
    name: 'simlayerkv',
    summary: 'lazy layers (attention on the initial and recent tokens above a threshold) keep only those; the other layers keep all',
    source: 'Zhang et al. 2024 (SimLayerKV), arXiv 2410.13846; kvpress SimLayerKVPress',
    options: {
      'lazy-threshold': { default: SIMLAYERKV_DEFAULTS.lazyThreshold, description: 'a layer is lazy above it, in [0, 1] (1: never)', kind: 'number' },
      'n-last': { default: SIMLAYERKV_DEFAULTS.nLast, description: 'last queries whose attention decides', kind: 'int' },
      'n-recent': { default: SIMLAYERKV_DEFAULTS.nRecent, description: 'recent tokens a lazy layer keeps (it keeps n-recent − n-last)', kind: 'int' },
      'n-initial': { default: SIMLAYERKV_DEFAULTS.nInitial, description: 'initial tokens a lazy layer keeps', kind: 'int' },
    },
    create: (o) =>
      new SimLayerKVPress({
        lazyThreshold: num(o, 'lazy-threshold'),
        nLast: num(o, 'n-last'),
        nRecent: num(o, 'n-recent'),
        nInitial: num(o, 'n-initial'),
      }),
    sizesItself: true,
  },
  {
    name: 'cam',
    summary: 'compresses while decoding only: a scorer picks the evicted entries, whose values merge into the kept entries after them with a probability from their accumulated attention',
    source: 'Zhang et al. 2024 (CaM, ICML), openreview.net/forum?id=LCTmppB165; kvpress CAMPress',
    options: {
      scorer: { default: 'knorm', description: 'the press whose scores (averaged over the KV heads) pick the kept entries', kind: 'press' },
      ...decodingOptions(),
      'target-size': { default: CAM_DEFAULTS.targetSize, description: 'entries per head a compression leaves', kind: 'int' },
      'merge-budget': { default: CAM_DEFAULTS.mergeBudget, description: 'kept entries after an evicted one that its value is spread over (≥ 1)', kind: 'int' },
      seed: { default: CAM_DEFAULTS.seed, description: 'seed of the merge draws', kind: 'int' },
      draws: { default: '', description: 'file of recorded uniform merge draws (f32 LE, see cam.ts) instead of the seed', kind: 'string' },
    },
    create: (o) =>
      new CamPress(createPress(String(o.scorer), {}), {
        ...decodingFrom(o),
        mergeBudget: num(o, 'merge-budget'),
        seed: num(o, 'seed'),
        draws: String(o.draws),
      }),
    decode: () => ({ every: 1 }),
    sizesItself: true,
  },
  // -- end decoding
  // -- structure: key-rerotation, finch, merging
  {
    name: 'key-rerotation',
    summary: "a scorer's pruning, then the kept keys re-rotated to positions 0…n−1: the sequence continues at n",
    source: 'kvpress KeyRerotationPress (the rerotation of StreamingLLM, arXiv 2309.17453, and FINCH, arXiv 2408.00167)',
    options: { scorer: { default: 'snapkv', description: 'the press whose scores pick the kept entries', kind: 'press' } },
    create: (o) => new KeyRerotationPress(createPress(String(o.scorer), {})),
  },
  {
    name: 'finch',
    summary: "the question's attention (the last `window` prompt tokens), position-normalised, picks entries; keys re-rotated",
    source: 'Corallo & Papotti 2024 (TACL), arXiv 2408.00167; kvpress FinchPress',
    options: {
      window: { default: FINCH_DEFAULTS.window, description: "the question's tokens at the end of the prompt (kvpress: after its delimiter)", kind: 'int' },
      chunk: { default: FINCH_DEFAULTS.chunk, description: 'entries per selection chunk (0: the whole head)', kind: 'int' },
      normalize: { default: FINCH_DEFAULTS.normalize, description: "1: weigh each question token's attention by its index", kind: 'int' },
      rerotate: { default: FINCH_DEFAULTS.rerotate, description: '1: re-rotate the kept keys to positions 0…n−1', kind: 'int' },
    },
    create: (o) => new FinchPress({ window: num(o, 'window'), chunk: num(o, 'chunk'), normalize: num(o, 'normalize'), rerotate: num(o, 'rerotate') }),
  },
  {
    name: 'merging',
    summary: "a scorer's pruning, each evicted value folded into the kept entry with the most similar key",
    source: 'kvpress MergingPress (after Token Merging, arXiv 2210.09461, and D2O, arXiv 2406.13035)',
    options: {
      scorer: { default: 'snapkv', description: 'the press whose scores pick the kept entries', kind: 'press' },
      threshold: { default: MERGING_DEFAULTS.threshold, description: 'least key cosine similarity for a merge, in [0, 1]', kind: 'number' },
      fraction: { default: MERGING_DEFAULTS.fraction, description: 'share of evicted entries (most similar first) merged, in (0, 1]', kind: 'number' },
    },
    create: (o) => new MergingPress(createPress(String(o.scorer), {}), { threshold: num(o, 'threshold'), fraction: num(o, 'fraction') }),
  },
  // -- end structure
  // -- reconstruction: kvzip, kvcompose
  {
    name: 'kvzip',
    summary: 'the model repeats its context over the cache; each entry scores the most attention the repeat gives it, selected across all layers',
    source: 'Kim et al. 2025, arXiv 2505.23416; kvpress KVzipPress',
    options: {
      sinks: { default: KVZIP_DEFAULTS.sinks, description: 'initial entries scored 1 (n_sink)', kind: 'int' },
      layerwise: { default: String(KVZIP_DEFAULTS.layerwise), description: 'the same ratio in every layer instead of one selection across layers', kind: 'bool' },
      'kvzip-plus': { default: String(KVZIP_DEFAULTS.plus), description: 'KVzip+ normalization: attention / ‖hidden state‖ × ‖W_o v‖', kind: 'bool' },
      chunk: { default: KVZIP_DEFAULTS.chunk, description: 'context tokens per repeat (≥ 1)', kind: 'int' },
      postfix: { default: KVZIP_DEFAULTS.postfix, description: "previous chunk's last tokens quoted in a later repeat's prompt", kind: 'int' },
    },
    create: (o) =>
      new KVzipPress({ sinks: num(o, 'sinks'), layerwise: num(o, 'layerwise') === 1, plus: num(o, 'kvzip-plus') === 1, chunk: num(o, 'chunk'), postfix: num(o, 'postfix') }),
  },
  {
    name: 'kvcompose',
    summary: "the context runs again over the cache; its attention, aggregated into composite tokens, sets each layer's count (structured)",
    source: 'Akulov et al. 2025, arXiv 2509.05165; kvpress KVComposePress',
    options: {
      structured: { default: String(KVCOMPOSE_DEFAULTS.structured), description: 'every head of a layer keeps the same number (false: each head its own)', kind: 'bool' },
      'agg-task': { default: KVCOMPOSE_DEFAULTS.aggTask, description: 'over the queries: max or mean', kind: 'string' },
      'agg-group': { default: KVCOMPOSE_DEFAULTS.aggGroup, description: "over a KV head's query heads: max or mean", kind: 'string' },
      'agg-head': { default: KVCOMPOSE_DEFAULTS.aggHead, description: "over a layer's heads, rank by rank (composite tokens): max or mean", kind: 'string' },
      'v-norm': { default: String(KVCOMPOSE_DEFAULTS.vNorm), description: "scores × each entry's value norm", kind: 'bool' },
      'mean-across-heads': { default: String(KVCOMPOSE_DEFAULTS.meanAcrossHeads), description: "adds the token's mean score over the layer's heads", kind: 'bool' },
      'lower-bound': { default: KVCOMPOSE_DEFAULTS.lowerBound, description: 'entries every layer keeps at least', kind: 'int' },
    },
    create: (o) =>
      new KVComposePress({
        structured: num(o, 'structured') === 1,
        aggTask: String(o['agg-task']) as Aggregation,
        aggGroup: String(o['agg-group']) as Aggregation,
        aggHead: String(o['agg-head']) as Aggregation,
        vNorm: num(o, 'v-norm') === 1,
        meanAcrossHeads: num(o, 'mean-across-heads') === 1,
        lowerBound: num(o, 'lower-bound'),
      }),
  },
  // -- end reconstruction
  // -- think: ThinK (key channels, not entries)
  {
    name: 'think',
    summary: 'prunes the key channels with the lowest mean q² × mean k² per head and frees them; every entry is kept (--ratio: the fraction of key channels removed)',
    source: 'Xu et al. 2024 (ThinK), arXiv 2407.21018; kvpress ThinKPress',
    options: { window: { default: THINK_DEFAULTS.window, description: 'last queries that weigh the key channels (window_size)', kind: 'int' } },
    create: (o) => new ThinKPress({ window: num(o, 'window') }),
  },
  // -- end think
  // -- trained: qfilter, kvzap, fastkvzip, lukv, restorekv (their trained parts read from the authors' file formats)
  {
    name: 'qfilter',
    summary: "each KV head's learned Q-filter f scores an entry −⟨f, k⟩ (keys as cached)",
    source: 'Godey et al. 2025 (Q-Filters), arXiv 2503.02812; kvpress QFilterPress',
    options: {
      path: { default: '', description: 'Q-filters folder (model.safetensors with q_filters [layers, kv_heads, head_dim]) or file', kind: 'string', required: true },
    },
    create: (o) => new QFilterPress(readQFilters(String(o.path))),
  },
  {
    name: 'kvzap',
    summary: "a trained linear or MLP model per layer scores each token's KV pairs from its hidden state (regressing KVzip+)",
    source: 'Jégou & Jeblick 2026 (KVzap), arXiv 2601.07891; kvpress KVzapPress',
    options: {
      path: { default: '', description: 'KVzap model folder (config.json + model.safetensors, as nvidia/KVzap-*) or its .safetensors file', kind: 'string', required: true },
    },
    create: (o) => new KVzapPress(readKVzapModel(String(o.path))),
  },
  {
    name: 'fastkvzip',
    summary: "trained gates score each token's KV pairs from its hidden state; sinks and a window kept; selected across all layers",
    source: 'Kim, Han & Yun 2026 (Fast KVzip), arXiv 2601.17668; kvpress FastKVzipPress',
    options: {
      path: { default: '', description: 'Fast KVzip gate file (torch.save, as Jang-Hyun/Fast-KVzip <model>/q<group>_dim16_sink16.pt)', kind: 'string', required: true },
      layerwise: { default: String(FASTKVZIP_DEFAULTS.layerwise), description: 'the same ratio in every layer instead of one selection across layers', kind: 'bool' },
      'n-sink': { default: FASTKVZIP_DEFAULTS.nSink, description: 'initial entries scored 1', kind: 'int' },
      'window-size': { default: FASTKVZIP_DEFAULTS.windowSize, description: 'recent entries scored 1 from 32000 tokens on', kind: 'int' },
      'window-ratio': { default: FASTKVZIP_DEFAULTS.windowRatio, description: 'share of the tokens scored 1 at the end below 32000 tokens', kind: 'number' },
    },
    create: (o) =>
      new FastKVzipPress(readFastKVzipGates(String(o.path)), {
        layerwise: num(o, 'layerwise') === 1,
        nSink: num(o, 'n-sink'),
        windowSize: num(o, 'window-size'),
        windowRatio: num(o, 'window-ratio'),
      }),
  },
  {
    name: 'lukv',
    summary: "a scorer's ranking within each head, with per-layer, per-head budgets from a pre-computed LU-KV curve",
    source: 'Tang et al. 2026 (LU-KV), arXiv 2602.08585; kvpress LUKVPress',
    options: {
      path: { default: '', description: 'LU-KV budget curve (.npy of shape [99, layers, kv_heads]) made for this model and scorer', kind: 'string', required: true },
      scorer: { default: 'expected-attention', description: 'the press whose scores rank the entries (expected-attention with epsilon 0.02, as kvpress)', kind: 'press' },
      sink: { default: LUKV_DEFAULTS.sink, description: 'initial entries always kept', kind: 'int' },
      window: { default: LUKV_DEFAULTS.window, description: 'most recent entries always kept', kind: 'int' },
    },
    create: (o) =>
      new LUKVPress(
        createPress(String(o.scorer), String(o.scorer) === 'expected-attention' ? { epsilon: LUKV_DEFAULT_EPSILON } : {}),
        readBudgetCurve(String(o.path)),
        { sink: num(o, 'sink'), window: num(o, 'window') },
      ),
  },
  {
    name: 'restorekv',
    summary: 'KVzip, then n learned restore tokens run over the full cache with a LoRA adapter: their entries join the cache, budget-matched',
    source: 'Baek, Shin & Kong 2026 (RestoreKV), arXiv 2608.01247; kvpress RestoreKVPress',
    options: {
      path: { default: '', description: 'RestoreKV folder: restore_embeddings.safetensors + PEFT LoRA adapter (adapter_config.json, adapter_model.safetensors)', kind: 'string', required: true },
      base: { default: '', description: "the base model's folder, where the LoRA is merged (default: the adapter's base_model_name_or_path)", kind: 'string' },
      sinks: { default: RESTOREKV_DEFAULTS.sinks, description: 'initial entries scored 1 (n_sink)', kind: 'int' },
      layerwise: { default: String(RESTOREKV_DEFAULTS.layerwise), description: 'the same ratio in every layer instead of one selection across layers', kind: 'bool' },
      'kvzip-plus': { default: String(RESTOREKV_DEFAULTS.plus), description: 'KVzip+ normalization (use the _plus adapter)', kind: 'bool' },
      chunk: { default: RESTOREKV_DEFAULTS.chunk, description: 'context tokens per repeat (≥ 1)', kind: 'int' },
      postfix: { default: RESTOREKV_DEFAULTS.postfix, description: "previous chunk's last tokens quoted in a later repeat's prompt", kind: 'int' },
    },
    create: (o) =>
      new RestoreKVPress(readRestoreAdapter(String(o.path)), {
        base: String(o.base),
        sinks: num(o, 'sinks'),
        layerwise: num(o, 'layerwise') === 1,
        plus: num(o, 'kvzip-plus') === 1,
        chunk: num(o, 'chunk'),
        postfix: num(o, 'postfix'),
      }),
  },
  // -- end trained
  // -- draft: speckv (a draft model's lookahead)
  {
    name: 'speckv',
    summary: "a draft model drafts the continuation; the target's attention from those tokens and the prompt's last window, max-pooled, picks entries per head",
    source: 'Galim et al. 2025 (Draft-based Approximate Inference for LLMs), arXiv 2506.08373; furiosa-ai/draft-based-approx-llm SpecKV',
    options: {
      draft: { default: '', description: "the draft model's directory (the target's tokenizer; models/attend-mini-draft for attend-mini)", kind: 'string', required: true },
      lookahead: { default: SPECKV_DEFAULTS.lookahead, description: 'tokens the draft drafts (the paper: the generation length, --max-tokens)', kind: 'int' },
      window: { default: SPECKV_DEFAULTS.window, description: 'last prompt tokens (+ 1) whose queries also score and whose entries are kept', kind: 'int' },
      kernel: { default: SPECKV_DEFAULTS.kernel, description: 'pooling width along the entries (odd)', kind: 'int' },
      pool: { default: SPECKV_DEFAULTS.pool, description: 'pooling: max or mean', kind: 'string' },
      reduction: { default: SPECKV_DEFAULTS.reduction, description: "over a group's query heads and the scoring rows: max or mean", kind: 'string' },
    },
    create: (o) =>
      new SpecKVPress(String(o.draft), {
        lookahead: num(o, 'lookahead'),
        window: num(o, 'window'),
        kernel: num(o, 'kernel'),
        pool: String(o.pool) as 'max' | 'mean',
        reduction: String(o.reduction) as Reduction,
      }),
  },
  // -- end draft
  // -- heads (issue 12): duo-attention
  {
    name: 'duo-attention',
    summary: 'retrieval heads (highest trained gates) keep every entry; the --ratio share of KV heads, streaming, keep their sinks and a recent window',
    source: 'Xiao et al. 2024 (DuoAttention), arXiv 2410.10819; mit-han-lab/duo-attention; kvpress DuoAttentionPress',
    options: {
      pattern: { default: '', description: 'pattern directory in the official format: config.json (sink_size, recent_size) + full_attention_heads.tsv (layers × KV heads gates)', kind: 'string', required: true },
      'sink-size': { default: '', description: "initial entries a streaming head keeps (default: the pattern's sink_size)", kind: 'string' },
      'recent-size': { default: '', description: "most recent entries a streaming head keeps (default: the pattern's recent_size)", kind: 'string' },
    },
    create: (o) => duoAttentionFrom(o),
    ratioOf: 'KV heads made streaming',
    // The official streaming cache rolls at every decoding step: back to sink + recent.
    decode: () => ({ every: 1 }),
  },
  // -- heads (issue 12): razor-attention
  {
    name: 'razor-attention',
    summary: 'retrieval heads (echo and induction heads) keep every entry; every other head keeps its sinks and recent entries and folds the rest into one compensation token (mean key and value, weighted by their count)',
    source: 'Tang et al. 2024 (RazorAttention), arXiv 2407.15891; no official code (profile as Huawei msModelSlim / MindSpore Golden Stick)',
    options: {
      sinks: { default: RAZOR_DEFAULTS.sinks, description: 'initial entries a non-retrieval head keeps (N0)', kind: 'int' },
      'min-window': { default: RAZOR_DEFAULTS.minWindow, description: "least entries a non-retrieval head keeps (the paper's S0)", kind: 'int' },
      budget: { default: RAZOR_DEFAULTS.budget, description: 'cache: the whole cache holds the budget (retrieval heads paid by the others); heads: each non-retrieval head does', kind: 'string' },
      compensate: { default: String(RAZOR_DEFAULTS.compensate), description: 'fold the dropped entries into a compensation token (false: drop them)', kind: 'bool' },
      heads: { default: RAZOR_DEFAULTS.heads, description: "retrieval heads: attend heads --probe echo JSON or Golden Stick's {layer: [KV heads]} (default: probe the model)", kind: 'string' },
      'echo-share': { default: RAZOR_DEFAULTS.echoShare, description: 'share of KV heads kept as echo heads by the probe', kind: 'number' },
      'induction-share': { default: RAZOR_DEFAULTS.inductionShare, description: 'share of KV heads kept as induction heads by the probe', kind: 'number' },
      'probe-length': { default: RAZOR_DEFAULTS.probeLength, description: 'random ids per copy of the probe (0: 2500 where they fit, else 64)', kind: 'int' },
      'probe-low': { default: RAZOR_DEFAULTS.probeLow, description: 'lowest id of the probe (0: 10000 where it fits, else 1000)', kind: 'int' },
    },
    create: (o) =>
      new RazorAttentionPress({
        sinks: num(o, 'sinks'),
        minWindow: num(o, 'min-window'),
        budget: String(o.budget) as 'cache' | 'heads',
        compensate: num(o, 'compensate') === 1,
        heads: String(o.heads),
        echoShare: num(o, 'echo-share'),
        inductionShare: num(o, 'induction-share'),
        probeLength: num(o, 'probe-length'),
        probeLow: num(o, 'probe-low'),
      }),
  },
  // -- end heads
];

export function pressEntry(name: string): PressEntry {
  const entry = PRESSES.find((p) => p.name === name);
  if (!entry) throw new AttendError(`unknown press "${name}" (known: ${PRESSES.map((p) => p.name).join(', ')})`);
  return entry;
}

/** Fills defaults and checks every given option against the entry's spec. */
export function resolveOptions(entry: PressEntry, given: Record<string, string | number>): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const key of Object.keys(given)) {
    if (!(key in entry.options)) {
      const known = Object.keys(entry.options);
      throw new AttendError(
        `press ${entry.name} has no option "${key}" (${known.length ? `options: ${known.join(', ')}` : 'it takes no options'})`,
      );
    }
  }
  for (const [key, spec] of Object.entries(entry.options)) {
    if (spec.required && given[key] === undefined) throw new AttendError(`press ${entry.name} needs --press-opt ${key}=… (${spec.description})`);
    const raw = given[key] ?? spec.default;
    if (spec.kind === 'press') {
      pressEntry(String(raw));
      out[key] = String(raw);
      continue;
    }
    if (spec.kind === 'string') {
      out[key] = String(raw);
      continue;
    }
    if (spec.kind === 'presses') {
      const names = String(raw).split(',').map((n) => n.trim());
      names.forEach((n) => pressEntry(n));
      out[key] = names.join(',');
      continue;
    }
    if (spec.kind === 'numbers') {
      const text = String(raw).trim();
      const values = numberList(text);
      if ((text !== '' && text.split(',').some((x) => x.trim() === '')) || !values.every(Number.isFinite)) {
        throw new AttendError(`press ${entry.name}: option ${key} must be comma-separated numbers, got "${raw}"`);
      }
      out[key] = values.join(',');
      continue;
    }
    if (spec.kind === 'bool') {
      const text = String(raw).trim().toLowerCase();
      if (!['true', 'false', '1', '0'].includes(text)) throw new AttendError(`press ${entry.name}: option ${key} must be true or false, got "${raw}"`);
      out[key] = text === 'true' || text === '1' ? 1 : 0;
      continue;
    }
    const value = Number(raw);
    const ok = spec.kind === 'int' ? Number.isInteger(value) && value >= 0 : Number.isFinite(value);
    if (String(raw).trim() === '' || !ok) {
      throw new AttendError(`press ${entry.name}: option ${key} must be ${spec.kind === 'int' ? 'a whole number ≥ 0' : 'a number'}, got "${raw}"`);
    }
    out[key] = value;
  }
  return out;
}

export function createPress(name: string, given: Record<string, string | number>): Press {
  const entry = pressEntry(name);
  return entry.create(resolveOptions(entry, given));
}

/** Parses "key=value" strings as --press-opt gives them. */
export function parsePressOptions(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new AttendError(`--press-opt: expected KEY=VALUE, got "${pair}"`);
    out[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return out;
}
