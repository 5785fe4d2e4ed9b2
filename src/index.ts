/** Attend's public API: load a Hugging Face model, tokenize, run it with a KV cache, compress the cache, generate. */
export { AttendError } from './errors.js';
export { Tensor } from './tensor/tensor.js';
export type { DType } from './tensor/dtype.js';
export type { Backend, AttentionObserver, AttentionBlock } from './backend/backend.js';
export { cpuBackend } from './backend/cpu/index.js';
export { inspectModel, loadModel, type LoadedModel, type LoadOptions, type ModelSummary } from './models/load.js';
export { readModelConfig, SUPPORTED_ARCHITECTURES, type ModelConfig } from './models/config.js';
export { newCache, contextLength, kvBytesPerToken, type CausalLM, type ForwardOptions } from './models/model.js';
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

// KV-cache compression: the presses by name (what `attend presses` lists), a plan (press + budget + when), and the
// session that applies a plan to one cache; generate() runs a plan given as `compression`.
export { PRESSES, createPress, pressEntry, type PressEntry, type OptionSpec } from './presses/registry.js';
export { CompressionSession, type CompressionPlan, type CompressionStats } from './presses/runner.js';
export { entriesToKeep, type Budget } from './presses/budget.js';
export { topK, type Press, type PressNeeds, type LayerView, type QueryWindow } from './presses/press.js';
