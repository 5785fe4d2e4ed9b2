// The CUDA kernel sources (src/**/kernels/*.cu, *.cuh) beside the built JavaScript, where nvrtc.ts reads them.
import { cpSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
const root = new URL('..', import.meta.url).pathname;
function walk(dir) {
  for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
    const rel = join(dir, e.name);
    if (e.isDirectory()) walk(rel);
    else if (/\.(cu|cuh)$/.test(e.name)) cpSync(join(root, rel), join(root, 'dist', rel.slice('src/'.length)));
  }
}
walk('src');
