/**
 * Tiny hand-made trained parts for the press tests, in the formats the authors publish, for the parity checkpoint
 * llama-gqa-tied (2 layers, 4 query heads, 2 KV heads, head_dim 12, hidden 48): seeded uniform values, no training
 * (the contract and unit tests need files of the right format and shape, not good scores; the GPU scripts beside this
 * one make trained parts for attend-mini). Writes test/fixtures/press-trained/:
 *
 * - qfilter/: model.safetensors (q_filters [2, 2, 12]) + config.json, as QFilters.save_pretrained;
 * - kvzap/mlp/ and kvzap/linear/: config.json + model.safetensors, as KVzapModel.save_pretrained (hidden_dim 8);
 * - fastkvzip/q2_dim16_sink4.pt: torch.save({"module": [state dict per layer], "loss": …}) of Fast KVzip gates
 *   (16 dimensions, 4 base keys), written by io/torch-file.ts as torch.save lays it out;
 * - lukv/curve.npy: [99, 2, 2] pruning ratios (the row's global ratio, ± 0.1 between the two heads of each layer);
 * - restorekv/: restore_embeddings.safetensors ([2, 48]) and a PEFT LoRA adapter (r 2, alpha 4, q/k/v/o/gate/up/down)
 *   whose base_model_name_or_path is the parity checkpoint, relative to the folder.
 *
 *   node --import tsx tools/press_training/make_test_artefacts.ts [OUT_DIR]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { uniformArray } from '../../src/generate/random.js';
import { writeNpy } from '../../src/io/npy.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { torchFileBytes } from '../../src/io/torch-file.js';

const ROOT = join(import.meta.dirname, '..', '..');
const OUT = process.argv[2] ?? join(ROOT, 'test', 'fixtures', 'press-trained');
const BASE = join(ROOT, 'test', 'fixtures', 'parity', 'llama-gqa-tied');
const L = 2;
const H = 2;
const GROUP = 2;
const D = 12;
const HIDDEN = 48;
const INTER = 96;

let seed = 1;
/** Seeded values uniform in [−scale, scale). */
const rand = (n: number, scale: number) => Float32Array.from(uniformArray(n, seed++), (x) => (2 * x - 1) * scale);
const f32 = (shape: number[], data: Float32Array) => ({ dtype: 'f32' as const, shape, data });
const dir = (...parts: string[]) => {
  const d = join(OUT, ...parts);
  mkdirSync(d, { recursive: true });
  return d;
};

// Q-filters: PyTorchModelHubMixin.save_pretrained writes the module's init arguments as config.json.
{
  const d = dir('qfilter');
  writeSafetensors(join(d, 'model.safetensors'), { q_filters: f32([L, H, D], rand(L * H * D, 1)) }, { format: 'pt' });
  writeFileSync(join(d, 'config.json'), JSON.stringify({ num_layers: L, num_kv_heads: H, kv_head_dim: D }, null, 2) + '\n');
}

// KVzap: transformers' save_pretrained of KVzapModel (config + model.safetensors).
for (const kind of ['mlp', 'linear'] as const) {
  const d = dir('kvzap', kind);
  const hidden = kind === 'mlp' ? 8 : null;
  const tensors: Record<string, ReturnType<typeof f32>> = {};
  for (let l = 0; l < L; l++) {
    if (hidden) {
      tensors[`layers.${l}.0.weight`] = f32([hidden, HIDDEN], rand(hidden * HIDDEN, 0.5));
      tensors[`layers.${l}.0.bias`] = f32([hidden], rand(hidden, 0.5));
      tensors[`layers.${l}.2.weight`] = f32([H, hidden], rand(H * hidden, 0.5));
      tensors[`layers.${l}.2.bias`] = f32([H], rand(H, 0.5));
    } else {
      tensors[`layers.${l}.weight`] = f32([H, HIDDEN], rand(H * HIDDEN, 0.5));
      tensors[`layers.${l}.bias`] = f32([H], rand(H, 0.5));
    }
  }
  writeSafetensors(join(d, 'model.safetensors'), tensors, { format: 'pt' });
  const config = { architectures: ['KVzapModel'], model_type: 'kvzap', input_dim: HIDDEN, output_dim: H, hidden_dim: hidden, n_modules: L, dtype: 'float32', transformers_version: '5.17.0' };
  writeFileSync(join(d, 'config.json'), JSON.stringify(config, null, 2) + '\n');
}

// Fast KVzip: the authors' optim.py saves {"module": [m.state_dict() for m in modules], "loss": …, …}.
{
  const d = dir('fastkvzip');
  const dim = 16;
  const sink = 4;
  const module = Array.from({ length: L }, () =>
    new Map<string, unknown>([
      ['q_proj.weight', { shape: [H * GROUP * dim, HIDDEN], data: rand(H * GROUP * dim * HIDDEN, 0.3) }],
      ['q_proj.bias', { shape: [H * GROUP * dim], data: rand(H * GROUP * dim, 0.3) }],
      ['k_proj.weight', { shape: [H * dim, HIDDEN], data: rand(H * dim * HIDDEN, 0.3) }],
      ['q_norm.weight', { shape: [dim], data: Float32Array.from(rand(dim, 0.5), (x) => 1 + x) }],
      ['k_norm.weight', { shape: [dim], data: Float32Array.from(rand(dim, 0.5), (x) => 1 + x) }],
      ['k_base', { shape: [H, 1, sink, dim], data: rand(H * sink * dim, 1) }],
      ['b', { shape: [H, 1, GROUP], data: rand(H * GROUP, 1) }],
    ]),
  );
  writeFileSync(join(d, `q${GROUP}_dim${dim}_sink${sink}.pt`), torchFileBytes(new Map<string, unknown>([['module', module], ['loss', [0.5, 0.25]]]), `q${GROUP}_dim${dim}_sink${sink}`));
}

// LU-KV: a [99, layers, kv_heads] curve of pruning ratios, the two heads of a layer ± 0.1 around the row's ratio.
{
  const d = dir('lukv');
  const curve = new Float64Array(99 * L * H);
  for (let i = 0; i < 99; i++) {
    for (let l = 0; l < L; l++) {
      for (let h = 0; h < H; h++) {
        const spread = Math.min(0.1, (i + 1) / 100, 1 - (i + 1) / 100);
        curve[(i * L + l) * H + h] = (i + 1) / 100 + (h === l % H ? spread : -spread);
      }
    }
  }
  writeNpy(join(d, 'curve.npy'), [99, L, H], curve);
}

// RestoreKV: restore embeddings and a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors).
{
  const d = dir('restorekv');
  const n = 2;
  const r = 2;
  writeSafetensors(join(d, 'restore_embeddings.safetensors'), { restore_embeddings: f32([n, HIDDEN], rand(n * HIDDEN, 1)) }, { format: 'pt' });
  const shapes: Record<string, [number, number]> = {
    'self_attn.q_proj': [4 * D, HIDDEN],
    'self_attn.k_proj': [H * D, HIDDEN],
    'self_attn.v_proj': [H * D, HIDDEN],
    'self_attn.o_proj': [HIDDEN, 4 * D],
    'mlp.gate_proj': [INTER, HIDDEN],
    'mlp.up_proj': [INTER, HIDDEN],
    'mlp.down_proj': [HIDDEN, INTER],
  };
  const tensors: Record<string, ReturnType<typeof f32>> = {};
  for (let l = 0; l < L; l++) {
    for (const [m, [out, inp]] of Object.entries(shapes)) {
      const key = `base_model.model.model.layers.${l}.${m}`;
      tensors[`${key}.lora_A.weight`] = f32([r, inp], rand(r * inp, 0.3));
      tensors[`${key}.lora_B.weight`] = f32([out, r], rand(out * r, 0.3));
    }
  }
  writeSafetensors(join(d, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: relative(d, BASE),
    r,
    lora_alpha: 4,
    lora_dropout: 0,
    target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    bias: 'none',
    fan_in_fan_out: false,
    use_rslora: false,
    use_dora: false,
    modules_to_save: null,
    rank_pattern: {},
    alpha_pattern: {},
  };
  writeFileSync(join(d, 'adapter_config.json'), JSON.stringify(config, null, 2) + '\n');
}

process.stdout.write(`wrote ${OUT}\n`);
