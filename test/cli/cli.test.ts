import assert from 'node:assert/strict';
import { copyFileSync, cpSync, existsSync, mkdtempSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { assertUserError as assertOneUserError, runCli } from '../helpers/cli.js';
import { maxAbsDiff, PARITY_DIR, readF32 } from '../helpers/fixtures.js';
import { readFileSync } from 'node:fs';

const model = join(PARITY_DIR, 'llama-gqa-tied');
const tmp = mkdtempSync(join(tmpdir(), 'attend-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A user error: non-zero exit, one line on stderr naming the problem, no stack trace. */
function assertUserError(args: string[], pattern: RegExp): void {
  const r = runCli(args);
  assert.notEqual(r.status, 0, `expected failure for ${args.join(' ')}`);
  assertOneUserError(r, pattern);
}

test('logits writes [tokens × vocab] float32 equal to the reference', () => {
  const ref = JSON.parse(readFileSync(join(model, 'reference.json'), 'utf8'));
  const out = join(tmp, 'logits.f32');
  const r = runCli(['logits', '--model', model, '--ids', ref.ids.join(','), '--out', out, '--prefill-chunk', '7']);
  assert.equal(r.status, 0, r.stderr);
  const got = readF32(out);
  assert.ok(maxAbsDiff(got, readF32(join(model, ref.logits.file))) <= 1e-4);
  assert.equal(got.length, ref.logits.shape[0] * ref.logits.shape[1]);
});

test('info prints family, parameters, dtype, context and KV bytes per token', () => {
  const r = runCli(['info', '--model', model, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.equal(info.architecture, 'LlamaForCausalLM');
  assert.ok(info.parameters > 0);
  assert.equal(info.kvBytesPerToken, info.layers * info.kvHeads * (2 * info.headDim * 4 + 4));
});

test('generate streams greedy text and is deterministic with a seed', () => {
  const args = ['generate', '--model', model, '--prompt', 'In the beginning', '--max-tokens', '8'];
  const a = runCli([...args, '--temperature', '0.8', '--seed', '5']);
  const b = runCli([...args, '--temperature', '0.8', '--seed', '5']);
  assert.equal(a.status, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
  assert.ok(a.stdout.length > 1);
});

test('bad input: missing model directory, config, unknown architecture', () => {
  assertUserError(['info', '--model', join(tmp, 'nope')], /model directory not found/);
  const empty = join(tmp, 'empty');
  cpSync(model, empty, { recursive: true });
  rmSync(join(empty, 'config.json'));
  assertUserError(['info', '--model', empty], /config\.json: missing/);
  const unknown = join(tmp, 'unknown');
  cpSync(model, unknown, { recursive: true });
  const config = JSON.parse(readFileSync(join(unknown, 'config.json'), 'utf8'));
  writeFileSync(join(unknown, 'config.json'), JSON.stringify({ ...config, architectures: ['MambaForCausalLM'], model_type: 'mamba' }));
  assertUserError(['info', '--model', unknown], /unsupported architecture MambaForCausalLM \(supported: LlamaForCausalLM/);
});

test('bad input: truncated safetensors and missing tensors name the file', () => {
  const cut = join(tmp, 'cut');
  cpSync(model, cut, { recursive: true });
  const file = join(cut, 'model.safetensors');
  truncateSync(file, 1000);
  assertUserError(['info', '--model', cut], /model\.safetensors/);
  const missing = join(tmp, 'missing');
  cpSync(model, missing, { recursive: true });
  const lessLayers = JSON.parse(readFileSync(join(missing, 'config.json'), 'utf8'));
  writeFileSync(join(missing, 'config.json'), JSON.stringify({ ...lessLayers, num_hidden_layers: lessLayers.num_hidden_layers + 1 }));
  assertUserError(['info', '--model', missing], /missing tensor "model\.layers\.\d+\./);
});

test('bad input: ids outside the vocabulary, prompt longer than the context, unknown flags', () => {
  const out = join(tmp, 'never.f32');
  assertUserError(['logits', '--model', model, '--ids', '1,2,99999999', '--out', out], /outside the vocabulary/);
  assert.equal(existsSync(out), false);
  const config = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8'));
  const long = Array.from({ length: config.max_position_embeddings + 1 }, () => 1).join(',');
  assertUserError(['logits', '--model', model, '--ids', long, '--out', out], /more than the model's context/);
  assertUserError(['generate', '--model', model, '--prompt', 'x', '--frobnicate'], /unknown option '--frobnicate'/);
  assertUserError(['generate', '--model', model], /exactly one of --prompt or --prompt-file/);
  assertUserError(['generate', '--model', model, '--prompt', 'x', '--max-tokens', 'lots'], /--max-tokens: "lots" is not a whole number/);
  assert.deepEqual(readdirSync(tmp).filter((f) => f.endsWith('.partial')), []);
});
