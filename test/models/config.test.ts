/**
 * config.json validation: every bad number is a one-line AttendError naming the file and the field, before any
 * of it reaches the model code (issue 15, items 4 and 7). The bases are two transformers-written fixtures.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MAX_LAYERS, MAX_POSITIONS } from '../../src/models/config.js';
import { readModelConfig } from '../../src/models/families.js';
import { readGenerationConfig } from '../../src/io/generation-config.js';
import { AttendError } from '../../src/errors.js';
import { PARITY_DIR } from '../helpers/fixtures.js';

type Json = Record<string, unknown>;
const llama = JSON.parse(fs.readFileSync(path.join(PARITY_DIR, 'llama-mha', 'config.json'), 'utf8')) as Json;
const gpt2 = JSON.parse(fs.readFileSync(path.join(PARITY_DIR, 'gpt2', 'config.json'), 'utf8')) as Json;

let root: string;
before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-config-'));
});
after(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function dirWith(config: Json | string): string {
  const d = fs.mkdtempSync(path.join(root, 'c-'));
  fs.writeFileSync(path.join(d, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config, null, 2));
  return d;
}

/** Asserts that `config` is refused with one line naming config.json and matching `pattern`. */
function refused(config: Json | string, pattern: RegExp): void {
  const d = dirWith(config);
  assert.throws(() => readModelConfig(d), (e: unknown) => {
    assert.ok(e instanceof AttendError, `not an AttendError: ${String(e)}`);
    assert.ok(e.message.startsWith(path.join(d, 'config.json') + ':'), e.message);
    assert.ok(!e.message.includes('\n'), e.message);
    assert.match(e.message, pattern);
    return true;
  }, `accepted: ${typeof config === 'string' ? config : JSON.stringify(config)}`);
}

test('the fixtures load', () => {
  const c = readModelConfig(path.join(PARITY_DIR, 'llama-mha'));
  assert.deepEqual([c.numLayers, c.numHeads, c.numKvHeads, c.headDim, c.rope?.dim, c.dtype], [2, 4, 4, 12, 12, 'f32']);
  const g = readModelConfig(path.join(PARITY_DIR, 'gpt2'));
  assert.deepEqual([g.numLayers, g.numHeads, g.headDim, g.intermediateSize], [2, 4, 12, 96]);
  // n_inner null means 4 × n_embd, as in transformers.
  assert.equal(readModelConfig(dirWith({ ...gpt2, n_inner: null })).intermediateSize, 192);
});

test('integers where integers are meant: positive, whole, bounded', () => {
  const fieldsLlama = ['num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'hidden_size', 'intermediate_size', 'vocab_size', 'max_position_embeddings', 'head_dim'];
  for (const field of fieldsLlama) {
    for (const bad of [-1, 0, 1.5, '4', true, 1e300]) {
      refused({ ...llama, [field]: bad }, new RegExp(`"${field}" is .*expected a positive integer|"${field}" is .*above the limit`));
    }
  }
  for (const field of ['n_layer', 'n_head', 'n_embd', 'n_positions', 'vocab_size', 'n_inner']) {
    for (const bad of [-4, 0, 2.5, 'x']) refused({ ...gpt2, [field]: bad }, new RegExp(`"${field}" is .*expected a positive integer`));
  }
  refused({ ...llama, num_hidden_layers: 1e12 }, new RegExp(`"num_hidden_layers" is 1000000000000, above the limit of ${MAX_LAYERS}`));
  refused({ ...llama, max_position_embeddings: 1e12 }, new RegExp(`"max_position_embeddings" is 1000000000000, above the limit of ${MAX_POSITIONS}`));
  const missing = { ...llama };
  delete missing.num_hidden_layers;
  refused(missing, /"num_hidden_layers" is missing/);
});

test('heads divide the hidden size and kv heads divide heads', () => {
  const noHeadDim = { ...llama };
  delete noHeadDim.head_dim;
  refused({ ...noHeadDim, num_attention_heads: 5, num_key_value_heads: 5 }, /"hidden_size" 48 is not divisible by "num_attention_heads" 5/);
  refused({ ...llama, num_key_value_heads: 3 }, /"num_attention_heads" 4 is not a multiple of "num_key_value_heads" 3/);
  refused({ ...gpt2, n_head: 5 }, /"n_embd" 48 is not divisible by "n_head" 5/); // was head dim 9.6 reaching the matmul
  // An explicit head_dim need not divide hidden_size (Qwen3 style).
  assert.equal(readModelConfig(dirWith({ ...llama, head_dim: 16 })).headDim, 16);
});

test('norm epsilon and rope_theta are finite and positive', () => {
  for (const bad of [0, -1e-5, 'x', null]) {
    if (bad !== null) refused({ ...llama, rms_norm_eps: bad }, /"rms_norm_eps" is .*expected a finite positive number/);
    if (bad !== null) refused({ ...gpt2, layer_norm_epsilon: bad }, /"layer_norm_epsilon" is .*expected a finite positive number/);
  }
  for (const bad of [0, -10000, 'abc', true]) {
    refused({ ...llama, rope_parameters: { rope_type: 'default', rope_theta: bad } }, /"rope_theta" is .*expected a finite positive number/);
    const v4: Json = { ...llama, rope_theta: bad };
    delete v4.rope_parameters;
    refused(v4, /"rope_theta" is .*expected a finite positive number/);
  }
  refused({ ...llama, rope_parameters: [1] }, /"rope_parameters" is \[1\], expected an object/);
});

test('partial_rotary_factor in (0, 1], RoPE scaling factors positive', () => {
  for (const bad of [-0.5, 0, 2, 'half']) refused({ ...llama, partial_rotary_factor: bad }, /"partial_rotary_factor" is .*expected a number in \(0, 1\]/);
  refused({ ...llama, partial_rotary_factor: 0.05 }, /rotates 0 dimensions/);
  refused({ ...llama, partial_rotary_factor: 0.25 }, /rotates 3 dimensions; RoPE needs a positive even number/);
  assert.equal(readModelConfig(dirWith({ ...llama, partial_rotary_factor: 0.5 })).rope?.dim, 6);
  refused({ ...llama, rope_parameters: { rope_type: 'linear', rope_theta: 10000, factor: -2 } }, /"factor" is -2, expected a finite positive number/);
  refused({ ...llama, rope_parameters: { rope_type: 'llama3', rope_theta: 10000, factor: 8, low_freq_factor: 4, high_freq_factor: 4 } },
    /"high_freq_factor" 4 must be above "low_freq_factor" 4/);
  refused({ ...llama, rope_parameters: { rope_type: 'dynamic', rope_theta: 10000, factor: 1e9 } }, /dynamic RoPE stretches 64 positions by factor 1000000000/);
});

test('sliding_window is a positive integer or null', () => {
  const mistral = { ...llama, architectures: ['MistralForCausalLM'], model_type: 'mistral' };
  for (const bad of [0, -4096, 1.5, '4096']) refused({ ...mistral, sliding_window: bad }, /"sliding_window" is .*expected a positive integer/);
  assert.deepEqual(readModelConfig(dirWith({ ...mistral, sliding_window: null })).slidingWindows, [null, null]);
  assert.deepEqual(readModelConfig(dirWith({ ...mistral, sliding_window: 16 })).slidingWindows, [16, 16]);
  const qwen = { ...llama, architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', sliding_window: 8, use_sliding_window: true };
  refused({ ...qwen, max_window_layers: -1 }, /"max_window_layers" is -1, expected a non-negative integer/);
  assert.deepEqual(readModelConfig(dirWith({ ...qwen, max_window_layers: 1 })).slidingWindows, [null, 8]);
});

test('unknown dtype, bad token ids and non-boolean flags are refused', () => {
  for (const bad of ['float64', 'int8', 'fp32', 7]) refused({ ...llama, dtype: bad }, /"dtype" .* is not supported \(supported: float32, float16, bfloat16\)/);
  const v4: Json = { ...llama, torch_dtype: 'float8_e4m3fn' };
  delete v4.dtype;
  refused(v4, /"torch_dtype" "float8_e4m3fn" is not supported/);
  assert.equal(readModelConfig(dirWith({ ...llama, dtype: 'bfloat16' })).dtype, 'bf16');
  refused({ ...llama, eos_token_id: [1, 'x'] }, /"eos_token_id" is \[1,"x"\], expected a token id/);
  refused({ ...llama, bos_token_id: -1 }, /"bos_token_id" is -1, expected a token id/);
  refused({ ...llama, tie_word_embeddings: 'false' }, /"tie_word_embeddings" is "false", expected true or false/);
});

test('JSON errors in config.json and generation_config.json are one line without the file text', () => {
  const text = '{\n  "architectures": ["LlamaForCausalLM"],\n  "hidden_size": x\n}\n';
  refused(text, /not valid JSON \(Unexpected token 'x'/);
  refused('{\n  "a": 1,\n', /not valid JSON \(.*at line 3 column 1\)/);
  const d = dirWith(llama);
  fs.writeFileSync(path.join(d, 'generation_config.json'), '{\n  "temperature": 0.7,\n  "top_k": oops\n}\n');
  assert.throws(() => readGenerationConfig(d), (e: unknown) =>
    e instanceof AttendError && /generation_config\.json: not valid JSON/.test(e.message) && !e.message.includes('\n'));
  const dir = fs.mkdtempSync(path.join(root, 'd-'));
  fs.mkdirSync(path.join(dir, 'config.json'));
  assert.throws(() => readModelConfig(dir), (e: unknown) => e instanceof AttendError && /config\.json: cannot read \(EISDIR\)/.test(e.message));
});

test('an odd rotary width is refused in one line (RoPE rotates pairs of dimensions)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-odd-head-'));
  try {
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
      architectures: ['LlamaForCausalLM'], hidden_size: 12, num_attention_heads: 4, num_key_value_heads: 4, head_dim: 3,
      num_hidden_layers: 1, intermediate_size: 8, vocab_size: 16, max_position_embeddings: 64,
    }));
    assert.throws(() => readModelConfig(dir), (e: Error) => e instanceof AttendError && /rotates 3 dimensions/.test(e.message) && !e.message.includes('\n'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
