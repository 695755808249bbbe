// SPDX-License-Identifier: Apache-2.0
/** Builds and drives test/helpers/trigger.c: a process that fires a tracepoint or a uprobe N times on cue. */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const src = fileURLToPath(new URL('../../../test/helpers/trigger.c', import.meta.url));
export const workDir = fileURLToPath(new URL('../../../test/.work/', import.meta.url));

export function buildTrigger(): string {
  mkdirSync(workDir, { recursive: true });
  const bin = `${workDir}trigger`;
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    execFileSync('cc', ['-O2', '-g', '-o', bin, src]);
  }
  return bin;
}

export interface Trigger {
  pid: number;
  path: string;
  /** Starts the calls and resolves when the process has made all of them and exited. */
  go(): Promise<void>;
  kill(): void;
}

export async function startTrigger(mode: 'getppid' | 'marker', n: number): Promise<Trigger> {
  const path = buildTrigger();
  const child: ChildProcess = spawn(path, [mode, String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const it = lines[Symbol.asyncIterator]();
  const first = await it.next();
  const m = /^ready (\d+)$/.exec(String(first.value));
  if (m === null) throw new Error(`trigger did not start: ${String(first.value)}`);
  const exited = new Promise<void>((resolve, reject) => {
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`trigger exited ${code}`))));
  });
  return {
    pid: Number(m[1]),
    path,
    go: async () => {
      child.stdin!.write('go\n');
      await exited;
    },
    kill: () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
