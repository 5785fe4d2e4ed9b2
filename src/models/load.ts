/** Opens a Hugging Face model directory: config, weights, tokenizer and generation defaults. */
import { join } from 'node:path';
import type { Backend } from '../backend/backend.js';
import { cpuBackend } from '../backend/cpu/index.js';
import { backendFor } from '../backend/devices.js';
import { type GenerationDefaults, readGenerationConfig } from '../io/generation-config.js';
import { SafetensorsArchive } from '../io/safetensors.js';
import { TextTokenizer } from '../io/tokenizer.js';
import { type AttentionKernelSpec, parseKernel } from '../attention/kernels/index.js';
import type { ModelConfig } from './config.js';
import { FAMILIES, readModelConfig } from './families.js';
import type { CausalLM } from './model.js';
import { WeightReader } from './weights.js';

export interface LoadedModel {
  dir: string;
  config: ModelConfig;
  model: CausalLM;
  tokenizer: TextTokenizer;
  generation: GenerationDefaults;
  /** Parameters stored in the checkpoint (each tensor once). */
  parameterCount: number;
}

export interface LoadOptions {
  backend?: Backend;
  /** A device by name ('cpu', 'cuda': backend/devices.ts), when no backend is given. */
  device?: string;
  /** The attention kernel to run instead of softmax: "sigmoid", "sigmoid:bias=-8", or a spec (attention/kernels/). */
  attention?: string | AttentionKernelSpec;
}

export interface ModelSummary {
  dir: string;
  config: ModelConfig;
  /** Parameters stored in the checkpoint (each tensor once). */
  parameterCount: number;
}

function countParameters(archive: SafetensorsArchive): number {
  return archive.names().reduce((n, name) => n + archive.entry(name).shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * What `attend info` needs, from config.json and the safetensors headers only: no weight is read and no
 * tokenizer loaded. The model is still assembled, on placeholder tensors (WeightReader's shapesOnly), so a
 * checkpoint that lacks a tensor the config implies, or holds one of another shape, fails as loadModel would.
 * attend-mini, peak RSS of `attend info` (/usr/bin/time -v, dist/): 217-220 MB before (the whole model built in
 * f32), 69 MB after (the bare CLI with --help: 57 MB).
 */
export function inspectModel(dir: string): ModelSummary {
  const config = readModelConfig(dir);
  const archive = SafetensorsArchive.open(dir);
  try {
    const weights = new WeightReader(archive, join(dir, 'model.safetensors'), { shapesOnly: true });
    FAMILIES[config.family].create(config, weights, cpuBackend);
    return { dir, config, parameterCount: countParameters(archive) };
  } finally {
    archive.close();
  }
}

export function loadModel(dir: string, opts: LoadOptions = {}): LoadedModel {
  const config = readModelConfig(dir);
  if (opts.attention !== undefined) {
    config.attentionKernel = typeof opts.attention === 'string' ? parseKernel(opts.attention, config) : opts.attention;
  }
  const archive = SafetensorsArchive.open(dir);
  try {
    const source = join(dir, archive.names().length ? 'model.safetensors' : '');
    const weights = new WeightReader(archive, source);
    const backend = opts.backend ?? (opts.device ? backendFor(opts.device) : cpuBackend);
    const model = FAMILIES[config.family].create(config, weights, backend);
    const parameterCount = countParameters(archive);
    const tokenizer = TextTokenizer.load(dir);
    Object.assign(model, { tokenizer });
    return { dir, config, model, tokenizer, generation: readGenerationConfig(dir), parameterCount };
  } finally {
    archive.close();
  }
}
