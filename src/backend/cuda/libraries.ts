/**
 * Finding CUDA on a normal Linux install, with no compiler and no Python on the user's side: the driver
 * (`libcuda.so.1`) comes from the system library path, where the NVIDIA driver puts it; NVRTC and cuBLAS come from
 * a CUDA toolkit (CUDA_HOME, CUDA_PATH, /usr/local/cuda*, the system path) or from the folders of NVIDIA's pip
 * wheels (site-packages/nvidia/…/lib, as PyTorch installs them). ATTEND_CUDA_LIBS names more folders to try
 * first (colon-separated). When something is missing, the error says which library and where it looked.
 */
import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import koffi from 'koffi';
import { AttendError } from '../../errors.js';

export type Library = ReturnType<typeof koffi.load>;

/** Versions tried newest first: CUDA 13, 12, 11 (NVRTC 11.2+ keeps the .so.11.2 name for every 11.x). */
const NAMES = {
  nvrtc: ['libnvrtc.so.13', 'libnvrtc.so.12', 'libnvrtc.so.11.2', 'libnvrtc.so'],
  cublas: ['libcublas.so.13', 'libcublas.so.12', 'libcublas.so.11', 'libcublas.so'],
};

/** Sub-folders of a site-packages folder where NVIDIA's wheels put their libraries. */
const WHEEL_DIRS = ['nvidia/cu13/lib', 'nvidia/cuda_nvrtc/lib', 'nvidia/cublas/lib', 'nvidia/cu12/lib'];

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Folders that may hold CUDA libraries, in the order they are tried. */
export function searchFolders(env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  for (const d of (env.ATTEND_CUDA_LIBS ?? '').split(':')) if (d) out.push(d);
  for (const root of [env.CUDA_HOME, env.CUDA_PATH]) if (root) out.push(join(root, 'lib64'), join(root, 'targets/x86_64-linux/lib'));
  const toolkits = list('/usr/local').filter((n) => /^cuda(-[\d.]+)?$/.test(n)).sort().reverse();
  for (const t of toolkits) out.push(join('/usr/local', t, 'lib64'), join('/usr/local', t, 'targets/x86_64-linux/lib'));
  const sites: string[] = [];
  const pythons = (dir: string, tail: string) => list(dir).filter((n) => /^python3(\.\d+)?$/.test(n)).map((n) => join(dir, n, tail));
  if (env.VIRTUAL_ENV) sites.push(...pythons(join(env.VIRTUAL_ENV, 'lib'), 'site-packages'));
  if (env.CONDA_PREFIX) sites.push(...pythons(join(env.CONDA_PREFIX, 'lib'), 'site-packages'));
  sites.push(...pythons(join(homedir(), '.local/lib'), 'site-packages'));
  for (const root of ['/usr/local/lib', '/usr/lib']) sites.push(...pythons(root, 'dist-packages'), ...pythons(root, 'site-packages'));
  for (const s of sites) for (const w of WHEEL_DIRS) out.push(join(s, w));
  return out.filter((d, i) => out.indexOf(d) === i && existsSync(d));
}

/** The CUDA driver, or a one-line error saying it is not there. */
export function loadDriver(): Library {
  try {
    return koffi.load('libcuda.so.1');
  } catch {
    throw new AttendError('no CUDA driver: libcuda.so.1 is not in the system library path (install the NVIDIA driver; --device cpu runs without one)');
  }
}

/** NVRTC or cuBLAS: the first that loads, from the folders above, then the system library path. */
export function loadLibrary(which: keyof typeof NAMES, env: NodeJS.ProcessEnv = process.env): { lib: Library; path: string } {
  const folders = searchFolders(env);
  const tried: string[] = [];
  for (const dir of folders) {
    const names = list(dir);
    for (const name of NAMES[which]) {
      const file = names.includes(name) ? join(dir, name) : names.find((n) => n.startsWith(`${name}.`) && !n.endsWith('.a'));
      if (!file) continue;
      const path = file.startsWith('/') ? file : join(dir, file);
      try {
        return { lib: koffi.load(path), path };
      } catch {
        tried.push(path);
      }
    }
  }
  for (const name of NAMES[which]) {
    try {
      return { lib: koffi.load(name), path: name };
    } catch {
      tried.push(name);
    }
  }
  const where = folders.length ? folders.join(', ') : 'no CUDA toolkit or NVIDIA wheel folder found';
  throw new AttendError(`${which === 'nvrtc' ? 'NVRTC' : 'cuBLAS'} not found (looked in ${where} and the system library path): install a CUDA toolkit or NVIDIA's pip wheels, or set ATTEND_CUDA_LIBS to the folder holding ${NAMES[which][0]}`);
}
