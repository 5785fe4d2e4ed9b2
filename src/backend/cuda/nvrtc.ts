/**
 * Kernels are CUDA C in this folder's kernels/ (copied beside the built JavaScript), compiled at run time by NVRTC
 * for the device's architecture and cached on disk by a hash of the source, the options, the architecture and
 * NVRTC's version: a model's kernels compile once per machine (~0.1–1 s each), later runs load the binary.
 * Cache folder: ATTEND_CACHE_DIR, else $XDG_CACHE_HOME/attend, else ~/.cache/attend; a cache that cannot be
 * written only costs the compile. Where NVRTC is older than the device, PTX for the newest architecture it knows is
 * handed to the driver, which compiles it for the device.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { AttendError } from '../../errors.js';
import { type Library, loadLibrary } from './libraries.js';

/** A kernel source file of kernels/, with `#include "x.cuh"` lines of that folder spliced in. */
export function kernelSource(file: string): string {
  const read = (name: string) => readFileSync(new URL(`./kernels/${name}`, import.meta.url), 'utf8');
  return read(file).replace(/^#include "([\w.-]+\.cuh)"$/gm, (_, name: string) => read(name).replace(/^#pragma once$/m, ''));
}

export interface CompiledKernel {
  /** CUBIN, or PTX (NUL-terminated) for the driver to compile. */
  image: Uint8Array;
  kind: 'cubin' | 'ptx';
  /** Whether it came from the disk cache. */
  cached: boolean;
}

function cacheDir(env = process.env): string {
  return join(env.ATTEND_CACHE_DIR ?? (env.XDG_CACHE_HOME ? join(env.XDG_CACHE_HOME, 'attend') : join(homedir(), '.cache', 'attend')), 'cuda');
}

export class Nvrtc {
  readonly path: string;
  readonly version: string;
  private readonly archs: number[];
  private readonly f: Record<string, (...args: unknown[]) => number>;
  private readonly lib: Library;

  constructor() {
    const { lib, path } = loadLibrary('nvrtc');
    this.lib = lib;
    this.path = path;
    const decl: Record<string, string> = {
      nvrtcVersion: 'int nvrtcVersion(_Out_ int *major, _Out_ int *minor)',
      nvrtcGetNumSupportedArchs: 'int nvrtcGetNumSupportedArchs(_Out_ int *n)',
      nvrtcGetSupportedArchs: 'int nvrtcGetSupportedArchs(_Out_ int *archs)',
      nvrtcCreateProgram: 'int nvrtcCreateProgram(_Out_ void **prog, const char *src, const char *name, int nh, void *headers, void *names)',
      nvrtcDestroyProgram: 'int nvrtcDestroyProgram(_Inout_ void **prog)',
      nvrtcCompileProgram: 'int nvrtcCompileProgram(void *prog, int n, const char **opts)',
      nvrtcGetProgramLogSize: 'int nvrtcGetProgramLogSize(void *prog, _Out_ size_t *n)',
      nvrtcGetProgramLog: 'int nvrtcGetProgramLog(void *prog, _Out_ uint8_t *log)',
      nvrtcGetCUBINSize: 'int nvrtcGetCUBINSize(void *prog, _Out_ size_t *n)',
      nvrtcGetCUBIN: 'int nvrtcGetCUBIN(void *prog, _Out_ uint8_t *bin)',
      nvrtcGetPTXSize: 'int nvrtcGetPTXSize(void *prog, _Out_ size_t *n)',
      nvrtcGetPTX: 'int nvrtcGetPTX(void *prog, _Out_ uint8_t *ptx)',
    };
    this.f = Object.fromEntries(Object.entries(decl).map(([k, d]) => [k, this.lib.func(d) as (...args: unknown[]) => number]));
    const [major, minor] = [[0], [0]];
    this.check(this.f.nvrtcVersion(major, minor), 'nvrtcVersion');
    this.version = `${major[0]}.${minor[0]}`;
    const n = [0];
    this.check(this.f.nvrtcGetNumSupportedArchs(n), 'nvrtcGetNumSupportedArchs');
    const archs = new Int32Array(n[0]);
    this.check(this.f.nvrtcGetSupportedArchs(archs), 'nvrtcGetSupportedArchs');
    this.archs = Array.from(archs);
  }

  private check(code: number, what: string): void {
    if (code !== 0) throw new AttendError(`NVRTC ${what} failed (error ${code})`);
  }

  /**
   * Compiles `source` (named `name` in messages) for compute capability `arch` (90 = sm_90) with `defines`, or
   * loads it from the cache. A compile error is one AttendError carrying NVRTC's log.
   */
  compile(name: string, source: string, arch: number, defines: Record<string, number> = {}): CompiledKernel {
    const direct = this.archs.includes(arch);
    const target = direct ? arch : Math.max(...this.archs.filter((a) => a <= arch));
    if (!Number.isFinite(target)) throw new AttendError(`NVRTC ${this.version} cannot build for sm_${arch} (it knows ${this.archs.join(', ')})`);
    const kind = direct ? 'cubin' : 'ptx';
    const options = [
      `--gpu-architecture=${direct ? 'sm' : 'compute'}_${target}`,
      '--std=c++17',
      '-default-device',
      ...Object.entries(defines).map(([k, v]) => `-D${k}=${v}`),
    ];
    const key = createHash('sha256').update(JSON.stringify([source, options, this.version, kind])).digest('hex').slice(0, 32);
    const dir = cacheDir();
    const file = join(dir, `${name.replace(/[^\w.-]/g, '_')}-${key}.${kind}`);
    try {
      return { image: new Uint8Array(readFileSync(file)), kind, cached: true };
    } catch {
      // not cached yet
    }
    const prog = [null];
    this.check(this.f.nvrtcCreateProgram(prog, source, name, 0, null, null), 'nvrtcCreateProgram');
    try {
      const code = this.f.nvrtcCompileProgram(prog[0], options.length, options);
      if (code !== 0) {
        const size = [0];
        this.f.nvrtcGetProgramLogSize(prog[0], size);
        const log = Buffer.alloc(Number(size[0]));
        this.f.nvrtcGetProgramLog(prog[0], log);
        const text = log.toString('utf8').replace(/\0+$/, '').trim();
        throw new AttendError(`NVRTC could not compile ${name} (${options.join(' ')}): ${text.split('\n').slice(0, 12).join(' | ')}`);
      }
      const size = [0];
      this.check(kind === 'cubin' ? this.f.nvrtcGetCUBINSize(prog[0], size) : this.f.nvrtcGetPTXSize(prog[0], size), 'get size');
      const image = new Uint8Array(Number(size[0]));
      this.check(kind === 'cubin' ? this.f.nvrtcGetCUBIN(prog[0], image) : this.f.nvrtcGetPTX(prog[0], image), 'get image');
      try {
        mkdirSync(dir, { recursive: true });
        const tmp = `${file}.${process.pid}.tmp`;
        writeFileSync(tmp, image);
        renameSync(tmp, file);
      } catch {
        // an unwritable cache only costs the next compile
      }
      return { image, kind, cached: false };
    } finally {
      this.f.nvrtcDestroyProgram(prog);
    }
  }
}
