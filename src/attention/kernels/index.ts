/**
 * The attention kernels, by name: one file per kernel and one line here. `parseKernel` reads the form the CLI and
 * the library take ("softmax", "sigmoid", "sigmoid:bias=-8"), with a model's defaults.
 */
import { AttendError, check } from '../../errors.js';
import type { AttentionKernel, AttentionKernelSpec } from './kernel.js';
import { defaultSigmoidBias, sigmoidKernel } from './sigmoid.js';
import { softmaxKernel } from './softmax.js';

interface KernelEntry {
  summary: string;
  options: Record<string, string>;
  make(options: Record<string, number>, model: { maxPositions: number }): AttentionKernel;
}

export const ATTENTION_KERNELS: Record<AttentionKernelSpec['name'], KernelEntry> = {
  softmax: { summary: 'softmax over the visible entries (every released checkpoint)', options: {}, make: () => softmaxKernel },
  sigmoid: {
    summary: 'σ(q·k/√d + b), no row normalisation (Ramapuram et al. 2024)',
    options: { bias: 'b; default −log(max_position_embeddings), as the paper prescribes' },
    make: (o, m) => sigmoidKernel(o.bias ?? defaultSigmoidBias(m.maxPositions)),
  },
};

/** The kernel object of a spec (its reference rule and whether it has probabilities). */
export function kernelOf(spec: AttentionKernelSpec | undefined): AttentionKernel {
  if (!spec || spec.name === 'softmax') return softmaxKernel;
  return sigmoidKernel(spec.bias);
}

/** "name[:key=value,…]" → the kernel's spec, with the model's defaults for options not given. */
export function parseKernel(text: string, model: { maxPositions: number }): AttentionKernelSpec {
  const [name, rest] = text.split(/:(.*)/s, 2);
  const entry = (ATTENTION_KERNELS as Record<string, KernelEntry | undefined>)[name];
  check(entry !== undefined, `unknown attention kernel '${name}' (known: ${Object.keys(ATTENTION_KERNELS).join(', ')})`);
  const options: Record<string, number> = {};
  for (const part of rest ? rest.split(',') : []) {
    const [key, value] = part.split('=', 2);
    check(key in entry.options, `attention kernel ${name} has no option '${key}'` +
      (Object.keys(entry.options).length ? ` (options: ${Object.keys(entry.options).join(', ')})` : ' (it takes none)'));
    const v = Number(value);
    if (value === undefined || value.trim() === '' || !Number.isFinite(v)) {
      throw new AttendError(`attention kernel option ${key} must be a finite number, got '${value ?? ''}'`);
    }
    options[key] = v;
  }
  return entry.make(options, model).spec;
}

export type { AttentionKernel, AttentionKernelSpec } from './kernel.js';
export { SOFTMAX } from './kernel.js';
