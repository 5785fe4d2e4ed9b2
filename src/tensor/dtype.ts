/** Storage dtypes. Compute on the CPU is always f32; f16 and bf16 are storage formats held as raw 16-bit words. */
export type DType = 'f32' | 'f16' | 'bf16';

export const BYTES_PER_ELEMENT: Record<DType, number> = { f32: 4, f16: 2, bf16: 2 };

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bf16ToF32(bits: number): number {
  u32[0] = bits << 16;
  return f32[0];
}

/** Round to nearest even, as PyTorch does when casting to bfloat16; NaN stays NaN. */
export function f32ToBf16(value: number): number {
  f32[0] = value;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Round to nearest even; overflow goes to infinity, as IEEE 754 casting does. */
export function f32ToF16(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  let e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mantissa & ((1 << shift) - 1);
    let m = mantissa >>> shift;
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  const rest = mantissa & 0x1fff;
  let m = mantissa >>> 13;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

/**
 * The f32 bit pattern of a binary16 bit pattern, in integers only: exact, signed zeros and NaN payloads kept (a
 * NaN's 10 mantissa bits become the top of the f32's 23), as a hardware conversion does.
 */
export function f16BitsToF32Bits(bits: number): number {
  const sign = (bits & 0x8000) << 16;
  let exponent = (bits >>> 10) & 0x1f;
  let mantissa = bits & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
  if (exponent === 0) {
    if (mantissa === 0) return sign >>> 0;
    // Subnormal: normalise (value = mantissa · 2^-24).
    exponent = 1;
    while ((mantissa & 0x400) === 0) {
      mantissa <<= 1;
      exponent--;
    }
    mantissa &= 0x3ff;
  }
  return (sign | ((exponent + 127 - 15) << 23) | (mantissa << 13)) >>> 0;
}

/** f32 bits of every binary16 pattern (256 KiB), built on first use. */
let f16Table: Uint32Array | undefined;

function f16BitsTable(): Uint32Array {
  if (!f16Table) {
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32Bits(h);
  }
  return f16Table;
}

/**
 * Widens 16-bit storage words into a new (or given) f32 array: exact, bit for bit as f16BitsToF32Bits (f16, through
 * a table of all 65536 patterns) or a 16-bit shift (bf16). The CPU attention reads the KV cache through the
 * WebAssembly SIMD version of this (src/backend/cpu/convert/half.ts).
 */
export function widen(
  dtype: 'f16' | 'bf16',
  words: Uint16Array,
  out: Float32Array = new Float32Array(words.length),
): Float32Array {
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  if (dtype === 'bf16') {
    for (let i = 0; i < words.length; i++) bits[i] = words[i] << 16;
  } else {
    const table = f16BitsTable();
    for (let i = 0; i < words.length; i++) bits[i] = table[words[i]];
  }
  return out;
}

/** Narrows f32 values into 16-bit storage words with round-to-nearest-even. */
export function narrow(
  dtype: 'f16' | 'bf16',
  values: Float32Array,
  out: Uint16Array = new Uint16Array(values.length),
): Uint16Array {
  const convert = dtype === 'bf16' ? f32ToBf16 : f32ToF16;
  for (let i = 0; i < values.length; i++) out[i] = convert(values[i]);
  return out;
}
