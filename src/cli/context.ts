// SPDX-License-Identifier: Apache-2.0
import type { Sink } from '../output/columns.js';

/** What a command gets from main: where to write, whether to be verbose, how to stop. */
export interface CommandContext {
  out: Sink;
  err: Sink;
  verbose: boolean;
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal;
}
