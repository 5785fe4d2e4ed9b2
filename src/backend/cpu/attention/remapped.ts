/**
 * The CPU's attention over remapped reads (attention/remap.ts; LongHeads): per KV head, the rows of the call are
 * taken in blocks, and every span that rows of the block read, with any query head of the group, is one pair of
 * matrix products for all of them.
 *
 * Rotary embeddings make a score depend on the difference of the two positions only, so instead of turning the
 * span's stored keys by its key shift (for each row, since each row reads them at other positions), each reading
 * row's query is turned once by queryShift − keyShift (a head's worth of multiplies) and the stored keys are used
 * as they are: the span's scores for the m rows that read it are [m × d] · [d × len], one product, and their
 * outputs P · V another. Each row's scores are laid side by side, span after span (ascending entries, so the
 * entries its position may see causally come first), and the softmax (or sigmoid) runs over that prefix; the
 * columns after it (later entries of a span the row is in, as the chunk it is in) weigh 0.
 *
 * Entries with pruned key channels (ThinK) are refused, as are observers (remap.ts).
 */
import type { AttentionOptions } from '../../backend.js';
import type { LayerCache } from '../../../cache/kv-cache.js';
import { hostHead } from '../../../cache/head-store.js';
import { SOFTMAX } from '../../../attention/kernels/index.js';
import { checkRemap } from '../../../attention/remap.js';
import type { DType } from '../../../tensor/dtype.js';
import { widenHalf } from '../convert/half.js';
import { type MatmulPath, matmulNN, matmulTransB } from '../matmul.js';
import type { Workspace } from './softmax.js';

/**
 * Scores held at once per block, in floats (16 MiB): four times the dense path's, so that a block holds enough rows
 * of a span (e.g. 128 rows × 4 query heads over 8192 columns) for its products to run at full speed.
 */
const BLOCK_SCORES = 1 << 22;

/** Growable scratch, reused across calls (no observer runs inside a remapped call, so nothing re-enters). */
const scratch = { q: new Float32Array(0), s: new Float32Array(0), o: new Float32Array(0), k: new Float32Array(0), v: new Float32Array(0) };

function grow(name: keyof typeof scratch, n: number): Float32Array {
  if (scratch[name].length < n) scratch[name] = new Float32Array(Math.max(n, Math.ceil(scratch[name].length * 1.25)));
  return scratch[name].subarray(0, n);
}

function asF32(dtype: DType, rows: Float32Array | Uint16Array, name: 'k' | 'v'): Float32Array {
  return rows instanceof Float32Array ? rows : widenHalf(dtype as 'f16' | 'bf16', rows, grow(name, rows.length));
}

/** cos and sin of shift·inv[i], per shift asked for (a call uses few distinct shifts). */
class TurnTables {
  private readonly tables = new Map<number, { cos: Float64Array; sin: Float64Array }>();

  constructor(private readonly inv: Float32Array) {}

  get(shift: number): { cos: Float64Array; sin: Float64Array } {
    let t = this.tables.get(shift);
    if (!t) {
      const cos = new Float64Array(this.inv.length);
      const sin = new Float64Array(this.inv.length);
      for (let i = 0; i < cos.length; i++) {
        cos[i] = Math.cos(shift * this.inv[i]);
        sin[i] = Math.sin(shift * this.inv[i]);
      }
      t = { cos, sin };
      this.tables.set(shift, t);
    }
    return t;
  }
}

export function remappedAttention(
  q: Float32Array,
  rows: number,
  numHeads: number,
  layer: LayerCache,
  positions: Int32Array,
  opts: AttentionOptions,
  out: Float32Array,
  ws: Workspace,
  path: MatmulPath | undefined,
): void {
  const remap = opts.remap!;
  const heads = layer.heads;
  const d = heads[0].headDim;
  checkRemap(opts, rows, numHeads, heads.map((h) => h.length), d);
  const kernel = opts.kernel ?? SOFTMAX;
  const group = numHeads / heads.length;
  const width = numHeads * d;
  const { offsets, starts, ends, keyShifts, queryShifts } = remap;
  const half = remap.inverseFrequencies.length;
  const turns = new TurnTables(remap.inverseFrequencies);
  // Block rows are (row, query head of the group) pairs, row-major: lane ℓ = (r − r0)·group + j.
  const spanWidth = new Int32Array(rows * group);
  const live = new Int32Array(rows * group);
  for (let g = 0; g < heads.length; g++) {
    const head = hostHead(heads[g]);
    if (head.pruned > 0) throw new Error('remapped reads over pruned key channels (ThinK) are not supported');
    // Per row and query head: the width of its spans side by side, and how many of those columns it may see causally.
    let maxWidth = 0;
    for (let r = 0; r < rows; r++) {
      const visible = head.visibleUpTo(positions[r]);
      for (let j = 0; j < group; j++) {
        const u = r * numHeads + g * group + j;
        let w = 0;
        let seen = 0;
        for (let s = offsets[u]; s < offsets[u + 1]; s++) {
          w += ends[s] - starts[s];
          seen += Math.max(0, Math.min(ends[s], visible) - starts[s]);
        }
        spanWidth[r * group + j] = w;
        live[r * group + j] = seen;
        if (w > maxWidth) maxWidth = w;
      }
    }
    const blockRows = Math.max(1, Math.min(rows, Math.floor(BLOCK_SCORES / Math.max(1, maxWidth * group))));
    for (let r0 = 0; r0 < rows; r0 += blockRows) {
      const r1 = Math.min(rows, r0 + blockRows);
      const n = (r1 - r0) * group;
      // The block's spans grouped by entry range, over the rows and the group's query heads: members are (unit, span,
      // lane, first column) quadruples.
      const groups = new Map<number, number[]>();
      for (let r = r0; r < r1; r++) {
        for (let j = 0; j < group; j++) {
          const u = r * numHeads + g * group + j;
          const lane = (r - r0) * group + j;
          for (let s = offsets[u], col = 0; s < offsets[u + 1]; s++) {
            if (ends[s] === starts[s]) continue;
            const key = starts[s] * (head.length + 1) + ends[s];
            let members = groups.get(key);
            if (!members) groups.set(key, (members = []));
            members.push(u, s, lane, col);
            col += ends[s] - starts[s];
          }
        }
      }
      const block = ws.block(n, maxWidth);
      const scores = block.scores;
      for (const members of groups.values()) {
        const start = starts[members[1]];
        const len = ends[members[1]] - start;
        const m = members.length / 4;
        // Each member's query turned by queryShift − keyShift, times the scale.
        const qg = grow('q', m * d);
        for (let j = 0; j < m; j++) {
          const u = members[4 * j];
          const src = u * d;
          const dst = j * d;
          const { cos, sin } = turns.get(queryShifts[u] - keyShifts[members[4 * j + 1]]);
          for (let i = 0; i < half; i++) {
            const a = q[src + i];
            const b = q[src + i + half];
            qg[dst + i] = (a * cos[i] - b * sin[i]) * opts.scale;
            qg[dst + i + half] = (b * cos[i] + a * sin[i]) * opts.scale;
          }
          for (let i = 2 * half; i < d; i++) qg[dst + i] = q[src + i] * opts.scale;
        }
        const sg = grow('s', m * len);
        matmulTransB(qg, asF32(head.dtype, head.storedKeys(start, len), 'k'), sg, m, len, d, { reuseB: false, path });
        for (let j = 0; j < m; j++) scores.set(sg.subarray(j * len, (j + 1) * len), members[4 * j + 2] * maxWidth + members[4 * j + 3]);
      }
      for (let l = 0; l < n; l++) {
        block.ranges[2 * l] = 0;
        block.ranges[2 * l + 1] = live[r0 * group + l];
      }
      if (kernel.name === 'softmax') block.run();
      else sigmoidRows(scores, maxWidth, n, live.subarray(r0 * group, r1 * group), kernel.bias);
      for (let r = r0; r < r1; r++) out.fill(0, r * width + g * group * d, r * width + (g + 1) * group * d);
      for (const members of groups.values()) {
        const start = starts[members[1]];
        const len = ends[members[1]] - start;
        const m = members.length / 4;
        const pg = grow('s', m * len);
        for (let j = 0; j < m; j++) {
          const at = members[4 * j + 2] * maxWidth + members[4 * j + 3];
          pg.set(scores.subarray(at, at + len), j * len);
        }
        const og = grow('o', m * d);
        matmulNN(pg, asF32(head.dtype, head.storedValues(start, len), 'v'), og, m, d, len, path);
        // Unit u's output sits at u·d: rows of [rows × numHeads·d] are units in order.
        for (let j = 0; j < m; j++) {
          const dst = members[4 * j] * d;
          for (let i = 0; i < d; i++) out[dst + i] += og[j * d + i];
        }
      }
    }
  }
}

/** Sigmoid attention's weights in place: σ(s + bias) over each row's first `live` columns, 0 after them. */
function sigmoidRows(scores: Float32Array, w: number, n: number, live: Int32Array, bias: number): void {
  for (let r = 0; r < n; r++) {
    const row = scores.subarray(r * w, (r + 1) * w);
    for (let c = 0; c < w; c++) row[c] = c < live[r] ? 1 / (1 + Math.exp(-(row[c] + bias))) : 0;
  }
}
