/** Options that let every registered press act on the small parity checkpoints of the press tests (40 tokens, chunks of 8, 6 decoding steps). */
import { join } from 'node:path';

/** Every press runs on its defaults except where they cannot work on 40 tokens in chunks of 8 in 6 steps. */
/** The hand-made trained parts of the trained presses (tools/press_training/make_test_artefacts.ts). */
const TRAINED = join(import.meta.dirname, '..', 'fixtures', 'press-trained');

export const CONTRACT_OPTIONS: Record<string, Record<string, string | number>> = {
  // The default window of 64 must be shorter than the tokens seen at the first compression (8).
  snapkv: { window: 4 },
  pyramidkv: { window: 4 },
  // The default scorer is SnapKV on its defaults (window 64), which AdaKV's options cannot change; key norms
  // differ between heads, so the heads really keep different numbers (TOVA's scores are the same for every head).
  adakv: { scorer: 'knorm' },
  // It evicts every `window` decoding steps: the default 175 would not evict once in 6 steps.
  'lazy-eviction': { window: 3 },
  // scorers: the statistics must match the model; the default lag of 128 would never partition 40 tokens.
  'expected-attention-stats': { stats: join(import.meta.dirname, '..', 'fixtures', 'press-stats', 'llama-gqa-tied.safetensors') },
  lagkv: { 'lag-size': 3 },
  // Their default scorer is SnapKV on its defaults (window 64); FINCH's question window is 64 by default too.
  'key-rerotation': { scorer: 'knorm' },
  merging: { scorer: 'knorm' },
  finch: { window: 4 },
  // decoding: back to 10 entries every 2 steps (defaults 2048 every 512); DMS evicts (knorm scores −‖k‖ < 0) what
  // leaves a window of 4 at every step; SimLayerKV's layers are all lazy at threshold 0 (the default 1 never is).
  decoding: { 'compression-interval': 2, 'target-size': 10 },
  'prefill-decoding': { 'compression-interval': 2, 'target-size': 10 },
  'compression-ratio-decoding': { 'compression-interval': 2 },
  dms: { threshold: 0, 'sliding-window-size': 4, decoding: 1 },
  // CaM (decoding group, wave 2): back to 10 entries once 2 tokens came (defaults 2048 after 512).
  cam: { 'compression-interval': 2, 'target-size': 10 },
  simlayerkv: { 'lazy-threshold': 0, 'n-recent': 4, 'n-initial': 2 },
  // wrappers: scorers that work on 8 tokens (the default SnapKV's window is 64), chunks and blocks smaller than 40.
  chunk: { scorer: 'tova', 'chunk-length': 16 },
  chunkkv: { scorer: 'knorm', 'chunk-length': 4 },
  block: { 'block-size': 4 },
  criticalkv: { scorer: 'tova' },
  'critical-adakv': { scorer: 'knorm' },
  'per-layer-compression': { scorer: 'knorm', ratios: '0.25,0.75' },
  composed: { presses: 'tova,knorm' },
  // trained: their trained parts for llama-gqa-tied; Fast KVzip's window int(40 × 0.02) would be 0, which in kvpress
  // sets every score to 1 (so a larger window ratio makes its gates decide); RestoreKV adds tokens (see contract.test.ts).
  qfilter: { path: join(TRAINED, 'qfilter') },
  kvzap: { path: join(TRAINED, 'kvzap', 'mlp') },
  fastkvzip: { path: join(TRAINED, 'fastkvzip', 'q2_dim16_sink4.pt'), 'window-ratio': 0.25 },
  lukv: { path: join(TRAINED, 'lukv', 'curve.npy') },
  restorekv: { path: join(TRAINED, 'restorekv') },
  // draft: SpecKV drafts with another parity checkpoint of the same tokenizer; its window (32 + 1) must be shorter than
  // the 8 tokens of the first chunk, and a short lookahead keeps the per-compression drafting cheap.
  speckv: { draft: join(import.meta.dirname, '..', 'fixtures', 'parity', 'llama3-mqa'), window: 2, lookahead: 3 },
  // heads: DuoAttention's hand-made pattern for llama-gqa-tied (sink 2, recent 4: streaming heads drop entries in 40 tokens).
  'duo-attention': { pattern: join(import.meta.dirname, '..', 'fixtures', 'duo-attention', 'llama-gqa-tied') },
  // heads: RazorAttention with no retrieval heads (its probe would make one of the 4 KV heads one, which keeps all 40
  // tokens, past any per-head budget), so that every head keeps sinks, the compensation token and a window within the
  // budget while the token is folded again after every chunk and step; test/presses/razor-attention.test.ts checks
  // the retrieval heads and the budget over the whole cache.
  'razor-attention': { 'induction-share': 0, 'echo-share': 0 },
};
