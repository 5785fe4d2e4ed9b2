/**
 * NaN and ±Infinity in a checkpoint's weights: loading fails with one line naming the file, the tensor and the
 * element, instead of a model whose every logit is NaN (the audit's case: exit 0, `generate` printing nothing).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AttendError } from '../../src/errors.js';
import { SafetensorsArchive } from '../../src/io/safetensors.js';
import { loadModel } from '../../src/models/load.js';
import { firstNonFinite } from '../../src/models/weights.js';
import { PARITY_DIR } from '../helpers/fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-nonfinite-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A copy of a fixture with element `index` of tensor `name` overwritten by `value` (at the tensor's dtype). */
function poisoned(fixture: string, name: string, index: number, value: number): string {
  const dir = fs.mkdtempSync(path.join(tmp, `${fixture}-`));
  fs.cpSync(path.join(PARITY_DIR, fixture), dir, { recursive: true });
  const file = path.join(dir, 'model.safetensors');
  const st = SafetensorsArchive.openFile(file);
  const e = st.entry(name);
  st.close();
  const bytes = fs.readFileSync(file);
  if (e.dtype === 'F32') bytes.writeFloatLE(value, e.begin + 4 * index);
  else if (e.dtype === 'BF16') {
    const f = Buffer.alloc(4);
    f.writeFloatLE(value);
    bytes.writeUInt16LE(f.readUInt16LE(2), e.begin + 2 * index); // bf16 is the high half of the f32
  } else throw new Error(`fixture dtype ${e.dtype}`);
  fs.writeFileSync(file, bytes);
  return dir;
}

function failsNaming(dir: string, pattern: RegExp): void {
  assert.throws(() => loadModel(dir), (e: unknown) => {
    assert.ok(e instanceof AttendError, `expected AttendError, got ${String(e)}`);
    assert.match(e.message, pattern);
    assert.ok(e.message.includes(path.join(dir, 'model.safetensors')), `names the file: ${e.message}`);
    assert.ok(!e.message.includes('\n'), `one line: ${e.message}`);
    return true;
  });
}

test('a NaN in an f32 weight fails the load naming the tensor and the element', () => {
  // down_proj is [48, 96]: element 100 is [1, 4].
  const dir = poisoned('llama-gqa-tied', 'model.layers.0.mlp.down_proj.weight', 100, NaN);
  failsNaming(dir, /tensor "model\.layers\.0\.mlp\.down_proj\.weight" holds NaN at \[1, 4\] \(element 100 of 4608\); the checkpoint is corrupt/);
});

test('+Infinity and -Infinity are caught too, in the embedding and in a norm', () => {
  failsNaming(poisoned('llama-gqa-tied', 'model.embed_tokens.weight', 0, Infinity),
    /tensor "model\.embed_tokens\.weight" holds Infinity at \[0, 0\]/);
  failsNaming(poisoned('llama-gqa-tied', 'model.layers.0.input_layernorm.weight', 47, -Infinity),
    /tensor "model\.layers\.0\.input_layernorm\.weight" holds -Infinity at \[47\]/);
});

test('a NaN stored as bf16 is caught after widening', () => {
  failsNaming(poisoned('llama-bf16', 'model.layers.0.mlp.down_proj.weight', 4607, NaN),
    /tensor "model\.layers\.0\.mlp\.down_proj\.weight" holds NaN at \[47, 95\]/);
});

test('finite checkpoints still load; firstNonFinite on its own', () => {
  assert.ok(loadModel(path.join(PARITY_DIR, 'llama-gqa-tied')).parameterCount > 0);
  assert.equal(firstNonFinite(Float32Array.from([0, -0, 3.4e38, -3.4e38, 1e-45])), -1);
  assert.equal(firstNonFinite(Float32Array.from([1, 2, NaN, Infinity])), 2);
  assert.equal(firstNonFinite(new Float32Array(0)), -1);
});
