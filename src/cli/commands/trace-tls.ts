// SPDX-License-Identifier: Apache-2.0
/** `tlscope trace tls`: flags → session (with the --http stage) → columns or JSON, and -w's pcapng of the shown events. */
import { openSync, writeSync } from 'node:fs';
import type { GadgetDefinition } from '../../gadgets/definition.js';
import type { TraceTlsEvent } from '../../gadgets/tls/fields.js';
import type { TlsEvent } from '../../gadgets/tls/gadget.js';
import { openTls, tlsDefinition, tlsStages } from '../../gadgets/tls/definition.js';
import type { CommandContext } from '../context.js';
import { runTraceCommand } from '../trace-command.js';
import { pcapngFileTap } from '../tls-pcapng.js';

/**
 * --keylog FILE: Go programs' TLS secrets as NSS key log lines, appended as they come (mode
 * 0600: they decrypt the traffic). A front-end flag only: the agent and the UI never write keys.
 */
function keylogSink(path: string): (line: string) => void {
  let fd: number | undefined;
  return (line) => {
    fd ??= openSync(path, 'a', 0o600);
    writeSync(fd, line);
  };
}

/** trace tls with the front end's own flags: --proto, --keylog, and -w's needs of the stages (the file is the tap below). */
const withFrontEnd: GadgetDefinition<TraceTlsEvent, TlsEvent> = {
  ...tlsDefinition,
  params: [
    ...tlsDefinition.params,
    { name: 'proto', type: 'string', arg: 'DIR', description: 'with --http: name gRPC messages with the .proto files under DIR (imports resolve from DIR); messages of other services stay generic (field numbers)' },
    { name: 'keylog', type: 'string', arg: 'FILE', description: 'append the TLS secrets of Go programs (crypto/tls) to FILE in the NSS key log format, so a capture of the encrypted traffic (capture -w) decrypts in Wireshark: tshark -o tls.keylog_file:FILE (OpenSSL: not a source, see README)' },
  ],
  open: (params, ctx) => {
    const path = params['keylog'];
    return openTls(params, ctx, typeof path === 'string' ? { keylog: keylogSink(path) } : {});
  },
  // -w: --http exchanges carry their raw calls for the pcapng (tls-pcapng.ts)
  stages: (params) => tlsStages(params, { keepCalls: typeof params['write'] === 'string' }),
};

/**
 * -w FILE is fed by the front end with the events the session shows (see tls-pcapng.ts), not by
 * a stage: a stage runs before attribution, scope and --filter/--query, so it would write calls
 * the run does not show and could only name processes. With --http the shown events are
 * exchanges; the --http stage keeps the raw (masked) calls with each exchange for -w (the
 * stages above ask for it), so the file still holds the calls, and only the shown exchanges'.
 * Placing the writer between the redact and --http stages instead would not do: --filter and
 * --query are over the exchanges' fields, so only the exchanges say which calls are shown.
 */
export function run(argv: string[], ctx: CommandContext): Promise<number> {
  return runTraceCommand(withFrontEnd, argv, ctx, {
    tap: (params) => (typeof params['write'] === 'string' ? pcapngFileTap(params['write']) : undefined),
  });
}
