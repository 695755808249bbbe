// SPDX-License-Identifier: Apache-2.0
/** `tlscope trace sni`: flags → session → columns or JSON. */
import { sniDefinition } from '../../gadgets/sni/definition.js';
import type { CommandContext } from '../context.js';
import { runTraceCommand } from '../trace-command.js';

export function run(argv: string[], ctx: CommandContext): Promise<number> {
  return runTraceCommand(sniDefinition, argv, ctx);
}
