/**
 * The peer for the model benchmark: a Llama decoder written out as an ONNX graph, from the same checkpoint Attend
 * loads (bf16/f16 widened to f32), for onnxruntime-node's CPU execution provider. It is laid out the way an
 * optimised transformers.js / onnxruntime-genai export is, with onnxruntime's fused contrib ops:
 *
 * - Gather (embedding) → per layer: SimplifiedLayerNormalization / SkipSimplifiedLayerNormalization (residual add
 *   fused into the next norm), one MatMul for q|k|v stacked, attention, MatMul (o), SkipSimplifiedLayerNorm,
 *   MatMul (gate|up stacked), Split, Sigmoid·Mul·Mul (SwiGLU), MatMul (down) → final norm → MatMul (lm head).
 * - attention 'gqa' (default): com.microsoft GroupQueryAttention on the packed q|k|v rows, RoPE inside the op
 *   (do_rotary, cos/sin caches as initializers), past/present caches BNSH [1, kvHeads, P, headDim].
 * - attention 'ops': standard ops — com.microsoft RotaryEmbedding on q and k, Reshape/Transpose, Concat onto the
 *   past, MatMul for scores with the query heads of each KV group stacked (no repeated K/V), an additive causal
 *   mask (Range/Greater/Where/Tile), Softmax, MatMul with values.
 *
 * Inputs: `input_ids` int64 [1, T], `past_key_i` / `past_value_i` f32 [1, kvHeads, P, headDim] (P may be 0).
 * Positions are P…P+T−1, derived in the graph from the shapes. Outputs: `logits` f32 [1, T, vocab] (or [1, 1,
 * vocab] with lastOnly) and `present_key_i` / `present_value_i` [1, kvHeads, P+T, headDim]. Weights are f32
 * initializers, Linear weights transposed to [in, out] as torch.onnx exports them. The cos/sin tables are Attend's
 * own (attention/rope.ts), so both runtimes rotate by the same numbers.
 */
import { join } from 'node:path';
import { inverseFrequencies, ropeTables } from '../attention/rope.js';
import { SafetensorsArchive } from '../io/safetensors.js';
import type { ModelConfig } from '../models/config.js';
import { readModelConfig } from '../models/families.js';
import { Proto } from './protobuf.js';

type Ort = typeof import('onnxruntime-node');
type OrtSession = import('onnxruntime-node').InferenceSession;
type OrtTensor = import('onnxruntime-node').Tensor;

// ---------------------------------------------------------------------------------------------------------------
// Protobuf writer (the few wire kinds ONNX needs). Nested messages keep their parts, so the weights are copied
// once, into the final buffer.


/** TensorProto.DataType values used here. */
const DT = { FLOAT: 1, INT32: 6, INT64: 7 } as const;

type Dim = number | string;
type AttrValue = number | { f: number } | number[] | string;

/** Builds one GraphProto: nodes with unique output names, initializers, inputs and outputs. */
class GraphBuilder {
  private readonly graph = new Proto();
  private readonly inits = new Proto();
  private readonly io = new Proto();
  private count = 0;

  /** A fresh value name. */
  name(hint: string): string {
    return `${hint}_${this.count++}`;
  }

  /**
   * Adds a node; returns its output names (fresh names for numbers/hints, '' kept for skipped optional outputs).
   * Integer attributes are `number`, floats `{ f }`, int lists `number[]`, strings `string`.
   */
  node(op: string, inputs: string[], outputs: string[] | number, attrs: Record<string, AttrValue> = {}, domain = ''): string[] {
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, () => this.name(op)) : outputs;
    const n = new Proto();
    for (const i of inputs) n.string(1, i);
    for (const o of outs) n.string(2, o);
    n.string(3, this.name(`${op}_node`)).string(4, op);
    for (const [key, v] of Object.entries(attrs)) {
      const a = new Proto().string(1, key);
      if (typeof v === 'number') a.int(3, v).int(20, 2);
      else if (typeof v === 'string') a.string(4, v).int(20, 3);
      else if (Array.isArray(v)) {
        for (const x of v) a.int(8, x);
        a.int(20, 7);
      } else a.float(2, v.f).int(20, 1);
      n.message(5, a);
    }
    if (domain) n.string(7, domain);
    this.graph.message(1, n);
    return outs;
  }

  /** One output of a node. */
  op(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, domain = ''): string {
    return this.node(op, inputs, 1, attrs, domain)[0];
  }

  private initializer(name: string, dims: number[], type: number, raw: Uint8Array): string {
    const t = new Proto();
    for (const d of dims) t.int(1, d);
    t.int(2, type).string(8, name).bytes(9, raw);
    this.inits.message(5, t);
    return name;
  }

  f32(hint: string, data: Float32Array, dims: number[]): string {
    return this.initializer(this.name(hint), dims, DT.FLOAT, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }

  i64(hint: string, values: number[], dims: number[] = [values.length]): string {
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    return this.initializer(this.name(hint), dims, DT.INT64, new Uint8Array(data.buffer));
  }

  private valueInfo(name: string, type: number, dims: Dim[]): Proto {
    const shape = new Proto();
    for (const d of dims) shape.message(1, typeof d === 'number' ? new Proto().int(1, d) : new Proto().string(2, d));
    const tensor = new Proto().int(1, type).message(2, shape);
    return new Proto().string(1, name).message(2, new Proto().message(1, tensor));
  }

  input(name: string, type: number, dims: Dim[]): string {
    this.io.message(11, this.valueInfo(name, type, dims));
    return name;
  }

  output(name: string, type: number, dims: Dim[]): void {
    this.io.message(12, this.valueInfo(name, type, dims));
  }

  /** ModelProto bytes with the ONNX opset 17 and com.microsoft opset 1. */
  model(graphName: string): Uint8Array {
    // A GraphProto's fields may come in any order: nodes, then name, initializers, inputs and outputs.
    const graph = new Proto().append(this.graph).string(2, graphName).append(this.inits).append(this.io);
    return new Proto()
      .int(1, 8) // ir_version
      .string(2, 'attend-bench')
      .message(7, graph)
      .message(8, new Proto().string(1, '').int(2, 17))
      .message(8, new Proto().string(1, 'com.microsoft').int(2, 1))
      .finish();
  }
}

// ---------------------------------------------------------------------------------------------------------------

export type OnnxAttention = 'gqa' | 'ops';

export interface OnnxLlamaOptions {
  /** How attention is expressed: one GroupQueryAttention contrib op (default) or standard ops. */
  attention?: OnnxAttention;
  /** Return only the last row's logits (prefill before sampling; what Attend computes with lastOnly). */
  lastOnly?: boolean;
}

export interface OnnxLlama {
  bytes: Uint8Array;
  config: ModelConfig;
  /** f32 bytes of the weights as initializers (tied embeddings counted twice: table and transposed head). */
  initializerBytes: number;
}

/** [rows × cols] → [cols × rows]. */
function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < rows; i++) {
    const o = i * cols;
    for (let j = 0; j < cols; j++) out[j * rows + i] = src[o + j];
  }
  return out;
}

/** Rows of several [r_i × cols] matrices stacked, then transposed to [cols × Σr_i] (a MatMul weight). */
function stackTransposed(parts: Float32Array[], cols: number): Float32Array {
  const all = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return transpose(all, all.length / cols, cols);
}

/** Builds the ONNX model of the Llama checkpoint in `dir` (plain Llama: no biases, q/k norms or sliding windows). */
export function buildLlamaOnnx(dir: string, opts: OnnxLlamaOptions = {}): OnnxLlama {
  const c = readModelConfig(dir);
  const attention = opts.attention ?? 'gqa';
  const unsupported =
    c.family !== 'llama'
      ? 'not a Llama-family model'
      : c.qkvBias || c.outBias
        ? 'attention biases'
        : c.qkNorm
          ? 'q/k norms'
          : c.slidingWindows.some((w) => w !== null)
            ? 'sliding windows'
            : c.rope!.type === 'dynamic'
              ? 'dynamic RoPE'
              : c.rope!.dim !== c.headDim
                ? 'partial rotary'
                : undefined;
  if (unsupported) throw new Error(`buildLlamaOnnx: ${dir}: ${unsupported} not supported by the ONNX peer`);

  const archive = SafetensorsArchive.open(dir);
  let initializerBytes = 0;
  const g = new GraphBuilder();
  const weight = (name: string) => archive.readF32(name);
  const init = (hint: string, data: Float32Array, dims: number[]) => {
    initializerBytes += data.byteLength;
    return g.f32(hint, data, dims);
  };
  try {
    const H = c.hiddenSize;
    const hd = c.headDim;
    const N = c.numHeads;
    const KV = c.numKvHeads;
    const group = N / KV;
    const qd = N * hd;
    const kvd = KV * hd;
    const I = c.intermediateSize;
    const V = c.vocabSize;
    const eps = { f: c.normEps };

    const ids = g.input('input_ids', DT.INT64, [1, 'T']);
    const pastNames = Array.from({ length: c.numLayers }, (_, i) => [`past_key_${i}`, `past_value_${i}`] as const);
    for (const [k, v] of pastNames) {
      g.input(k, DT.FLOAT, [1, KV, 'P', hd]);
      g.input(v, DT.FLOAT, [1, KV, 'P', hd]);
    }

    // Shapes → P, T, total; positions P…P+T−1.
    const one = g.i64('one', [1], []);
    const T = g.op('Gather', [g.op('Shape', [ids]), one], { axis: 0 });
    const P = g.op('Gather', [g.op('Shape', [pastNames[0][0]]), g.i64('two', [2], [])], { axis: 0 });
    const total = g.op('Add', [P, T]);

    // RoPE tables for every position the model allows, Attend's numbers.
    const maxPos = c.maxPositions;
    const positions = Int32Array.from({ length: maxPos }, (_, i) => i);
    const tables = ropeTables(inverseFrequencies(c.rope!, maxPos), positions);
    const cos = init('cos_cache', tables.cos, [maxPos, hd / 2]);
    const sin = init('sin_cache', tables.sin, [maxPos, hd / 2]);

    let seqlensK = '';
    let totalI32 = '';
    let positionIds = '';
    let mask = '';
    if (attention === 'gqa') {
      totalI32 = g.op('Cast', [total], { to: DT.INT32 });
      seqlensK = g.op('Cast', [g.op('Reshape', [g.op('Sub', [total, one]), g.i64('shape1', [1])])], { to: DT.INT32 });
    } else {
      const pos = g.op('Range', [P, total, one]); // [T]
      positionIds = g.op('Unsqueeze', [pos, g.i64('axes0', [0])]); // [1, T]
      const kpos = g.op('Unsqueeze', [g.op('Range', [g.i64('zero', [0], []), total, one]), g.i64('axes0', [0])]); // [1, P+T]
      const qpos = g.op('Unsqueeze', [pos, g.i64('axes1', [1])]); // [T, 1]
      const future = g.op('Greater', [kpos, qpos]); // [T, P+T]
      const negInf = init('neg_inf', Float32Array.of(-Infinity), []);
      const zeroF = init('zero_f', Float32Array.of(0), []);
      // Query rows of a KV group are stacked head-major (row j·T + t), so the mask repeats `group` times.
      mask = g.op('Tile', [g.op('Where', [future, negInf, zeroF]), g.i64('tile', [group, 1])]); // [group·T, P+T]
    }

    const embed = weight('model.embed_tokens.weight');
    let x = g.op('Gather', [init('embed', embed, [V, H]), ids], { axis: 0 }); // [1, T, H]
    /** The branch output not yet added to the residual stream x (fused into the next norm). */
    let pending = '';
    const norm = (w: string): string => {
      const gamma = init('norm', weight(w), [H]);
      if (!pending) return g.op('SimplifiedLayerNormalization', [x, gamma], { axis: -1, epsilon: eps, stash_type: 1 });
      const sum = g.name('residual');
      const [out] = g.node('SkipSimplifiedLayerNormalization', [pending, x, gamma], [g.name('normed'), '', '', sum], { epsilon: eps }, 'com.microsoft');
      x = sum;
      pending = '';
      return out;
    };

    const presents: string[] = [];
    for (let i = 0; i < c.numLayers; i++) {
      const p = `model.layers.${i}.`;
      const a = `${p}self_attn.`;
      const h = norm(`${p}input_layernorm.weight`);
      const wqkv = stackTransposed([weight(`${a}q_proj.weight`), weight(`${a}k_proj.weight`), weight(`${a}v_proj.weight`)], H);
      const qkv = g.op('MatMul', [h, init('qkv', wqkv, [H, qd + 2 * kvd])]);
      const [pastK, pastV] = pastNames[i];
      const presentK = `present_key_${i}`;
      const presentV = `present_value_${i}`;
      presents.push(presentK, presentV);
      let attended: string;
      if (attention === 'gqa') {
        [attended] = g.node(
          'GroupQueryAttention',
          [qkv, '', '', pastK, pastV, seqlensK, totalI32, cos, sin],
          [g.name('attn'), presentK, presentV],
          { num_heads: N, kv_num_heads: KV, scale: { f: 1 / Math.sqrt(hd) }, do_rotary: 1, rotary_interleaved: 0 },
          'com.microsoft',
        );
      } else {
        const [q0, k0, v0] = g.node('Split', [qkv, g.i64('split', [qd, kvd, kvd])], 3, { axis: 2 });
        const q1 = g.op('RotaryEmbedding', [q0, positionIds, cos, sin], { num_heads: N, interleaved: 0 }, 'com.microsoft');
        const k1 = g.op('RotaryEmbedding', [k0, positionIds, cos, sin], { num_heads: KV, interleaved: 0 }, 'com.microsoft');
        const heads = (t: string, n: number) =>
          g.op('Transpose', [g.op('Reshape', [t, g.i64('bsnh', [1, -1, n, hd])])], { perm: [0, 2, 1, 3] }); // [1, n, T, hd]
        const qs = g.op('Mul', [heads(q1, N), init('scale', Float32Array.of(1 / Math.sqrt(hd)), [])]);
        const qg = g.op('Reshape', [qs, g.i64('groups', [1, KV, -1, hd])]); // [1, KV, group·T, hd]
        g.node('Concat', [pastK, heads(k1, KV)], [presentK], { axis: 2 });
        g.node('Concat', [pastV, heads(v0, KV)], [presentV], { axis: 2 });
        const scores = g.op('MatMul', [qg, g.op('Transpose', [presentK], { perm: [0, 1, 3, 2] })]); // [1, KV, gT, P+T]
        const probs = g.op('Softmax', [g.op('Add', [scores, mask])], { axis: -1 });
        const o = g.op('Reshape', [g.op('MatMul', [probs, presentV]), g.i64('heads', [1, N, -1, hd])]); // [1, N, T, hd]
        attended = g.op('Reshape', [g.op('Transpose', [o], { perm: [0, 2, 1, 3] }), g.i64('bsh', [1, -1, qd])]);
      }
      const wo = transpose(weight(`${a}o_proj.weight`), H, qd);
      pending = g.op('MatMul', [attended, init('o', wo, [qd, H])]);
      const m = norm(`${p}post_attention_layernorm.weight`);
      const wgu = stackTransposed([weight(`${p}mlp.gate_proj.weight`), weight(`${p}mlp.up_proj.weight`)], H);
      const [gate, up] = g.node('Split', [g.op('MatMul', [m, init('gate_up', wgu, [H, 2 * I])]), g.i64('split', [I, I])], 2, { axis: 2 });
      const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
      const wd = transpose(weight(`${p}mlp.down_proj.weight`), H, I);
      pending = g.op('MatMul', [act, init('down', wd, [I, H])]);
    }
    let last = norm('model.norm.weight');
    if (opts.lastOnly) {
      last = g.op('Slice', [last, g.i64('starts', [-1]), g.i64('ends', [Number.MAX_SAFE_INTEGER]), g.i64('axes', [1])]);
    }
    const head = c.tieEmbeddings && !archive.has('lm_head.weight') ? embed : weight('lm_head.weight');
    g.node('MatMul', [last, init('lm_head', transpose(head, V, H), [H, V])], ['logits']);

    g.output('logits', DT.FLOAT, [1, opts.lastOnly ? 1 : 'T', V]);
    for (const name of presents) g.output(name, DT.FLOAT, [1, KV, 'P+T', hd]);
    return { bytes: g.model('llama'), config: c, initializerBytes };
  } finally {
    archive.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------

export interface OrtLlamaStep {
  /** [T × vocab] (or [1 × vocab] with lastOnly). */
  logits: Float32Array;
  /** The KV cache after this step, to pass as `past` to the next one (as transformers.js does). */
  present: OrtPast;
}

/** The past_key_i/past_value_i feeds, by input name. */
export type OrtPast = Record<string, OrtTensor>;

/** One onnxruntime-node session over buildLlamaOnnx's graph, and the present → past feedback around it. */
export class OrtLlama {
  private constructor(
    private readonly ort: Ort,
    readonly session: OrtSession,
    readonly config: ModelConfig,
    readonly initializerBytes: number,
  ) {}

  /** Builds the graph and a CPU session (intra-op threads as given, one inter-op thread, all optimisations). */
  static async create(ort: Ort, dir: string, opts: OnnxLlamaOptions & { threads?: number } = {}): Promise<OrtLlama> {
    const model = buildLlamaOnnx(dir, opts);
    const session = await ort.InferenceSession.create(model.bytes, {
      executionProviders: ['cpu'],
      intraOpNumThreads: opts.threads ?? 2,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
    });
    return new OrtLlama(ort, session, model.config, model.initializerBytes);
  }

  /** An empty cache: every past tensor [1, kvHeads, 0, headDim]. */
  emptyPast(): OrtPast {
    const c = this.config;
    const past: OrtPast = {};
    for (let i = 0; i < c.numLayers; i++) {
      for (const kind of ['key', 'value']) {
        past[`past_${kind}_${i}`] = new this.ort.Tensor('float32', new Float32Array(0), [1, c.numKvHeads, 0, c.headDim]);
      }
    }
    return past;
  }

  /** Runs `ids` as the next tokens after `past`. */
  async step(ids: ArrayLike<number>, past: OrtPast): Promise<OrtLlamaStep> {
    const input = new this.ort.Tensor('int64', BigInt64Array.from(Array.from(ids, (t) => BigInt(t))), [1, ids.length]);
    const out = await this.session.run({ input_ids: input, ...past });
    const present: OrtPast = {};
    for (let i = 0; i < this.config.numLayers; i++) {
      for (const kind of ['key', 'value']) present[`past_${kind}_${i}`] = out[`present_${kind}_${i}`];
    }
    return { logits: out.logits.data as Float32Array, present };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
