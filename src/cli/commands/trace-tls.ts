// SPDX-License-Identifier: Apache-2.0
/** `tlscope trace tls`: flags → session (with the --http stage, and -w's pcapng stage) → columns or JSON. */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { GadgetDefinition, Stage } from '../../gadgets/definition.js';
import type { TraceTlsEvent } from '../../gadgets/tls/fields.js';
import type { TlsEvent } from '../../gadgets/tls/gadget.js';
import { redactorOf, tlsDefinition } from '../../gadgets/tls/definition.js';
import { PlaintextPcapngWriter } from '../../output/plaintext-pcapng.js';
import type { Redactor } from '../../protocols/redact.js';
import type { CommandContext } from '../context.js';
import { runTraceCommand } from '../trace-command.js';

/** -w FILE: writes each batch's plaintext (masked by --redact first) to a pcapng file as it passes. */
function pcapngStage(path: string, redactor: Redactor | undefined): Stage<TlsEvent, TlsEvent> {
  let fd: number | undefined;
  let w: PlaintextPcapngWriter | undefined;
  const open = (): PlaintextPcapngWriter => {
    const f = openSync(path, 'w');
    fd = f;
    return new PlaintextPcapngWriter((chunk) => void writeSync(f, chunk));
  };
  return {
    name: 'pcapng',
    process(batch) {
      w ??= open();
      w.write(batch.filter((e) => e.local !== undefined && e.remote !== undefined).map((e) => ({
        timestampMs: e.timestamp,
        direction: e.direction,
        local: e.local ?? '',
        remote: e.remote ?? '',
        data: redactor === undefined ? e.data : redactor.http1Bytes(e.data),
        owner: `pid ${e.proc.pid} (${e.proc.comm})`,
        comment: `pid ${e.proc.pid} tid ${e.proc.tid} ${e.proc.comm} ${e.function}${e.truncated ? ' (cut by --max-bytes)' : ''}`,
        connection: e.conn,
      })));
      return [...batch];
    },
    flush() {
      (w ?? open()).close();
      if (fd !== undefined) closeSync(fd);
      w = undefined;
      fd = undefined;
      return [];
    },
  };
}

/** trace tls, with -w FILE's stage first (it sees every call, before --http pairs them). */
const withPcapng: GadgetDefinition<TraceTlsEvent, TlsEvent> = {
  ...tlsDefinition,
  stages: (params) => {
    const path = params['write'];
    const rest = tlsDefinition.stages?.(params) ?? [];
    return typeof path === 'string' ? [pcapngStage(path, redactorOf(params)), ...rest] : rest;
  },
};

export function run(argv: string[], ctx: CommandContext): Promise<number> {
  return runTraceCommand(withPcapng, argv, ctx);
}
