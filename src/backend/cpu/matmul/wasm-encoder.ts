/**
 * A minimal WebAssembly binary encoder: just enough (types, one imported memory, functions, exports, a few dozen
 * opcodes including SIMD) to emit the matmul kernels from TypeScript at load time, so the portable path needs no
 * assembler or compiler at build or run time.
 */

export const I32 = 0x7f;
export const V128 = 0x7b;
export type ValType = typeof I32 | typeof V128;

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

/** Instruction emitter for one function body; locals are declared up front, parameters first. */
export class Fn {
  readonly code: number[] = [];
  private readonly localTypes: ValType[] = [];
  private depth = 0;

  constructor(
    readonly name: string,
    readonly params: ValType[],
    readonly exported = false,
  ) {}

  /** Index of parameter `i`. */
  param(i: number): number {
    return i;
  }

  local(type: ValType): number {
    this.localTypes.push(type);
    return this.params.length + this.localTypes.length - 1;
  }

  private emit(...bytes: number[]): this {
    for (const b of bytes) this.code.push(b);
    return this;
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
  add(): this {
    return this.emit(0x6a);
  }
  sub(): this {
    return this.emit(0x6b);
  }
  mul(): this {
    return this.emit(0x6c);
  }
  ltS(): this {
    return this.emit(0x48);
  }
  geS(): this {
    return this.emit(0x4e);
  }
  gtS(): this {
    return this.emit(0x4a);
  }
  eq(): this {
    return this.emit(0x46);
  }
  and(): this {
    return this.emit(0x71);
  }
  shrU(): this {
    return this.emit(0x76);
  }
  /** local[i] += v */
  inc(i: number, v: number): this {
    return this.get(i).i32(v).add().set(i);
  }
  /** local[dst] += local[src] */
  incBy(dst: number, src: number): this {
    return this.get(dst).get(src).add().set(dst);
  }
  call(fnIndex: number): this {
    return this.emit(0x10, ...u32(fnIndex));
  }

  /** `block` (label 0 inside `body` breaks out of it). */
  block(body: () => void): this {
    this.emit(0x02, 0x40);
    this.depth++;
    body();
    this.depth--;
    return this.emit(0x0b);
  }
  /** `loop` (label 0 inside `body` continues it). */
  loop(body: () => void): this {
    this.emit(0x03, 0x40);
    this.depth++;
    body();
    this.depth--;
    return this.emit(0x0b);
  }
  if(body: () => void): this {
    this.emit(0x04, 0x40);
    this.depth++;
    body();
    this.depth--;
    return this.emit(0x0b);
  }
  br(label: number): this {
    return this.emit(0x0c, ...u32(label));
  }
  brIf(label: number): this {
    return this.emit(0x0d, ...u32(label));
  }

  /** while (cond) body — cond pushes an i32; inside body, `br(1)`/continue is emitted by the helper. */
  while(cond: () => void, body: () => void): this {
    return this.block(() =>
      this.loop(() => {
        cond();
        this.emit(0x45); // i32.eqz
        this.brIf(1);
        body();
        this.br(0);
      }),
    );
  }

  f32Load(offset: number): this {
    return this.emit(0x2a, 2, ...u32(offset));
  }
  f32Store(offset: number): this {
    return this.emit(0x38, 2, ...u32(offset));
  }
  private simd(op: number, ...imm: number[]): this {
    return this.emit(0xfd, ...u32(op), ...imm);
  }
  v128Load(offset: number): this {
    return this.simd(0x00, 4, ...u32(offset));
  }
  v128Store(offset: number): this {
    return this.simd(0x0b, 4, ...u32(offset));
  }
  load32Splat(offset: number): this {
    return this.simd(0x09, 2, ...u32(offset));
  }
  v128Zero(): this {
    return this.simd(0x0c, ...new Array<number>(16).fill(0));
  }
  f32x4Add(): this {
    return this.simd(0xe4);
  }
  f32x4Mul(): this {
    return this.simd(0xe6);
  }

  body(): number[] {
    const groups: number[][] = [];
    for (const t of this.localTypes) {
      const last = groups[groups.length - 1];
      if (last && last[1] === t) last[0]!++;
      else groups.push([1, t]);
    }
    const locals = [...u32(groups.length), ...groups.flatMap(([count, type]) => [...u32(count!), type!])];
    const b = [...locals, ...this.code, 0x0b];
    return [...u32(b.length), ...b];
  }
}

export interface MemoryImport {
  initialPages: number;
  maximumPages: number;
  shared: boolean;
}

/** Assembles a module importing `env.memory` and defining `fns` (each with no results), in order. */
export function assemble(memory: MemoryImport, fns: Fn[]): Uint8Array<ArrayBuffer> {
  const sigs: string[] = [];
  const typeOf = fns.map((f) => {
    const key = f.params.join(',');
    let i = sigs.indexOf(key);
    if (i < 0) i = sigs.push(key) - 1;
    return i;
  });
  const types = section(
    1,
    vec(sigs.map((s) => [0x60, ...vec(s === '' ? [] : s.split(',').map((t) => [Number(t)])), 0])),
  );
  const limits = [memory.shared ? 0x03 : 0x01, ...u32(memory.initialPages), ...u32(memory.maximumPages)];
  const imports = section(2, vec([[...name('env'), ...name('memory'), 0x02, ...limits]]));
  const funcs = section(3, vec(typeOf.map((t) => u32(t))));
  const exportsSec = section(
    7,
    vec(fns.flatMap((f, i) => (f.exported ? [[...name(f.name), 0x00, ...u32(i)]] : []))),
  );
  const code = section(10, vec(fns.map((f) => f.body())));
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...types, ...imports, ...funcs, ...exportsSec, ...code]);
}
