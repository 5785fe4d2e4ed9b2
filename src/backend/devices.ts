/**
 * The devices a model can run on, by name: one line per backend. `--device` and LoadOptions.device read this.
 * The CUDA backend is made on first use, so the CPU path never touches CUDA.
 */
import { AttendError } from '../errors.js';
import type { Backend } from './backend.js';
import { cpuBackend } from './cpu/index.js';
import { CudaBackend } from './cuda/index.js';

export const DEVICES = {
  cpu: { summary: 'f32 on this machine (OpenBLAS or WebAssembly SIMD)', make: (): Backend => cpuBackend },
  cuda: { summary: 'an NVIDIA GPU through the CUDA driver, NVRTC and cuBLAS (weights in their stored type)', make: (): Backend => cudaBackend() },
} as const;

export type DeviceName = keyof typeof DEVICES;

let cuda: CudaBackend | undefined;

function cudaBackend(): CudaBackend {
  cuda ??= new CudaBackend();
  return cuda;
}

/** The backend of a device name; an unknown name is a one-line error. */
export function backendFor(device: string): Backend {
  const entry = (DEVICES as Record<string, (typeof DEVICES)[DeviceName] | undefined>)[device];
  if (!entry) throw new AttendError(`unknown device '${device}' (known: ${Object.keys(DEVICES).join(', ')})`);
  return entry.make();
}
