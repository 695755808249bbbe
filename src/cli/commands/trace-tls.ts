// SPDX-License-Identifier: Apache-2.0
/** `tlscope trace tls`: flags → session (with the --http stage) → columns or JSON. */
import { tlsDefinition } from '../../gadgets/tls/definition.js';
import type { CommandContext } from '../context.js';
import { runTraceCommand } from '../trace-command.js';

export function run(argv: string[], ctx: CommandContext): Promise<number> {
  return runTraceCommand(tlsDefinition, argv, ctx);
}
