/**
 * TextTokenizer on two hand-built tokenizers: a GPT-2-style byte-level BPE and a Llama-2-style byte-fallback
 * Metaspace BPE (with transformers' clean-up of spaces on). Covers encode/decode, special tokens, chat templates
 * and the stream decoder (never a broken character; pushes + flush == decode(all)). Then, when they exist, the
 * transformers-made fixtures under test/fixtures/parity/*.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TextTokenizer, type ChatMessage } from '../../src/io/tokenizer.js';
import { AttendError } from '../../src/errors.js';
import { Random } from '../../src/generate/random.js';

let root: string;
before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-tok-'));
});
after(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function modelDir(files: Record<string, unknown>): string {
  const d = fs.mkdtempSync(path.join(root, 'm-'));
  for (const [name, content] of Object.entries(files)) {
    fs.writeFileSync(path.join(d, name), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return d;
}

/** GPT-2's byte → printable-char table. */
function bytesToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const table: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCodePoint(keep.includes(b) ? b : 256 + n++);
  return table;
}

/** Adds `word` to a BPE vocab with left-to-right merges building it from its characters. */
function addWord(vocab: Record<string, number>, merges: [string, string][], word: string): void {
  const chars = Array.from(word);
  let acc = chars[0];
  for (const c of chars.slice(1)) {
    if (!(acc + c in vocab)) {
      merges.push([acc, c]);
      vocab[acc + c] = Object.keys(vocab).length;
    }
    acc += c;
  }
}

const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });

/** Byte-level BPE: 256 byte tokens, a few words, special tokens at 300+, BOS added by the post-processor. */
function byteLevelTokenizer() {
  const bytes = bytesToUnicode();
  const vocab: Record<string, number> = {};
  bytes.forEach((c, i) => (vocab[c] = i));
  const merges: [string, string][] = [];
  const enc = (s: string) => Array.from(new TextEncoder().encode(s), (b) => bytes[b]).join('');
  for (const w of ['hello', ' hello', ' world', 'é', ' the', 'Hi']) addWord(vocab, merges, enc(w));
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [special(300, '<|bos|>'), special(301, '<|eos|>'), special(302, '<|user|>'), special(303, '<|assistant|>'), special(304, '<|pad|>'),
      { ...special(305, '<tool>'), special: false }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|bos|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<|bos|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<|bos|>': { id: '<|bos|>', ids: [300], tokens: ['<|bos|>'] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
}

const TEMPLATE = "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}" +
  "<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";

const byteLevelConfig = {
  bos_token: '<|bos|>',
  eos_token: { __type: 'AddedToken', content: '<|eos|>', lstrip: false, normalized: false, rstrip: false, single_word: false },
  pad_token: '<|pad|>',
  additional_special_tokens: ['<|user|>', { content: '<|assistant|>' }],
  chat_template: TEMPLATE,
};

/** Llama-2 style: "▁" for spaces, byte-fallback tokens <0x00>..<0xFF>, Strip of the first space on decode. */
function metaspaceTokenizer() {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  for (const c of '▁abcdefghijklmnopqrstuvwxyzH.\',!') vocab[c] = Object.keys(vocab).length;
  const merges: [string, string][] = [];
  for (const w of ['▁Hello', '▁world', '▁don', "'t", '▁it', "'s", '▁.', '▁n']) addWord(vocab, merges, w);
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [
      { id: 0, content: '<unk>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      special(1, '<s>'), special(2, '</s>'),
    ],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: { type: 'Sequence', decoders: [
      { type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
      { type: 'Strip', content: ' ', start: 1, stop: 0 },
    ] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges },
  };
}

/**
 * Pushes every id and returns the pieces joined. For valid text (`whole`), also checks that no piece holds a
 * broken character; random ids may hold genuinely invalid bytes, which decode as U+FFFD too.
 */
function streamAll(tok: TextTokenizer, ids: number[], skipSpecialTokens = false, whole = true): string {
  const s = tok.streamDecoder({ skipSpecialTokens });
  let out = '';
  for (const id of ids) {
    const piece = s.push(id);
    if (whole) assert.ok(!piece.includes('\ufffd'), `stream emitted a broken character after id ${id}: ${JSON.stringify(piece)}`);
    out += piece;
  }
  return out + s.flush();
}

describe('byte-level BPE', () => {
  let tok: TextTokenizer;
  before(() => {
    tok = TextTokenizer.load(modelDir({ 'tokenizer.json': byteLevelTokenizer(), 'tokenizer_config.json': byteLevelConfig }));
  });

  test('special tokens and vocab size', () => {
    assert.equal(tok.bosTokenId, 300);
    assert.deepEqual(tok.eosTokenIds, [301]);
    assert.equal(tok.padTokenId, 304);
    assert.equal(tok.vocabSize, 306);
    assert.equal(tok.tokenToId('<|user|>'), 302);
    assert.equal(tok.idToToken(301), '<|eos|>');
    assert.equal(tok.tokenToId('nope'), undefined);
    assert.equal(tok.idToToken(999), undefined);
    assert.equal(tok.cleanUpSpaces, false);
  });

  test('encode applies merges and adds BOS by default', () => {
    const ids = tok.encode('hello world');
    assert.equal(ids[0], 300);
    assert.deepEqual(ids.slice(1).map((i) => tok.idToToken(i)), ['hello', 'Ġworld']);
    assert.deepEqual(tok.encode('hello world', { addSpecialTokens: false }), ids.slice(1));
    assert.deepEqual(tok.encode('', { addSpecialTokens: true }), [300]);
    assert.deepEqual(tok.encode('', { addSpecialTokens: false }), []);
  });

  test('special tokens in text are matched whole', () => {
    const ids = tok.encode('<|user|>Hi<|eos|>', { addSpecialTokens: false });
    assert.deepEqual(ids.map((i) => tok.idToToken(i)), ['<|user|>', 'Hi', '<|eos|>']);
  });

  test('decode round-trips any text, keeps or skips special tokens, ignores unknown ids', () => {
    for (const text of ['hello world', 'héllo 😀 wörld', '  spaces\tand\nnewlines  ', '日本語', '']) {
      assert.equal(tok.decode(tok.encode(text)), text === '' ? '<|bos|>' : `<|bos|>${text}`);
      assert.equal(tok.decode(tok.encode(text), { skipSpecialTokens: true }), text);
    }
    assert.equal(tok.decode([]), '');
    assert.equal(tok.decode([300, 99999, 72]), '<|bos|>H');
    // A non-special added token survives skipSpecialTokens.
    assert.equal(tok.decode([300, 305, 301], { skipSpecialTokens: true }), '<tool>');
  });

  test('stream decoder never emits a broken character and matches decode', () => {
    for (const text of ['héllo 😀', '😀😀 a😀b 🇫🇷 é', 'hello world the hello world '.repeat(5) + '∑x²', '<|user|>Hi 👋<|eos|>']) {
      const ids = tok.encode(text);
      assert.ok(ids.length > 3);
      assert.equal(streamAll(tok, ids), tok.decode(ids));
      assert.equal(streamAll(tok, ids, true), tok.decode(ids, { skipSpecialTokens: true }));
    }
    // Emoji bytes come out only once the character is complete.
    const emoji = tok.encode('😀', { addSpecialTokens: false });
    assert.equal(emoji.length, 4);
    const s = tok.streamDecoder();
    assert.deepEqual(emoji.map((id) => s.push(id)), ['', '', '', '😀']);
    assert.equal(s.flush(), '');
  });

  test('stream decoder flushes an incomplete character as U+FFFD, like decode', () => {
    const ids = tok.encode('a😀', { addSpecialTokens: false }).slice(0, 3);
    const s = tok.streamDecoder();
    assert.equal(ids.map((id) => s.push(id)).join(''), 'a');
    assert.equal(s.flush(), '\ufffd');
    assert.equal(tok.decode(ids), 'a\ufffd');
  });

  test('stream decoder on random ids (including invalid byte sequences) matches decode', () => {
    const rng = new Random(7);
    const rand = () => rng.next();
    for (let trial = 0; trial < 20; trial++) {
      const ids = Array.from({ length: 80 }, () => Math.floor(rand() * 306));
      assert.equal(streamAll(tok, ids, false, false), tok.decode(ids));
    }
  });

  test('chat template renders with special tokens and the generation prompt', () => {
    const messages: ChatMessage[] = [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'hello' }, { role: 'user', content: 'the world' }];
    assert.equal(tok.chatTemplate, TEMPLATE);
    assert.equal(tok.applyChatTemplate(messages), '<|bos|><|user|>Hi<|eos|><|assistant|>hello<|eos|><|user|>the world<|eos|>');
    const prompt = tok.applyChatTemplate(messages, { addGenerationPrompt: true });
    assert.ok(prompt.endsWith('<|eos|><|assistant|>'));
    // encodeChat == encode(rendered, no special tokens): exactly one BOS, the template's.
    const ids = tok.encodeChat(messages, { addGenerationPrompt: true });
    assert.deepEqual(ids, tok.encode(prompt, { addSpecialTokens: false }));
    assert.equal(ids.filter((i) => i === 300).length, 1);
    assert.equal(ids[0], 300);
    assert.equal(ids.at(-1), 303);
  });

  test('raise_exception in a template becomes a one-line AttendError', () => {
    assert.throws(() => tok.applyChatTemplate([{ role: 'system', content: 'x' }]), (e: unknown) =>
      e instanceof AttendError && /tokenizer_config\.json: chat template 'default' failed: .*System role not supported/.test(e.message) && !e.message.includes('\n'));
  });

  test('extra variables and tools reach the template', () => {
    const d = modelDir({
      'tokenizer.json': byteLevelTokenizer(),
      'tokenizer_config.json': { ...byteLevelConfig, chat_template: '{% if tools is none %}no tools{% else %}{{ tools | length }} tools{% endif %}|{{ greeting }}|{{ pad_token }}|{{ additional_special_tokens | join(",") }}' },
    });
    const t = TextTokenizer.load(d);
    assert.equal(t.applyChatTemplate([], { extra: { greeting: 'hey' } }), 'no tools|hey|<|pad|>|<|user|>,<|assistant|>');
    assert.equal(t.applyChatTemplate([], { extra: { tools: [{}, {}] } }), '2 tools||<|pad|>|<|user|>,<|assistant|>');
  });
});

describe('chat template sources', () => {
  const base = () => ({ 'tokenizer.json': byteLevelTokenizer() });

  test('no template: AttendError on use', () => {
    const t = TextTokenizer.load(modelDir(base()));
    assert.equal(t.chatTemplate, undefined);
    assert.equal(t.bosTokenId, undefined);
    assert.deepEqual(t.eosTokenIds, []);
    assert.throws(() => t.applyChatTemplate([{ role: 'user', content: 'x' }]), (e: unknown) => e instanceof AttendError && /has no chat template/.test(e.message));
  });

  test('a list of named templates: default is used, others by name', () => {
    const t = TextTokenizer.load(modelDir({ ...base(), 'tokenizer_config.json': { chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }] } }));
    assert.equal(t.chatTemplate, 'D');
    assert.equal(t.applyChatTemplate([]), 'D');
    assert.equal(t.applyChatTemplate([], { templateName: 'tool_use' }), 'T');
    assert.throws(() => t.applyChatTemplate([], { templateName: 'x' }), /no chat template named 'x' \(have: tool_use, default\)/);
  });

  test('chat_template.jinja wins over tokenizer_config; chat_template.json is a fallback', () => {
    const t = TextTokenizer.load(modelDir({ ...base(), 'tokenizer_config.json': { chat_template: 'config' }, 'chat_template.jinja': 'file {{ messages | length }}\n' }));
    // As in Python's jinja (keep_trailing_newline=False), one trailing newline is dropped.
    assert.equal(t.applyChatTemplate([{ role: 'user', content: 'x' }]), 'file 1');
    assert.throws(() => t.applyChatTemplate([], { templateName: 'nope' }), /chat_template\.jinja: no chat template named 'nope'/);
    const j = TextTokenizer.load(modelDir({ ...base(), 'chat_template.json': { chat_template: 'json' } }));
    assert.equal(j.chatTemplate, 'json');
  });

  test('a syntax error in the template is a one-line AttendError', () => {
    const t = TextTokenizer.load(modelDir({ ...base(), 'tokenizer_config.json': { chat_template: '{% for m in messages %}\n{{ m' } }));
    assert.throws(() => t.applyChatTemplate([]), (e: unknown) => e instanceof AttendError && /chat template 'default' is malformed/.test(e.message) && !e.message.includes('\n'));
  });

  test('an unclosed block says the template is malformed (not the parser\'s TypeError)', () => {
    for (const template of ['{% for m in messages %}{{ m.content }}', '{% if messages %}x', '{% for m in messages %}{% if m %}{% endfor %}']) {
      const t = TextTokenizer.load(modelDir({ ...base(), 'tokenizer_config.json': { chat_template: template } }));
      assert.throws(() => t.applyChatTemplate([{ role: 'user', content: 'x' }]), (e: unknown) =>
        e instanceof AttendError && /chat template 'default' is malformed: /.test(e.message) && !/Cannot read properties/.test(e.message) && !e.message.includes('\n'),
      template);
    }
  });

  test('chat_template.jinja that is a directory is a one-line AttendError naming it', () => {
    const d = modelDir(base());
    fs.mkdirSync(path.join(d, 'chat_template.jinja'));
    assert.throws(() => TextTokenizer.load(d), (e: unknown) =>
      e instanceof AttendError && e.message.startsWith(path.join(d, 'chat_template.jinja')) && /not a file/.test(e.message) && !e.message.includes('\n'));
  });
});

describe('chat template limits', () => {
  const withTemplate = (template: string) =>
    TextTokenizer.load(modelDir({ 'tokenizer.json': byteLevelTokenizer(), 'tokenizer_config.json': { chat_template: template } }));
  const hi: ChatMessage[] = [{ role: 'user', content: 'hi' }];
  const limitError = (limit: RegExp) => (e: unknown) => e instanceof AttendError && limit.test(e.message) && !e.message.includes('\n');

  test('a loop of 100M steps stops at the step limit (was: 45 s, 5 GB, abort)', () => {
    assert.throws(() => withTemplate('{% for i in range(100000000) %}{% endfor %}hi').applyChatTemplate(hi),
      limitError(/chat template 'default': rendering stopped at the step limit of 202,000 template steps \(TEMPLATE_STEP_LIMIT/));
    // A loop inside the range but over the budget stops the same way.
    assert.throws(() => withTemplate('{% for i in range(150000) %}{% for j in range(2) %}{% endfor %}{% endfor %}').applyChatTemplate(hi),
      limitError(/step limit/));
  });

  test('output past the limit stops, however it is built (was: 9M characters, 35 s, 1.9 GB)', () => {
    assert.throws(() => withTemplate('{% for i in range(150000) %}xxxxxxxxxxxxxxxxxxxx{% endfor %}').applyChatTemplate(hi),
      limitError(/rendering stopped at the output limit of [\d,]+ characters \(TEMPLATE_MARKUP_CHARS/));
    const doubling = "{% set ns = namespace(s='abcdefgh') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}";
    assert.throws(() => withTemplate(doubling).applyChatTemplate(hi), limitError(/output limit/));
    assert.throws(() => withTemplate("{{ 'a'|indent(300000000, true) }}").applyChatTemplate(hi), limitError(/output limit/));
  });

  test('one library call that exhausts the renderer\'s memory is an error, and the next render works', () => {
    const t = withTemplate('{% set r = range(100000) %}{{ [r, r, r, r, r, r]|tojson(indent=1000) }}');
    assert.throws(() => t.applyChatTemplate(hi), limitError(/rendering stopped at the memory limit of 256 MB \(TEMPLATE_HEAP_LIMIT_MB/));
    assert.equal(withTemplate('{{ messages[0].content }}').applyChatTemplate(hi), 'hi');
  });

  test('a long conversation with a real-sized template is well inside the limits', () => {
    const t = withTemplate("{% for m in messages %}{% if m.role == 'user' %}<|user|>{% else %}<|assistant|>{% endif %}{{ m.content | trim }}<|eos|>{% endfor %}" +
      '{% if add_generation_prompt %}<|assistant|>{% endif %}');
    const long = 'word '.repeat(20_000);
    const messages: ChatMessage[] = Array.from({ length: 2000 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: i === 0 ? long : `turn ${i}` }));
    const out = t.applyChatTemplate(messages, { addGenerationPrompt: true });
    assert.ok(out.startsWith(`<|user|>${long.trim()}<|eos|>`));
    assert.ok(out.endsWith('<|user|>turn 1998<|eos|><|assistant|>turn 1999<|eos|><|assistant|>'));
  });

  test('variables that are not plain data are refused in one line', () => {
    const t = withTemplate('{{ x }}');
    assert.throws(() => t.applyChatTemplate([], { extra: { x: 10n } }), limitError(/template variables must be plain JSON data/));
  });
});

describe('load errors', () => {
  test('missing tokenizer.json, and only a sentencepiece model', () => {
    const d = modelDir({});
    assert.throws(() => TextTokenizer.load(d), (e: unknown) => e instanceof AttendError && e.message.startsWith(path.join(d, 'tokenizer.json')) && /not found/.test(e.message));
    const s = modelDir({ 'tokenizer.model': 'x' });
    assert.throws(() => TextTokenizer.load(s), /only has a sentencepiece tokenizer\.model/);
  });
  test('invalid JSON names the file', () => {
    assert.throws(() => TextTokenizer.load(modelDir({ 'tokenizer.json': '{"model": ' })), (e: unknown) => e instanceof AttendError && /tokenizer\.json: not valid JSON/.test(e.message));
    assert.throws(() => TextTokenizer.load(modelDir({ 'tokenizer.json': byteLevelTokenizer(), 'tokenizer_config.json': '{,}' })),
      (e: unknown) => e instanceof AttendError && /tokenizer_config\.json: not valid JSON/.test(e.message));
    assert.throws(() => TextTokenizer.load(modelDir({ 'tokenizer.json': '[]' })), /tokenizer\.json: not a tokenizer/);
  });
  test('a tokenizer model type the library does not implement is refused (it used to tokenise to garbage)', () => {
    const { vocab } = byteLevelTokenizer().model;
    for (const type of ['WordLevel', 'Martian', undefined]) {
      const model = { type, vocab, unk_token: '<unk>' };
      assert.throws(() => TextTokenizer.load(modelDir({ 'tokenizer.json': { ...byteLevelTokenizer(), model } })), (e: unknown) =>
        e instanceof AttendError && /tokenizer\.json: tokenizer model type .* is not supported \(supported: BPE, WordPiece, Unigram\)/.test(e.message), String(type));
    }
  });

  test('a vocabulary of the wrong shape is refused (a list where a map is expected, and the reverse)', () => {
    const bpe = byteLevelTokenizer();
    const listVocab = Object.entries(bpe.model.vocab).map(([token]) => [token, 0]);
    const cases: [unknown, RegExp][] = [
      [{ ...bpe.model, vocab: listVocab }, /a BPE tokenizer's "model\.vocab" must be an object mapping tokens to ids, not a list/],
      [{ ...bpe.model, vocab: { a: 0, b: 'x' } }, /"model\.vocab" maps "b" to "x", expected a token id/],
      [{ ...bpe.model, vocab: { a: 0, b: -1 } }, /"model\.vocab" maps "b" to -1/],
      [{ ...bpe.model, merges: [1, 2] }, /"model\.merges" must be a list/],
      [{ type: 'WordPiece', vocab: [['a', 0]], unk_token: '[UNK]', continuing_subword_prefix: '##' }, /WordPiece tokenizer's "model\.vocab" must be an object/],
      [{ type: 'Unigram', vocab: { a: 0 }, unk_id: 0 }, /a Unigram tokenizer's "model\.vocab" must be a non-empty list of \[token, score\] pairs/],
      [{ type: 'Unigram', vocab: [['a', 0]], unk_id: 5 }, /"model\.unk_id" 5 is not an index/],
    ];
    for (const [model, pattern] of cases) {
      assert.throws(() => TextTokenizer.load(modelDir({ 'tokenizer.json': { ...bpe, model } })), (e: unknown) =>
        e instanceof AttendError && pattern.test(e.message) && !e.message.includes('\n'), String(pattern));
    }
    // A valid Unigram loads and encodes.
    const unigram = { ...bpe, pre_tokenizer: null, decoder: null, post_processor: null, model: { type: 'Unigram', unk_id: 0, vocab: [['<unk>', 0], ['ab', -1], ['a', -2], ['b', -2]] } };
    assert.deepEqual(TextTokenizer.load(modelDir({ 'tokenizer.json': unigram })).encode('ab'), [1]);
  });

  test('added token ids are bounded (an id of 1e9 took 80 s to load) and typed', () => {
    const bpe = byteLevelTokenizer();
    const cases: [unknown, RegExp][] = [
      [[special(1e9, '<big>')], /"added_tokens"\[0\] has id 1000000000, expected a token id below 16777216/],
      [[special(-1, '<neg>')], /"added_tokens"\[0\] has id -1/],
      [[{ id: 3 }], /"added_tokens"\[0\] must be an object with a string "content"/],
      [7, /"added_tokens" must be a list/],
    ];
    for (const [added_tokens, pattern] of cases) {
      assert.throws(() => TextTokenizer.load(modelDir({ 'tokenizer.json': { ...bpe, added_tokens } })), (e: unknown) =>
        e instanceof AttendError && /tokenizer\.json: /.test(e.message) && pattern.test(e.message), String(pattern));
    }
  });

  test('JSON errors are one line, without the file\'s text', () => {
    const d = modelDir({ 'tokenizer.json': '{\n  "model": {\n    "type": x\n  }\n}\n' });
    assert.throws(() => TextTokenizer.load(d), (e: unknown) => e instanceof AttendError && /tokenizer\.json: not valid JSON/.test(e.message) && !e.message.includes('\n'));
  });

  test('an unsupported component names the file', () => {
    const bad = { ...byteLevelTokenizer(), decoder: { type: 'Martian' } };
    assert.throws(() => TextTokenizer.load(modelDir({ 'tokenizer.json': bad })), (e: unknown) =>
      e instanceof AttendError && /tokenizer\.json: unsupported or malformed tokenizer \(Unknown Decoder type: Martian\)/.test(e.message));
  });
});

describe('metaspace BPE with byte fallback and clean-up', () => {
  let tok: TextTokenizer;
  before(() => {
    tok = TextTokenizer.load(modelDir({
      'tokenizer.json': metaspaceTokenizer(),
      'tokenizer_config.json': { bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', clean_up_tokenization_spaces: true },
    }));
  });

  test('encode prepends ▁ and BOS; unknown characters fall back to bytes', () => {
    const ids = tok.encode('Hello world');
    assert.deepEqual(ids.map((i) => tok.idToToken(i)), ['<s>', '▁Hello', '▁world']);
    const e = tok.encode('é', { addSpecialTokens: false }).map((i) => tok.idToToken(i));
    assert.deepEqual(e, ['▁', '<0xC3>', '<0xA9>']);
  });

  test('decode strips the leading space and cleans up spaces before punctuation', () => {
    assert.equal(tok.cleanUpSpaces, true);
    const ids = tok.encode('Hello world .');
    assert.deepEqual(ids.map((i) => tok.idToToken(i)), ['<s>', '▁Hello', '▁world', '▁.']);
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), 'Hello world.');
    assert.equal(tok.decode(ids), '<s> Hello world.');
  });

  test('a stream prefix gives the first token its leading space', () => {
    const prompt = tok.encode('Hello');
    const generated = tok.encode(' world', { addSpecialTokens: false }).slice(1); // drop the prepended lone ▁
    assert.deepEqual(generated.map((i) => tok.idToToken(i)), ['▁world']);
    assert.equal(streamAll(tok, generated), 'world');
    assert.equal(tok.decode(generated), 'world');
    const s = tok.streamDecoder({ prefix: prompt });
    assert.equal(generated.map((id) => s.push(id)).join('') + s.flush(), ' world');
  });

  test('stream decoder matches decode through clean-up and byte fallback', () => {
    const texts = ["Hello world . it 's don 't é😀 n't , !", 'a . b ? c ! d , e \' f', '😀 . 😀', ' . . . '];
    for (const text of texts) {
      const ids = tok.encode(text);
      assert.equal(streamAll(tok, ids), tok.decode(ids));
      assert.equal(streamAll(tok, ids, true), tok.decode(ids, { skipSpecialTokens: true }));
    }
    const rng = new Random(3);
    const rand = () => rng.next();
    const pool = [...Array(tok.vocabSize).keys()];
    for (let trial = 0; trial < 30; trial++) {
      const ids = Array.from({ length: 60 }, () => pool[Math.floor(rand() * pool.length)]);
      assert.equal(streamAll(tok, ids, false, false), tok.decode(ids));
    }
  });
});

// Fixtures made by transformers (another helper writes them); each dir has tokenizer files and reference.json.
const parityRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'parity');
const parityDirs = fs.existsSync(parityRoot)
  ? fs.readdirSync(parityRoot).map((d) => path.join(parityRoot, d)).filter((d) => fs.existsSync(path.join(d, 'reference.json')) && fs.existsSync(path.join(d, 'tokenizer.json')))
  : [];

describe('parity with transformers fixtures', { skip: parityDirs.length === 0 ? 'no fixtures under test/fixtures/parity' : false }, () => {
  for (const dir of parityDirs) {
    test(path.basename(dir), () => {
      const ref = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8'));
      const tok = TextTokenizer.load(dir);
      const vocabSize = ref.config?.vocab_size;
      if (typeof vocabSize === 'number') assert.equal(tok.vocabSize, vocabSize, 'vocabSize');
      for (const [token, id] of Object.entries(ref.special_tokens ?? {})) assert.equal(tok.tokenToId(token), id, `id of ${token}`);
      if (ref.text) {
        const t = ref.text;
        assert.deepEqual(tok.encode(t.prompt), t.ids, 'encode(prompt)');
        if (t.ids_no_special_tokens) assert.deepEqual(tok.encode(t.prompt, { addSpecialTokens: false }), t.ids_no_special_tokens, 'encode(prompt, no special)');
        if (t.bos_added_by_post_processor !== undefined) assert.equal(t.ids[0] === tok.bosTokenId, t.bos_added_by_post_processor, 'BOS added');
        assert.equal(tok.decode(t.ids), t.decoded, 'decode(ids)');
        if (t.decoded_skip_special_tokens !== undefined) assert.equal(tok.decode(t.ids, { skipSpecialTokens: true }), t.decoded_skip_special_tokens, 'decode(ids, skip)');
        assert.equal(streamAll(tok, t.ids), t.decoded, 'stream');
        assert.equal(streamAll(tok, t.ids, true), tok.decode(t.ids, { skipSpecialTokens: true }), 'stream, skip');
      }
      if (ref.chat) {
        const c = ref.chat;
        const addGenerationPrompt = c.add_generation_prompt ?? true;
        assert.equal(tok.applyChatTemplate(c.messages, { addGenerationPrompt }), c.rendered, 'chat template');
        if (c.rendered_without_generation_prompt !== undefined) {
          assert.equal(tok.applyChatTemplate(c.messages, { addGenerationPrompt: false }), c.rendered_without_generation_prompt, 'chat template without generation prompt');
        }
        assert.deepEqual(tok.encodeChat(c.messages, { addGenerationPrompt }), c.ids, 'encodeChat');
        if (c.apply_chat_template_tokenize_ids) assert.deepEqual(tok.encodeChat(c.messages, { addGenerationPrompt }), c.apply_chat_template_tokenize_ids, 'apply_chat_template(tokenize=True)');
      } else {
        assert.equal(tok.chatTemplate, undefined, 'no chat template');
      }
    });
  }
});
