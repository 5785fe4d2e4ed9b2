/**
 * The model families, by ModelConfig.family: each is one file (its forward, written against the Backend interface)
 * plus one line here. Which config.json architectures map to a family, and how their fields are normalised, is in
 * config.ts (SUPPORTED_ARCHITECTURES).
 */
import type { Backend } from '../backend/backend.js';
import type { Family, ModelConfig } from './config.js';
import { Gpt2Model } from './gpt2.js';
import { LlamaModel } from './llama.js';
import type { CausalLM } from './model.js';
import type { WeightReader } from './weights.js';

export const FAMILIES: Record<Family, (config: ModelConfig, weights: WeightReader, backend: Backend) => CausalLM> = {
  llama: (c, w, b) => new LlamaModel(c, w, b),
  gpt2: (c, w, b) => new Gpt2Model(c, w, b),
};
