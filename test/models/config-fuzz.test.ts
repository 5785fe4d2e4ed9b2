/**
 * Seeded fuzz of a model directory's text files (issue 15): config.json, tokenizer.json, tokenizer_config.json,
 * generation_config.json and chat templates of a small valid model (test/fixtures/parity/llama-gqa-tied) are
 * mutated, and every outcome must be a valid load (for a template: a rendered, encoded prompt; for a config: a
 * forward pass with finite logits) or a one-line AttendError, within a generous time bound; never a hang, a crash
 * signal, another error type or a non-finite result.
 *
 * The cases run in a child process (this file, with ATTEND_FUZZ_CHILD set), one JSON line per case, so a hang or
 * an abort shows as the case that started last and did not finish. The parent generates the cases from the seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Random } from '../../src/generate/random.js';

const SEED = 0x15_2026;
const CASES = { config: 220, tokenizer: 90, generation: 30, template: 36 };
/** Hang guards, far above what a case takes (milliseconds; a template render is one Node start, ~0.1 s). */
const CASE_GUARD_MS = 30_000;
const RUN_GUARD_MS = 300_000;

const HERE = fileURLToPath(import.meta.url);
const BASE = path.join(path.dirname(HERE), '..', 'fixtures', 'parity', 'llama-gqa-tied');
const FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json'] as const;

interface Case {
  kind: keyof typeof CASES;
  what: string;
  /** Files replacing the base model's (text), or null to delete one. */
  files: Record<string, string | null>;
}
interface Outcome {
  i: number;
  outcome: 'ok' | 'error' | 'bad';
  message: string;
  ms: number;
}

// ---- case generation (parent) ----

/** The project's seeded generator (src/generate/random.ts), so a failing case can be found again from SEED. */
function rng(seed: number): () => number {
  const r = new Random(seed);
  return () => r.next();
}

const VALUES: unknown[] = [-1, 0, 1, 2, 3, 7, 1.5, 0.5, -0.5, 1e-300, 1e12, -1e12, 1e308, 2 ** 53 + 2, 4096, 65536, 'x', '', '12', 'NaN', 'float64',
  'bfloat16', 'float16', null, true, false, [], {}, [1, 2], [-1], { rope_type: 'llama3' }, { factor: -1, rope_type: 'linear' }];
const CONFIG_KEYS = ['num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'hidden_size', 'intermediate_size', 'vocab_size',
  'max_position_embeddings', 'head_dim', 'rms_norm_eps', 'rope_theta', 'rope_parameters', 'rope_scaling', 'partial_rotary_factor',
  'sliding_window', 'dtype', 'torch_dtype', 'eos_token_id', 'bos_token_id', 'tie_word_embeddings', 'attention_bias', 'hidden_act',
  'architectures', 'model_type', 'layer_types', 'use_sliding_window', 'max_window_layers'];
const TEMPLATE_PARTS = ['{% for m in messages %}', '{% endfor %}', '{% if m.role == "user" %}', '{% if add_generation_prompt %}', '{% else %}',
  '{% endif %}', '{{ m.content }}', '{{ bos_token }}', '{{ eos_token }}', '<|user|>', 'text ', '\n', '{{', '}}', '{%', '%}', '{{ raise_exception("no") }}',
  '{% for i in range(100000000) %}', '{% for i in range(300) %}', '{{ messages|tojson }}', '{{ (messages|tojson)|indent(100000) }}',
  '{% set ns = namespace(s="abcd") %}', '{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}',
  '{{ m.content|upper }}', '{{ undefined_thing.x }}', '{{ 1/0 }}', '{% macro f(x) %}{{ x }}{% endmacro %}{{ f(1) }}', '{{ "a" * 3 }}', '(', ')', '|'];

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)];
}

/** Text-level damage: truncation, a flipped byte, an inserted token. */
function damage(r: () => number, text: string): [string, string] {
  const at = Math.floor(r() * text.length);
  switch (Math.floor(r() * 3)) {
    case 0:
      return [text.slice(0, at), `truncated at ${at}`];
    case 1:
      return [text.slice(0, at) + String.fromCharCode(33 + Math.floor(r() * 90)) + text.slice(at + 1), `byte ${at} replaced`];
    default:
      return [text.slice(0, at) + pick(r, ['\n', '}', ',', '"', 'null', '{"a":']) + text.slice(at), `inserted at ${at}`];
  }
}

function generateCases(): Case[] {
  const r = rng(SEED);
  const base = Object.fromEntries(FILES.map((f) => [f, fs.readFileSync(path.join(BASE, f), 'utf8')])) as Record<(typeof FILES)[number], string>;
  const cases: Case[] = [];
  const json = (name: (typeof FILES)[number]) => JSON.parse(base[name]) as Record<string, unknown>;
  const show = (v: unknown) => JSON.stringify(v) ?? 'undefined';

  for (let n = 0; n < CASES.config; n++) {
    if (r() < 0.12) {
      const [text, what] = damage(r, base['config.json']);
      cases.push({ kind: 'config', what: `config.json ${what}`, files: { 'config.json': text } });
      continue;
    }
    const c = json('config.json');
    const edits: string[] = [];
    for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
      const key = pick(r, CONFIG_KEYS);
      if (r() < 0.15) {
        delete c[key];
        edits.push(`-${key}`);
      } else {
        c[key] = pick(r, VALUES);
        edits.push(`${key}=${show(c[key])}`);
      }
    }
    cases.push({ kind: 'config', what: `config.json ${edits.join(' ')}`, files: { 'config.json': JSON.stringify(c, null, 2) } });
  }

  for (let n = 0; n < CASES.tokenizer; n++) {
    const t = json('tokenizer.json');
    const model = t.model as Record<string, unknown>;
    const choice = Math.floor(r() * 8);
    let what: string;
    if (choice === 0) {
      const [text, w] = damage(r, base['tokenizer.json']);
      cases.push({ kind: 'tokenizer', what: `tokenizer.json ${w}`, files: { 'tokenizer.json': text } });
      continue;
    } else if (choice === 1) {
      model.type = pick(r, ['WordLevel', 'Unigram', 'WordPiece', 'BPE', 'Martian', 1, null]);
      what = `model.type=${show(model.type)}`;
    } else if (choice === 2) {
      model.vocab = pick(r, [Object.entries(model.vocab as object), Object.keys(model.vocab as object), {}, [], 'vocab', { a: -1 }, { a: 'b' }]);
      what = `model.vocab=${show(model.vocab).slice(0, 40)}`;
    } else if (choice === 3) {
      model.merges = pick(r, [[1, 2], 'merges', [['a']], null, []]);
      what = `model.merges=${show(model.merges)}`;
    } else if (choice === 4) {
      delete t[pick(r, ['model', 'added_tokens', 'pre_tokenizer', 'decoder', 'normalizer', 'post_processor'])];
      what = 'a top-level key deleted';
    } else if (choice === 5) {
      const key = pick(r, ['pre_tokenizer', 'decoder', 'normalizer', 'post_processor']);
      t[key] = pick(r, [{ type: 'Martian' }, 5, 'x', [], { type: 'Sequence', pretokenizers: 3 }]);
      what = `${key}=${show(t[key])}`;
    } else if (choice === 6) {
      t.added_tokens = pick(r, [[{ id: -1, content: 'x' }], [{ id: 'a' }], 7, [null], [{ id: 1e9, content: '<big>', special: true }]]);
      what = `added_tokens=${show(t.added_tokens)}`;
    } else {
      const tc = json('tokenizer_config.json');
      const key = pick(r, ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'chat_template', 'additional_special_tokens', 'clean_up_tokenization_spaces']);
      tc[key] = pick(r, [5, null, {}, { content: 3 }, [1], 'nope', ['<|user|>'], [{ name: 'default' }], true]);
      cases.push({ kind: 'tokenizer', what: `tokenizer_config.json ${key}=${show(tc[key])}`, files: { 'tokenizer_config.json': JSON.stringify(tc) } });
      continue;
    }
    cases.push({ kind: 'tokenizer', what: `tokenizer.json ${what}`, files: { 'tokenizer.json': JSON.stringify(t) } });
  }

  for (let n = 0; n < CASES.generation; n++) {
    if (r() < 0.3) {
      const [text, w] = damage(r, base['generation_config.json']);
      cases.push({ kind: 'generation', what: `generation_config.json ${w}`, files: { 'generation_config.json': text } });
      continue;
    }
    const g = json('generation_config.json');
    const key = pick(r, ['temperature', 'top_k', 'top_p', 'min_p', 'repetition_penalty', 'do_sample', 'max_new_tokens', 'eos_token_id', 'pad_token_id']);
    g[key] = pick(r, VALUES);
    cases.push({ kind: 'generation', what: `generation_config.json ${key}=${show(g[key])}`, files: { 'generation_config.json': JSON.stringify(g, null, 2) } });
  }

  for (let n = 0; n < CASES.template; n++) {
    const parts = Array.from({ length: 1 + Math.floor(r() * 6) }, () => pick(r, TEMPLATE_PARTS));
    const template = parts.join('');
    const where = r() < 0.5 ? 'chat_template.jinja' : 'tokenizer_config.json';
    const files: Record<string, string> = where === 'chat_template.jinja'
      ? { 'chat_template.jinja': template }
      : { 'tokenizer_config.json': JSON.stringify({ ...json('tokenizer_config.json'), chat_template: template }) };
    cases.push({ kind: 'template', what: `${where} template ${JSON.stringify(template).slice(0, 120)}`, files });
  }
  return cases;
}

// ---- the child: runs every case, one JSON line each ----

async function child(casesFile: string): Promise<void> {
  const { loadModel } = await import('../../src/models/load.js');
  const { newCache } = await import('../../src/models/model.js');
  const { AttendError } = await import('../../src/errors.js');
  const cases = JSON.parse(fs.readFileSync(casesFile, 'utf8')) as Case[];
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-fuzz-case-'));
  try {
    cases.forEach((c, i) => {
      const dir = path.join(root, String(i));
      fs.mkdirSync(dir);
      for (const name of fs.readdirSync(BASE)) if (!(name in c.files)) fs.symlinkSync(path.join(BASE, name), path.join(dir, name));
      for (const [name, text] of Object.entries(c.files)) if (text !== null) fs.writeFileSync(path.join(dir, name), text);
      process.stdout.write(`start ${i}\n`);
      const t0 = Date.now();
      let outcome: Outcome['outcome'] = 'ok';
      let message = '';
      try {
        const lm = loadModel(dir);
        const cfg = lm.config;
        const sizes = [cfg.numLayers, cfg.numHeads, cfg.numKvHeads, cfg.headDim, cfg.hiddenSize, cfg.intermediateSize, cfg.vocabSize, cfg.maxPositions];
        if (!sizes.every((v) => Number.isInteger(v) && v > 0)) throw new Error(`config loaded with a bad size: ${sizes.join(', ')}`);
        const ids = c.kind === 'template'
          ? lm.tokenizer.encodeChat([{ role: 'user', content: 'Hi there' }, { role: 'assistant', content: 'Hello' }], { addGenerationPrompt: true })
          : lm.tokenizer.encode('Hello world');
        const usable = ids.filter((id) => id >= 0 && id < cfg.vocabSize).slice(0, 8);
        if (c.kind === 'config' && usable.length > 0) {
          const logits = lm.model.forward(usable, newCache(cfg));
          const data = logits.data as Float32Array;
          const bad = data.findIndex((v) => !Number.isFinite(v));
          if (bad >= 0) throw new Error(`non-finite logit ${data[bad]} at ${bad}`);
        }
        message = `${ids.length} ids`;
      } catch (e) {
        if (e instanceof AttendError && !e.message.includes('\n') && e.message.length > 0) {
          outcome = 'error';
          message = e.message.slice(root.length + 1 + String(i).length + 1);
        } else {
          outcome = 'bad';
          message = e instanceof Error ? `${e.name}: ${e.message} ${e.stack?.split('\n')[1]?.trim() ?? ''}` : String(e);
        }
      }
      process.stdout.write(`${JSON.stringify({ i, outcome, message, ms: Date.now() - t0 } satisfies Outcome)}\n`);
      fs.rmSync(dir, { recursive: true, force: true });
    });
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

if (process.env.ATTEND_FUZZ_CHILD) {
  await child(process.env.ATTEND_FUZZ_CHILD);
} else {
  test(`fuzzed model files: each case a valid load or a one-line AttendError (seed ${SEED}, ${Object.values(CASES).reduce((a, b) => a + b)} cases)`, () => {
    const cases = generateCases();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-fuzz-'));
    try {
      const casesFile = path.join(tmp, 'cases.json');
      fs.writeFileSync(casesFile, JSON.stringify(cases));
      const r = spawnSync(process.execPath, ['--import', 'tsx', HERE], {
        env: { ...process.env, ATTEND_FUZZ_CHILD: casesFile },
        encoding: 'utf8',
        timeout: RUN_GUARD_MS,
        killSignal: 'SIGKILL',
        maxBuffer: 64 << 20,
      });
      const lines = r.stdout.split('\n').filter(Boolean);
      const started = lines.filter((l) => l.startsWith('start ')).map((l) => Number(l.slice(6)));
      const results = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Outcome);
      const last = started.at(-1);
      const unfinished = last !== undefined && !results.some((o) => o.i === last) ? `case ${last} (${cases[last].what}) started and never finished` : '';
      assert.equal(r.signal, null, `the fuzz child died by ${r.signal}; ${unfinished} ${r.stderr.slice(-2000)}`);
      assert.equal(r.status, 0, `the fuzz child exited ${r.status}; ${unfinished} ${r.stderr.slice(-2000)}`);
      assert.equal(results.length, cases.length, `${results.length} of ${cases.length} cases reported; ${unfinished}`);

      const bad = results.filter((o) => o.outcome === 'bad').map((o) => `${cases[o.i].what} -> ${o.message}`);
      assert.deepEqual(bad, [], `cases that were neither a valid load nor a one-line AttendError:\n${bad.join('\n')}`);
      const slow = results.filter((o) => o.ms > CASE_GUARD_MS).map((o) => `${cases[o.i].what}: ${o.ms} ms`);
      assert.deepEqual(slow, [], 'cases past the hang guard');

      // The tally, for docs/reliability.md (ATTEND_FUZZ_REPORT=1 prints it).
      const tally: Record<string, { ok: number; error: number }> = {};
      for (const o of results) {
        const t = (tally[cases[o.i].kind] ??= { ok: 0, error: 0 });
        t[o.outcome as 'ok' | 'error']++;
      }
      if (process.env.ATTEND_FUZZ_REPORT) {
        console.log(JSON.stringify(tally));
        const kinds = new Map<string, number>();
        for (const o of results.filter((x) => x.outcome === 'error')) {
          const key = o.message.replace(/\d[\d,.e+-]*/g, 'N').replace(/"[^"]*"/g, '"…"').slice(0, 90);
          kinds.set(key, (kinds.get(key) ?? 0) + 1);
        }
        for (const [k, n] of [...kinds].sort((a, b) => b[1] - a[1])) console.log(n, k);
        console.log('max ms', Math.max(...results.map((o) => o.ms)));
      }
      // Both outcomes occur for every kind, so the fuzz exercises the valid path as well as the refusals.
      for (const [kind, t] of Object.entries(tally)) assert.ok(t.ok > 0 && t.error > 0, `${kind}: ${JSON.stringify(t)}`);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
}
