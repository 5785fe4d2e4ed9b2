/** `attend info`: what a model directory holds and what its KV cache costs. */
import type { Command } from 'commander';
import { inspectModel } from '../models/load.js';
import { contextLength, kvBytesPerToken } from '../models/model.js';
import { matmulBackendInfo } from '../backend/cpu/matmul.js';
import { defaultModel } from './options.js';
import { backendFor, DEVICES } from '../backend/devices.js';
import type { DeviceMemoryReport } from '../backend/backend.js';
import { loadModel } from '../models/load.js';
import { BYTES_PER_ELEMENT, type DType } from '../tensor/dtype.js';

/** The model loaded on a device: its memory there, and the KV bytes per token in the cache type it would use. */
function deviceInfo(dir: string, name: string): DeviceMemoryReport & { kvDtype: DType; kvBytesPerToken: number } {
  const backend = backendFor(name);
  const lm = loadModel(dir, { backend });
  const report = backend.memory?.();
  if (!report) throw new Error(`device ${name} reports no memory`);
  const kvDtype = backend.preferredKvDtype?.(lm.config.dtype) ?? 'f32';
  return { ...report, kvDtype, kvBytesPerToken: kvBytesPerToken(lm.config, BYTES_PER_ELEMENT[kvDtype]) };
}

function deviceRows(d: DeviceMemoryReport & { kvDtype: DType; kvBytesPerToken: number }): [string, string][] {
  const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
  return [
    ['device', d.device],
    ['weights on the device', gib(d.weightBytes)],
    ['device memory', `${gib(d.usedBytes)} in use, ${gib(d.reservedBytes)} held by Attend, ${gib(d.freeBytes)} free of ${gib(d.totalBytes)}`],
    ['KV cache there', `${d.kvDtype}: ${d.kvBytesPerToken.toLocaleString('en')} bytes per token (keys and values + positions, all layers)`],
  ];
}

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('print family, parameter count, dtype, context length and KV bytes per token')
    .option('--model <dir>', 'Hugging Face model directory (default: the bundled model)')
    .option('--json', 'print JSON')
    .option('--device <name>', `also load the weights on this device and report its memory: ${Object.keys(DEVICES).join(', ')}`)
    .action((flags: { model?: string; json?: boolean; device?: string }) => {
      // Header and config only: building the model would read every weight in f32 (226 MB for attend-mini).
      const lm = inspectModel(flags.model ?? defaultModel());
      const c = lm.config;
      const matmul = matmulBackendInfo();
      const info = {
        model: lm.dir,
        architecture: c.architecture,
        family: c.modelType,
        parameters: lm.parameterCount,
        dtype: c.dtype,
        contextLength: contextLength(c),
        layers: c.numLayers,
        hiddenSize: c.hiddenSize,
        attentionHeads: c.numHeads,
        kvHeads: c.numKvHeads,
        headDim: c.headDim,
        vocabSize: c.vocabSize,
        rope: c.rope ? `${c.rope.type} (theta ${c.rope.theta})` : 'none (learned positions)',
        kvBytesPerToken: kvBytesPerToken(c),
        matmul: `${matmul.name} (${matmul.threads} threads)`,
      };
      const device = flags.device && flags.device !== 'cpu' ? deviceInfo(flags.model ?? defaultModel(), flags.device) : undefined;
      if (flags.json) {
        process.stdout.write(JSON.stringify(device ? { ...info, device } : info, null, 2) + '\n');
        return;
      }
      const rows: [string, string][] = [
        ['model', info.model],
        ['architecture', `${info.architecture} (${info.family})`],
        ['parameters', `${info.parameters.toLocaleString('en')} (${(info.parameters / 1e6).toFixed(2)} M)`],
        ['dtype', info.dtype],
        ['context length', String(info.contextLength)],
        ['layers / hidden', `${info.layers} / ${info.hiddenSize}`],
        ['heads / kv heads / head dim', `${info.attentionHeads} / ${info.kvHeads} / ${info.headDim}`],
        ['vocabulary', String(info.vocabSize)],
        ['rope', info.rope],
        ['KV bytes per token', `${info.kvBytesPerToken.toLocaleString('en')} (f32 keys and values + positions, all layers)`],
        ['matmul', info.matmul],
        ...(device ? deviceRows(device) : []),
      ];
      const width = Math.max(...rows.map(([k]) => k.length));
      for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
    });
}
