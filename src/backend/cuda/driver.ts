/**
 * The CUDA driver API through koffi: one device's primary context, one stream that every kernel, copy and cuBLAS
 * call of the backend is ordered on, device memory, modules and launches. Device pointers are plain numbers (they fit
 * in 53 bits on every 64-bit platform CUDA runs on). Errors name the call and the driver's error name.
 */
import koffi from 'koffi';
import { AttendError } from '../../errors.js';
import { type Library, loadDriver } from './libraries.js';


const ATTR = { smCount: 16, ccMajor: 75, ccMinor: 76 };

export interface DeviceInfo {
  name: string;
  /** e.g. 90 for sm_90. */
  computeCapability: number;
  smCount: number;
  totalBytes: number;
  driverVersion: number;
}

export class CudaDriver {
  readonly info: DeviceInfo;
  readonly stream: unknown;
  private readonly f: Record<string, (...args: unknown[]) => number>;

  constructor(ordinal = 0) {
    const lib: Library = loadDriver();
    const decl: Record<string, string> = {
      cuInit: 'int cuInit(unsigned int)',
      cuDriverGetVersion: 'int cuDriverGetVersion(_Out_ int *v)',
      cuGetErrorName: 'int cuGetErrorName(int err, _Out_ const char **name)',
      cuDeviceGetCount: 'int cuDeviceGetCount(_Out_ int *n)',
      cuDeviceGet: 'int cuDeviceGet(_Out_ int *dev, int ordinal)',
      cuDeviceGetName: 'int cuDeviceGetName(_Out_ uint8_t *name, int len, int dev)',
      cuDeviceGetAttribute: 'int cuDeviceGetAttribute(_Out_ int *v, int attr, int dev)',
      cuDeviceTotalMem: 'int cuDeviceTotalMem_v2(_Out_ uint64_t *bytes, int dev)',
      cuDevicePrimaryCtxRetain: 'int cuDevicePrimaryCtxRetain(_Out_ void **ctx, int dev)',
      cuCtxSetCurrent: 'int cuCtxSetCurrent(void *ctx)',
      cuStreamCreate: 'int cuStreamCreate(_Out_ void **stream, unsigned int flags)',
      cuStreamSynchronize: 'int cuStreamSynchronize(void *stream)',
      cuMemAlloc: 'int cuMemAlloc_v2(_Out_ uint64_t *p, size_t n)',
      cuMemFree: 'int cuMemFree_v2(uint64_t p)',
      cuMemGetInfo: 'int cuMemGetInfo_v2(_Out_ uint64_t *free, _Out_ uint64_t *total)',
      cuMemcpyHtoDAsync: 'int cuMemcpyHtoDAsync_v2(uint64_t dst, const void *src, size_t n, void *stream)',
      cuMemcpyDtoHAsync: 'int cuMemcpyDtoHAsync_v2(_Out_ void *dst, uint64_t src, size_t n, void *stream)',
      cuMemcpyDtoDAsync: 'int cuMemcpyDtoDAsync_v2(uint64_t dst, uint64_t src, size_t n, void *stream)',
      cuMemsetD8Async: 'int cuMemsetD8Async(uint64_t dst, uint8_t value, size_t n, void *stream)',
      cuModuleLoadData: 'int cuModuleLoadData(_Out_ void **m, const void *image)',
      cuModuleGetFunction: 'int cuModuleGetFunction(_Out_ void **f, void *m, const char *name)',
      cuFuncSetAttribute: 'int cuFuncSetAttribute(void *f, int attr, int value)',
      cuLaunchKernel: 'int cuLaunchKernel(void *f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz, unsigned int smem, void *stream, void *params, void *extra)',
    };
    this.f = Object.fromEntries(Object.entries(decl).map(([k, d]) => [k, lib.func(d) as (...args: unknown[]) => number]));
    const init = this.f.cuInit(0);
    // CUDA_ERROR_NO_DEVICE (100): a driver is installed but there is no GPU (a container without one, say).
    if (init === 100) throw new AttendError('no CUDA device: the CUDA driver is installed but sees no GPU (--device cpu runs without one)');
    this.check(init, 'cuInit');
    const n = [0];
    this.check(this.f.cuDeviceGetCount(n), 'cuDeviceGetCount');
    if (ordinal >= n[0]) throw new AttendError(n[0] === 0 ? 'no CUDA device: the driver sees no GPU' : `no CUDA device ${ordinal}: the driver sees ${n[0]}`);
    const dev = [0];
    this.check(this.f.cuDeviceGet(dev, ordinal), 'cuDeviceGet');
    const name = Buffer.alloc(256);
    this.check(this.f.cuDeviceGetName(name, 256, dev[0]), 'cuDeviceGetName');
    const attr = (a: number) => {
      const v = [0];
      this.check(this.f.cuDeviceGetAttribute(v, a, dev[0]), 'cuDeviceGetAttribute');
      return v[0];
    };
    const total = [0];
    this.check(this.f.cuDeviceTotalMem(total, dev[0]), 'cuDeviceTotalMem');
    const version = [0];
    this.check(this.f.cuDriverGetVersion(version), 'cuDriverGetVersion');
    this.info = {
      name: name.toString('latin1').replace(/\0.*$/s, ''),
      computeCapability: attr(ATTR.ccMajor) * 10 + attr(ATTR.ccMinor),
      smCount: attr(ATTR.smCount),
      totalBytes: Number(total[0]),
      driverVersion: version[0],
    };
    const ctx = [null];
    this.check(this.f.cuDevicePrimaryCtxRetain(ctx, dev[0]), 'cuDevicePrimaryCtxRetain');
    this.check(this.f.cuCtxSetCurrent(ctx[0]), 'cuCtxSetCurrent');
    const stream = [null];
    // CU_STREAM_NON_BLOCKING (1): no implicit ordering with the legacy default stream.
    this.check(this.f.cuStreamCreate(stream, 1), 'cuStreamCreate');
    this.stream = stream[0];
  }

  check(code: number, what: string): void {
    if (code === 0) return;
    const name = [null as string | null];
    this.f.cuGetErrorName(code, name);
    throw new AttendError(`CUDA ${what} failed: ${name[0] ?? `error ${code}`}`);
  }

  alloc(bytes: number): number {
    const p = [0];
    const code = this.f.cuMemAlloc(p, Math.max(1, bytes));
    if (code === 2) {
      const [free, total] = this.memInfo();
      throw new AttendError(`CUDA out of memory: ${bytes} bytes asked, ${free} of ${total} free`);
    }
    this.check(code, 'cuMemAlloc');
    return Number(p[0]);
  }

  free(ptr: number): void {
    this.check(this.f.cuMemFree(ptr), 'cuMemFree');
  }

  memInfo(): [number, number] {
    const free = [0];
    const total = [0];
    this.check(this.f.cuMemGetInfo(free, total), 'cuMemGetInfo');
    return [Number(free[0]), Number(total[0])];
  }

  /** Host → device, ordered on the stream; the host array may be reused as soon as this returns (pageable memory). */
  upload(dst: number, src: ArrayBufferView, bytes = src.byteLength): void {
    if (bytes > 0) this.check(this.f.cuMemcpyHtoDAsync(dst, src, bytes, this.stream), 'cuMemcpyHtoDAsync');
  }

  /** Device → host, after everything queued before it: the one place the host waits for the device. */
  download(dst: ArrayBufferView, src: number, bytes = dst.byteLength): void {
    if (bytes === 0) return;
    this.check(this.f.cuMemcpyDtoHAsync(dst, src, bytes, this.stream), 'cuMemcpyDtoHAsync');
    this.synchronize();
  }

  copy(dst: number, src: number, bytes: number): void {
    if (bytes > 0) this.check(this.f.cuMemcpyDtoDAsync(dst, src, bytes, this.stream), 'cuMemcpyDtoDAsync');
  }

  zero(dst: number, bytes: number): void {
    if (bytes > 0) this.check(this.f.cuMemsetD8Async(dst, 0, bytes, this.stream), 'cuMemsetD8Async');
  }

  synchronize(): void {
    this.check(this.f.cuStreamSynchronize(this.stream), 'cuStreamSynchronize');
  }

  loadModule(image: Uint8Array): unknown {
    const m = [null];
    this.check(this.f.cuModuleLoadData(m, image), 'cuModuleLoadData');
    return m[0];
  }

  getFunction(module: unknown, name: string): unknown {
    const fn = [null];
    this.check(this.f.cuModuleGetFunction(fn, module, name), `cuModuleGetFunction(${name})`);
    return fn[0];
  }

  private readonly sharedSet = new Map<unknown, number>();

  /** Lets `fn` take `bytes` of dynamic shared memory (beyond the default 48 KiB needs the attribute). */
  allowSharedMemory(fn: unknown, bytes: number): void {
    if ((this.sharedSet.get(fn) ?? 0) >= bytes) return;
    // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8
    this.check(this.f.cuFuncSetAttribute(fn, 8, bytes), 'cuFuncSetAttribute');
    this.sharedSet.set(fn, bytes);
  }

  /** The argument writer of the next launch, emptied: `launch(fn, grid, block, driver.args().p(x).i(n))`. */
  args(): Args {
    return this.params.reset();
  }

  launch(fn: unknown, grid: [number, number, number], block: [number, number, number], args: Args, sharedBytes = 0): void {
    if (grid[0] * grid[1] * grid[2] === 0) return;
    const t0 = this.profile ? this.profileStart() : 0;
    this.check(this.f.cuLaunchKernel(fn, grid[0], grid[1], grid[2], block[0], block[1], block[2], sharedBytes, this.stream, args.table, null), 'cuLaunchKernel');
    if (this.profile) this.profileEnd(this.names.get(fn) ?? 'kernel', t0);
  }

  /** The kernel parameters of one launch, in native memory (the driver copies them at launch, so one buffer serves). */
  private readonly params = new Args();

  /** Kernel names for the profile (context.ts registers them). */
  readonly names = new Map<unknown, string>();

  /**
   * ATTEND_CUDA_PROFILE=1: every launch (and cuBLAS call) is followed by a synchronisation and timed, per kernel
   * name: what a step spends where, launch overhead included. For measuring, never for speed.
   */
  readonly profile = process.env.ATTEND_CUDA_PROFILE === '1';
  readonly timings = new Map<string, { calls: number; ms: number }>();

  profileStart(): number {
    this.synchronize();
    return performance.now();
  }

  profileEnd(name: string, t0: number): void {
    this.synchronize();
    const t = this.timings.get(name) ?? { calls: 0, ms: 0 };
    t.calls++;
    t.ms += performance.now() - t0;
    this.timings.set(name, t);
  }
}

/**
 * cuLaunchKernel's `void **kernelParams`, written straight into native memory: each argument in its own 8-byte slot
 * (a struct in as many slots as it needs) and a table of the slots' addresses, so a launch hands koffi one pointer
 * and allocates nothing. The driver copies the parameters at launch, so one writer serves every launch. Addresses
 * and device pointers are written as two 32-bit halves (they are below 2⁵³), with no BigInt on the way.
 */
export class Args {
  private static readonly SLOTS = 1024;
  private readonly values = koffi.alloc('uint8_t', 8 * Args.SLOTS);
  readonly table = koffi.alloc('uint64_t', Args.SLOTS);
  private readonly view = new DataView(koffi.view(this.values, 8 * Args.SLOTS));
  private readonly bytes8 = new Uint8Array(this.view.buffer);
  private readonly addresses = new Uint32Array(koffi.view(this.table, 8 * Args.SLOTS));
  private readonly base = Number(koffi.address(this.values));
  private slot = 0;
  private count = 0;

  reset(): this {
    this.slot = 0;
    this.count = 0;
    return this;
  }

  private next(slots: number): number {
    if (this.slot + slots > Args.SLOTS) throw new Error('kernel arguments larger than 8 KiB');
    const at = this.slot * 8;
    const address = this.base + at;
    this.addresses[2 * this.count] = address % 4294967296;
    this.addresses[2 * this.count + 1] = Math.floor(address / 4294967296);
    this.count++;
    this.slot += slots;
    return at;
  }

  /** A device pointer (or any unsigned 64-bit value below 2⁵³). */
  p(value: number): this {
    const at = this.next(1);
    this.view.setUint32(at, value % 4294967296, true);
    this.view.setUint32(at + 4, Math.floor(value / 4294967296), true);
    return this;
  }

  /** A signed 64-bit integer (long long), |value| < 2⁵³. */
  l(value: number): this {
    const at = this.next(1);
    this.view.setBigInt64(at, BigInt(value), true);
    return this;
  }

  i(value: number): this {
    this.view.setInt32(this.next(1), value, true);
    return this;
  }

  f(value: number): this {
    this.view.setFloat32(this.next(1), value, true);
    return this;
  }

  /** A struct passed by value, as its bytes. */
  bytes(data: Uint8Array): this {
    this.bytes8.set(data, this.next(Math.ceil(data.byteLength / 8)));
    return this;
  }
}

export { koffi };
