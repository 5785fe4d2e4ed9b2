/** Attend's public API: load a Hugging Face model, tokenize, run it with a KV cache, compress the cache, generate. */
export { AttendError } from './errors.js';
export { Tensor } from './tensor/tensor.js';
export type { DType } from './tensor/dtype.js';
export type { Backend, AttentionObserver, AttentionBlock, AttentionOptions } from './backend/backend.js';
export { cpuBackend, CpuBackend } from './backend/cpu/index.js';
export { referenceBackend, ReferenceBackend } from './backend/reference/index.js';
export { inspectModel, loadModel, type LoadedModel, type LoadOptions, type ModelSummary } from './models/load.js';
export type { ModelConfig } from './models/config.js';
export { readModelConfig, normaliseConfig, SUPPORTED_ARCHITECTURES } from './models/families.js';
export {
  newCache,
  contextLength,
  kvBytesPerToken,
  ablationHooks,
  chainHooks,
  forwardWithHidden,
  parseHeads,
  withHooks,
  type CausalLM,
  type ForwardOptions,
  type ForwardHooks,
  type HeadRef,
} from './models/model.js';
export { FAMILIES, type FamilyEntry } from './models/families.js';

// Attention as a specification: kernels by name (softmax, sigmoid), the visibility rule, the plain-loop reference.
export { ATTENTION_KERNELS, parseKernel, kernelOf, type AttentionKernel, type AttentionKernelSpec } from './attention/kernels/index.js';
export { sees, type Visibility, type TreeMask } from './attention/visibility.js';
export { referenceAttention } from './attention/reference.js';
export { KVCache, LayerCache } from './cache/kv-cache.js';
export { HeadStore } from './cache/head-store.js';
export { TextTokenizer, type ChatMessage } from './io/tokenizer.js';
export { SafetensorsArchive, writeSafetensors } from './io/safetensors.js';
export {
  generate,
  generateStream,
  type GenerateOptions,
  type GenerationResult,
  type GenerationStats,
  type GenerationEvent,
} from './generate/generate.js';
export { prefill, DEFAULT_PREFILL_CHUNK, type PrefillOptions } from './generate/prefill.js';
export { allLogits } from './generate/logits.js';
export { Sampler, argmax, type SamplingOptions } from './generate/sampler.js';
export { DEFAULT_DRAFT_TOKENS, SpeculativeDecoder, type DraftOptions, type SpeculativeStats } from './generate/speculative.js';

// Decode-time sparse attention: selectors by name, and the session that applies one to a sequence.
export { SELECTORS, createSelector, SelectionSession, type Selector, type SelectorView, type SelectionStats } from './selectors/registry.js';
export { QuestSelector, type QuestOptions } from './selectors/quest.js';
export { TidalDecodeSelector, type TidalDecodeOptions } from './selectors/tidal-decode.js';
export { RecycledAttentionSelector, type RecycledAttentionOptions } from './selectors/recycled-attention.js';

// Prompt compression before the target's prefill: SpecPC (the draft model's attention picks the prompt tokens kept).
export { compressPrompt, type CompressPromptOptions, type SpecPCOptions } from './prompt/specpc.js';

// KV-cache compression: the presses by name (what `attend presses` lists), a plan (press + budget + when), and the
// session that applies a plan to one cache; generate() runs a plan given as `compression`.
export { PRESSES, createPress, pressEntry, type PressEntry, type OptionSpec } from './presses/registry.js';
export { CompressionSession, type CompressionPlan, type CompressionStats } from './presses/runner.js';
export { entriesToKeep, type Budget } from './presses/budget.js';
export { topK, type Press, type PressNeeds, type LayerView, type QueryWindow } from './presses/press.js';
