/**
 * Query statistics for `--press expected-attention-stats`, computed with Attend itself (no torch): the
 * pre-RoPE queries of every layer over a text, after each sample's first n-sink, their mean and covariance
 * (divided by N − 1), written in kvpress's ExpectedAttentionStats format (src/presses/expected-attention.ts).
 * As kvpress's collect_queries, the text is cut into samples of --sample-chars characters, each tokenized with
 * the model's tokenizer (special tokens added) and run on its own. kvpress's own statistics (a bf16 model over
 * kmfoda/booksum): make_expected_attention_stats.py beside this file.
 *
 *   node --import tsx tools/press_stats/attend_query_stats.ts --model DIR --text FILE --out PATH \
 *       [--n-sink 4] [--samples 100] [--sample-chars 1000]
 *
 * PATH ending in .safetensors: one file; otherwise a folder (model.safetensors + config.json), as
 * ExpectedAttentionStats.save_pretrained writes it. Either is what `--press-opt stats=PATH` takes.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { loadModel } from '../../src/models/load.js';
import { collectQueryStatistics, writeQueryStatistics } from '../../src/presses/expected-attention.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    text: { type: 'string' },
    out: { type: 'string' },
    'n-sink': { type: 'string', default: '4' },
    samples: { type: 'string', default: '100' },
    'sample-chars': { type: 'string', default: '1000' },
  },
});
if (!values.model || !values.text || !values.out) {
  process.stderr.write('usage: attend_query_stats.ts --model DIR --text FILE --out PATH [--n-sink 4] [--samples 100] [--sample-chars 1000]\n');
  process.exit(2);
}
const nSink = Number(values['n-sink']);
const count = Number(values.samples);
const chars = Number(values['sample-chars']);
const lm = loadModel(values.model);
const text = readFileSync(values.text, 'utf8');
const samples: number[][] = [];
for (let at = 0; at < text.length && samples.length < count; at += chars) samples.push(lm.tokenizer.encode(text.slice(at, at + chars)));
const stats = collectQueryStatistics(lm.model, samples, nSink);
const file = writeQueryStatistics(values.out, stats, {
  model_name: basename(values.model.replace(/\/+$/, '')),
  dataset_name: basename(values.text),
  num_samples: samples.length,
  sample_seq_len: chars,
  n_sink: nSink,
});
process.stdout.write(`wrote ${file}: ${stats.layers} layers × ${stats.heads} heads × head_dim ${stats.headDim}, ${samples.length} samples\n`);
