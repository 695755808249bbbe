// SPDX-License-Identifier: Apache-2.0
/**
 * A CPU profile of a running command, for the cost work (bench/, docs/benchmarks.md):
 * TLSCOPE_CPU_PROFILE=FILE writes a `.cpuprofile` (Chrome DevTools, speedscope) of what the
 * command did after its BPF programs were loaded. `node --cpu-prof` cannot be used: its
 * SIGPROF interrupts the verifier, whose load then fails with EAGAIN.
 */
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';

export interface CpuProfile {
  stop(): Promise<void>;
}

/** Starts sampling when TLSCOPE_CPU_PROFILE names a file; undefined otherwise. */
export async function startCpuProfile(env: NodeJS.ProcessEnv = process.env): Promise<CpuProfile | undefined> {
  const file = env.TLSCOPE_CPU_PROFILE;
  if (file === undefined || file === '') return undefined;
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 250 });
  await session.post('Profiler.start');
  let stopped = false;
  return {
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(file, JSON.stringify(profile));
      session.disconnect();
    },
  };
}
