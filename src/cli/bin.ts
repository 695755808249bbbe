#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
/** The `tlscope` executable: wires signals and stdio to main(). */
import { main, reportError } from './main.js';
import type { CommandContext } from './context.js';

export async function cli(): Promise<void> {
  const argv = process.argv.slice(2);
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) process.exit(130); // second ^C: leave now; links are fds, the kernel detaches them
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
  // Timers of closed readers are gone; give stdout a chance to flush, then leave.
  setImmediate(() => process.exit(code));
}

void cli();
