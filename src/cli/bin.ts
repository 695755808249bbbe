#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
/** The `tlscope` executable: wires signals and stdio to main(). */
import { main, reportError } from './main.js';
import type { CommandContext } from './context.js';

export async function cli(): Promise<void> {
  const argv = process.argv.slice(2);
  const controller = new AbortController();
  let signals = 0;
  let finished = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    // second ^C, or ^C while only waiting for a stalled reader of stdout: leave now
    if (signals > 1 || finished) process.exit(130); // links are fds: the kernel detaches them
    controller.abort(new Error(sig));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') controller.abort(new Error('EPIPE')); // `| head`: stop quietly
  });
  const ctx: CommandContext = { out: process.stdout, err: process.stderr, verbose: argv.includes('-v') || argv.includes('--verbose'), signal: controller.signal };
  let code: number;
  try {
    code = await main(argv, ctx);
  } catch (e) {
    code = reportError(e, ctx);
  }
  process.exitCode = code;
  finished = true;
  // Timers of closed readers are gone; leave once what was written has reached stdout and stderr.
  exitWhenFlushed(code);
}

/**
 * process.exit() drops what a pipe has not taken yet: a slow reader of `-o json | …` got only
 * its first 64 KiB of a run's last output before this (measured: 200 MiB written, 65 536 bytes
 * read). Wait until each stream has flushed (a write's callback runs after every earlier
 * write's), or failed (EPIPE: the reader is gone); a ^C while waiting leaves at once.
 */
function exitWhenFlushed(code: number): void {
  const pending = [process.stdout, process.stderr].filter((s) => s.writableLength > 0 && !s.destroyed);
  let left = pending.length;
  if (left === 0) {
    setImmediate(() => process.exit(code));
    return;
  }
  for (const s of pending) {
    s.write('', () => {
      if (--left === 0) process.exit(code);
    });
  }
}

void cli();
