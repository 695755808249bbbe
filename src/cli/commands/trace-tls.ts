// SPDX-License-Identifier: Apache-2.0
/** `tlscope trace tls`: flags → session (with the --http stage, and -w's pcapng stage) → columns or JSON. */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { GadgetDefinition, Stage } from '../../gadgets/definition.js';
import type { TraceTlsEvent } from '../../gadgets/tls/fields.js';
import type { TlsEvent } from '../../gadgets/tls/gadget.js';
import { openTls, redactorOf, tlsDefinition } from '../../gadgets/tls/definition.js';
import { PlaintextPcapngWriter } from '../../output/plaintext-pcapng.js';
import type { Redactor } from '../../protocols/redact.js';
import type { CommandContext } from '../context.js';
import { runTraceCommand } from '../trace-command.js';
import { RawRedaction } from '../../gadgets/tls/raw-redact.js';

/** -w FILE: writes each batch's plaintext (masked by --redact first) to a pcapng file as it passes. */
function pcapngStage(path: string, redactor: Redactor | undefined): Stage<TlsEvent, TlsEvent> {
  let fd: number | undefined;
  let w: PlaintextPcapngWriter | undefined;
  const open = (): PlaintextPcapngWriter => {
    const f = openSync(path, 'w');
    fd = f;
    return new PlaintextPcapngWriter((chunk) => void writeSync(f, chunk));
  };
  // its own masking state per connection: it sees the calls before the redact stage does
  const raw = redactor === undefined ? undefined : new RawRedaction(redactor);
  return {
    name: 'pcapng',
    process(batch) {
      w ??= open();
      w.write((raw === undefined ? batch : raw.process(batch)).filter((e) => e.local !== undefined && e.remote !== undefined).map((e) => ({
        timestampMs: e.timestamp,
        direction: e.direction,
        local: e.local ?? '',
        remote: e.remote ?? '',
        data: e.data,
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

/** trace tls, with -w FILE's stage first (it sees every call, before --http pairs them), and --keylog. */
const withPcapng: GadgetDefinition<TraceTlsEvent, TlsEvent> = {
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
  stages: (params) => {
    const path = params['write'];
    const rest = tlsDefinition.stages?.(params) ?? [];
    return typeof path === 'string' ? [pcapngStage(path, redactorOf(params)), ...rest] : rest;
  },
};

export function run(argv: string[], ctx: CommandContext): Promise<number> {
  return runTraceCommand(withPcapng, argv, ctx);
}
