/**
 * `attend info` reads config.json and the safetensors headers only (it used to build the whole model in f32:
 * 226 MB resident for attend-mini), yet still refuses a checkpoint that does not match its config.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AttendError } from '../../src/errors.js';
import { SafetensorsArchive, writeSafetensors } from '../../src/io/safetensors.js';
import { inspectModel, loadModel } from '../../src/models/load.js';
import { runCli } from '../helpers/cli.js';
import { PARITY_DIR } from '../helpers/fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-info-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A copy of `fixture` whose every weight is NaN: any read of tensor data fails the load. */
function allNaN(fixture: string): string {
  const dir = fs.mkdtempSync(path.join(tmp, `${fixture}-`));
  fs.cpSync(path.join(PARITY_DIR, fixture), dir, { recursive: true });
  const file = path.join(dir, 'model.safetensors');
  const st = SafetensorsArchive.openFile(file);
  const tensors = Object.fromEntries(st.names().map((n) => {
    const e = st.entry(n);
    return [n, { dtype: 'f32' as const, shape: e.shape, data: new Float32Array(e.shape.reduce((a, b) => a * b, 1)).fill(NaN) }];
  }));
  st.close();
  writeSafetensors(file, tensors);
  return dir;
}

test('inspectModel reads no tensor data: every weight NaN, it still succeeds, loadModel does not', () => {
  const dir = allNaN('llama-gqa-tied');
  const reads: string[] = [];
  const original = SafetensorsArchive.prototype.readBytes;
  SafetensorsArchive.prototype.readBytes = function (this: SafetensorsArchive, name: string) {
    reads.push(name);
    return original.call(this, name);
  };
  try {
    const info = inspectModel(dir);
    assert.deepEqual(reads, []);
    assert.equal(info.config.modelType, 'llama');
    assert.equal(info.parameterCount, loadModel(path.join(PARITY_DIR, 'llama-gqa-tied')).parameterCount);
  } finally {
    SafetensorsArchive.prototype.readBytes = original;
  }
  assert.throws(() => loadModel(dir), /holds NaN/);
});

test('inspectModel still checks every tensor the config implies: missing, or of the wrong shape', () => {
  for (const [fixture, victim] of [['llama-gqa-tied', 'model.layers.1.mlp.up_proj.weight'], ['gpt2', 'h.0.attn.c_attn.weight']]) {
    const dir = fs.mkdtempSync(path.join(tmp, 'mismatch-'));
    fs.cpSync(path.join(PARITY_DIR, fixture), dir, { recursive: true });
    const file = path.join(dir, 'model.safetensors');
    const st = SafetensorsArchive.openFile(file);
    const prefix = st.has(`transformer.${victim}`) ? 'transformer.' : '';
    const tensors = Object.fromEntries(st.names().map((n) => [n, { dtype: 'f32' as const, shape: st.entry(n).shape, data: st.readF32(n) }]));
    st.close();
    const full = prefix + victim;
    const { [full]: dropped, ...rest } = tensors;
    assert.ok(dropped, `${fixture} has ${full}`);
    writeSafetensors(file, rest);
    assert.throws(() => inspectModel(dir), (e: unknown) => e instanceof AttendError && e.message.includes(`missing tensor "${full}"`));
    const [r, c] = dropped.shape;
    writeSafetensors(file, { ...rest, [full]: { dtype: 'f32', shape: [c, r], data: dropped.data } });
    assert.throws(() => inspectModel(dir), (e: unknown) => e instanceof AttendError && /tensor ".*" has shape \[\d+, \d+\], expected/.test(e.message));
  }
});

test('attend info on a checkpoint of NaN weights prints its summary (it reads no weights); generate refuses it', () => {
  const dir = allNaN('llama-gqa-tied');
  const r = runCli(['info', '--model', dir, '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).architecture, 'LlamaForCausalLM');
  const g = runCli(['generate', '--model', dir, '--prompt', 'x', '--max-tokens', '1']);
  assert.notEqual(g.status, 0);
  assert.match(g.stderr.trim(), /holds NaN at \[0, 0\]/);
  assert.equal(g.stderr.trim().split('\n').length, 1, g.stderr);
});
