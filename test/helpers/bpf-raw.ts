// SPDX-License-Identifier: Apache-2.0
/** Builds and runs test/helpers/bpf-raw.c: a raw bpf(2) program load or map create, no libbpf. */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const src = fileURLToPath(new URL('../../../test/helpers/bpf-raw.c', import.meta.url));
const workDir = fileURLToPath(new URL('../../../test/.work/', import.meta.url));

export const BPF_PROG_TYPE_SOCKET_FILTER = 1;
export const BPF_MAP_TYPE_RINGBUF = 27;

function build(): string {
  mkdirSync(workDir, { recursive: true });
  const bin = `${workDir}bpf-raw`;
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) execFileSync('cc', ['-O2', '-o', bin, src]);
  return bin;
}

/** "ok", or "errno N", from the kernel itself. */
export function rawBpf(kind: 'prog' | 'map', type: number): string {
  const r = spawnSync(build(), [kind, String(type)], { encoding: 'utf8' });
  return r.stdout.trim() || `exit ${r.status}: ${r.stderr}`;
}
