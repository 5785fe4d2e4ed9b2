/**
 * A small WebAssembly binary encoder, shared by the CPU backend's SIMD kernels (matmul/wasm-kernel.ts, the GEMM, and
 * attention/softmax-kernel.ts, the softmax). It exists so that those kernels are emitted from TypeScript at load time:
 * the portable path needs no assembler, compiler or .wasm build step, at build time or at run time.
 *
 * It encodes just what the kernels use: typed locals (i32, f32, f64, v128), functions with at most one result, one
 * imported memory (`env.memory`), function exports, structured control flow, direct calls, scalar and SIMD loads and
 * stores, constants, and a table of scalar and SIMD opcodes. Opcode numbers follow the WebAssembly 2.0 core spec
 * (SIMD: 0xfd prefix, LEB128 sub-opcode).
 */

export const T = { i32: 0x7f, f32: 0x7d, f64: 0x7c, v128: 0x7b } as const;
export type ValType = (typeof T)[keyof typeof T];

/** Unsigned LEB128. */
export function u32(v: number): number[] {
  const out: number[] = [];
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

/** Signed LEB128 (32-bit). */
export function s32(v: number): number[] {
  const out: number[] = [];
  v |= 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function bytesOf(array: Float32Array | Float64Array | Int32Array): number[] {
  return [...new Uint8Array(array.buffer, array.byteOffset, array.byteLength)];
}

/** Scalar opcodes (single byte). */
const OP = {
  'i32.add': 0x6a, 'i32.sub': 0x6b, 'i32.mul': 0x6c, 'i32.and': 0x71, 'i32.shl': 0x74, 'i32.shr_u': 0x76,
  'i32.clz': 0x67, 'f32.convert_i32_s': 0xb2,
  'i32.eqz': 0x45, 'i32.eq': 0x46, 'i32.ne': 0x47, 'i32.lt_s': 0x48, 'i32.gt_s': 0x4a, 'i32.le_s': 0x4c, 'i32.ge_s': 0x4e,
  'f32.gt': 0x5e, 'f32.lt': 0x5d,
  'f32.add': 0x92, 'f32.sub': 0x93, 'f32.mul': 0x94, 'f32.div': 0x95, 'f32.max': 0x97,
  'f64.gt': 0x64,
  'f64.add': 0xa0, 'f64.sub': 0xa1, 'f64.mul': 0xa2, 'f64.div': 0xa3, 'f64.sqrt': 0x9f, 'f64.convert_i32_s': 0xb7,
  'f32.demote_f64': 0xb6, 'f64.promote_f32': 0xbb,
  drop: 0x1a, select: 0x1b, return: 0x0f,
} as const;

/** SIMD opcodes (0xfd prefix). */
const SIMD = {
  'f32x4.splat': 0x13, 'f64x2.splat': 0x14,
  'v128.and': 0x4e, 'v128.andnot': 0x4f, 'v128.or': 0x50, 'v128.bitselect': 0x52,
  'i32x4.eq': 0x37,
  'f32x4.lt': 0x43, 'f32x4.gt': 0x44, 'f32x4.ge': 0x46,
  'f32x4.demote_f64x2_zero': 0x5e, 'f64x2.promote_low_f32x4': 0x5f,
  'f32x4.nearest': 0x6a,
  'i32x4.shl': 0xab, 'i32x4.shr_u': 0xad, 'i32x4.add': 0xae, 'i32x4.sub': 0xb1,
  'f32x4.abs': 0xe0, 'f32x4.neg': 0xe1, 'f32x4.add': 0xe4, 'f32x4.sub': 0xe5, 'f32x4.mul': 0xe6, 'f32x4.div': 0xe7, 'f32x4.pmin': 0xea, 'f32x4.pmax': 0xeb,
  'f64x2.add': 0xf0, 'f64x2.sub': 0xf1, 'f64x2.mul': 0xf2,
  'i32x4.trunc_sat_f32x4_s': 0xf8, 'f32x4.convert_i32x4_s': 0xfa,
} as const;

export type ScalarOp = keyof typeof OP;
export type SimdOp = keyof typeof SIMD;

/**
 * One function body; parameters are locals 0..params.length−1, further locals are declared with `local` before or
 * while emitting code. Memory instructions take a byte `offset` and, where it varies, the alignment hint as log2 bytes.
 */
export class Func {
  readonly code: number[] = [];
  private readonly localTypes: ValType[] = [];

  constructor(
    readonly name: string,
    readonly params: ValType[],
    readonly result: ValType | null = null,
    readonly exported = true,
  ) {}

  local(type: ValType): number {
    this.localTypes.push(type);
    return this.params.length + this.localTypes.length - 1;
  }

  private emit(...bytes: number[]): this {
    for (const b of bytes) this.code.push(b);
    return this;
  }
  private simd(op: number, ...imm: number[]): this {
    return this.emit(0xfd, ...u32(op), ...imm);
  }

  op(name: ScalarOp): this {
    return this.emit(OP[name]);
  }
  v(name: SimdOp): this {
    return this.simd(SIMD[name]);
  }
  get(i: number): this {
    return this.emit(0x20, ...u32(i));
  }
  set(i: number): this {
    return this.emit(0x21, ...u32(i));
  }
  tee(i: number): this {
    return this.emit(0x22, ...u32(i));
  }
  i32(v: number): this {
    return this.emit(0x41, ...s32(v));
  }
  f32(v: number): this {
    return this.emit(0x43, ...bytesOf(new Float32Array([v])));
  }
  f64(v: number): this {
    return this.emit(0x44, ...bytesOf(new Float64Array([v])));
  }
  /** v128.const with four f32 lanes equal to v. */
  f32x4(v: number): this {
    return this.simd(0x0c, ...bytesOf(new Float32Array([v, v, v, v])));
  }
  /** v128.const with four i32 lanes equal to v. */
  i32x4(v: number): this {
    return this.simd(0x0c, ...bytesOf(new Int32Array([v, v, v, v])));
  }
  v128Zero(): this {
    return this.i32x4(0);
  }
  /** local[i] += v (i32). */
  inc(i: number, v: number): this {
    return this.get(i).i32(v).op('i32.add').set(i);
  }
  /** call of the function at index `fnIndex` (its position in `assemble`'s list). */
  call(fnIndex: number): this {
    return this.emit(0x10, ...u32(fnIndex));
  }

  i32Load(offset = 0): this {
    return this.emit(0x28, 2, ...u32(offset));
  }
  f32Load(offset = 0): this {
    return this.emit(0x2a, 2, ...u32(offset));
  }
  f32Store(offset = 0): this {
    return this.emit(0x38, 2, ...u32(offset));
  }
  f64Store(offset = 0): this {
    return this.emit(0x39, 3, ...u32(offset));
  }
  /** v128.load; `align` is the alignment hint as log2 bytes (0: none promised, 4: 16-byte aligned). */
  v128Load(offset = 0, align = 0): this {
    return this.simd(0x00, align, ...u32(offset));
  }
  /** v128.store; `align` as for v128Load. */
  v128Store(offset = 0, align = 0): this {
    return this.simd(0x0b, align, ...u32(offset));
  }
  /** v128.load16x4_u: four u16 from memory, zero-extended into the four i32 lanes. */
  load16x4U(offset = 0, align = 0): this {
    return this.simd(0x04, align, ...u32(offset));
  }
  /** v128.load32_splat: one f32 (or i32) from memory into all four lanes. */
  load32Splat(offset = 0): this {
    return this.simd(0x09, 2, ...u32(offset));
  }
  f32x4Extract(lane: number): this {
    return this.simd(0x1f, lane);
  }
  f32x4Replace(lane: number): this {
    return this.simd(0x20, lane);
  }
  f64x2Extract(lane: number): this {
    return this.simd(0x21, lane);
  }
  shuffle(lanes: number[]): this {
    return this.simd(0x0d, ...lanes);
  }

  /** `block` (label 0 inside `body` breaks out of it). */
  block(body: () => void): this {
    this.emit(0x02, 0x40);
    body();
    return this.emit(0x0b);
  }
  /** `loop` (label 0 inside `body` continues it). */
  loop(body: () => void): this {
    this.emit(0x03, 0x40);
    body();
    return this.emit(0x0b);
  }
  /** if (pop) then [else otherwise]. */
  if(then: () => void, otherwise?: () => void): this {
    this.emit(0x04, 0x40);
    then();
    if (otherwise) {
      this.emit(0x05);
      otherwise();
    }
    return this.emit(0x0b);
  }
  br(label: number): this {
    return this.emit(0x0c, ...u32(label));
  }
  brIf(label: number): this {
    return this.emit(0x0d, ...u32(label));
  }
  /** while (cond()) body() — cond pushes an i32. */
  while(cond: () => void, body: () => void): this {
    return this.block(() =>
      this.loop(() => {
        cond();
        this.op('i32.eqz').brIf(1);
        body();
        this.br(0);
      }),
    );
  }

  /** The code-section entry: size, run-length-grouped local declarations, instructions, `end`. */
  body(): number[] {
    const groups: [number, ValType][] = [];
    for (const t of this.localTypes) {
      const last = groups[groups.length - 1];
      if (last && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    const locals = [...u32(groups.length), ...groups.flatMap(([count, type]) => [...u32(count), type])];
    const b = [...locals, ...this.code, 0x0b];
    return [...u32(b.length), ...b];
  }
}

function name(s: string): number[] {
  const bytes = [...new TextEncoder().encode(s)];
  return [...u32(bytes.length), ...bytes];
}

function vec(items: number[][]): number[] {
  return [...u32(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...u32(body.length), ...body];
}

export interface MemoryImport {
  initialPages: number;
  maximumPages: number;
  shared: boolean;
}

/** A module importing `env.memory` and defining `funcs` in order (function index = position). */
export function assemble(memory: MemoryImport, funcs: Func[]): Uint8Array<ArrayBuffer> {
  const sigs: string[] = [];
  const typeOf = funcs.map((f) => {
    const key = `${f.params.join(',')}>${f.result ?? ''}`;
    let i = sigs.indexOf(key);
    if (i < 0) i = sigs.push(key) - 1;
    return i;
  });
  const types = section(
    1,
    vec(
      sigs.map((s) => {
        const [ps, r] = s.split('>');
        const params = ps === '' ? [] : ps!.split(',').map((t) => [Number(t)]);
        const results = r === '' ? [] : [[Number(r)]];
        return [0x60, ...vec(params), ...vec(results)];
      }),
    ),
  );
  const limits = [memory.shared ? 0x03 : 0x01, ...u32(memory.initialPages), ...u32(memory.maximumPages)];
  const imports = section(2, vec([[...name('env'), ...name('memory'), 0x02, ...limits]]));
  const funcsSec = section(3, vec(typeOf.map((t) => u32(t))));
  const exportsSec = section(7, vec(funcs.flatMap((f, i) => (f.exported ? [[...name(f.name), 0x00, ...u32(i)]] : []))));
  const code = section(10, vec(funcs.map((f) => f.body())));
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...types, ...imports, ...funcsSec, ...exportsSec, ...code]);
}
