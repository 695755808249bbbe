// SPDX-License-Identifier: Apache-2.0
/**
 * `trace tls -w FILE`: the decrypted pcapng written from the events the session shows, so the
 * file holds what the run printed and nothing else: after attribution, scope, enrichment,
 * --filter/--query, and after --redact (the masked bytes are the ones written, no second
 * masking state). A shown call is one chunk; a shown --http exchange brings the raw calls it
 * was read from (TlsHttpEvent.calls, kept by the --http stage when -w is given), so the file
 * still holds TCP streams that Wireshark dissects, not the exchange's decoded summary.
 *
 * One pcapng interface per container (pod container) for container events, named as capture
 * names containers (containerPlace), and per process for host events; each packet's comment
 * names the pid, tid, comm, function and container.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { errorMessage, UsageError } from '../errors.js';
import { containerPlace } from '../gadgets/capture/labels.js';
import type { TraceTlsEvent } from '../gadgets/tls/fields.js';
import type { TlsEvent } from '../gadgets/tls/gadget.js';
import type { CommonEvent } from '../fields/common.js';
import { PlaintextPcapngWriter, type PlaintextChunk } from '../output/plaintext-pcapng.js';
import type { EventTap } from './trace-command.js';

/** The container an event was attributed to, named as capture names it; undefined for the host's (and unattributed) events. */
export function placeOf(e: CommonEvent): string | undefined {
  const r = e.runtime;
  if (r === undefined || r.containerName === '?' || r.containerName === '') return undefined;
  return containerPlace({ name: r.containerName, runtime: r.runtimeName, k8s: e.k8s });
}

/** The chunks one shown event stands for: a call is one; an exchange, the calls it was read from. */
export function plaintextChunks(e: TraceTlsEvent): PlaintextChunk[] {
  const place = placeOf(e);
  const unattributed = e.runtime?.containerName === '?';
  const owner = place ?? `pid ${e.proc.pid} (${e.proc.comm})${unattributed ? ' in an unknown container' : ''}`;
  const calls: readonly TlsEvent[] = e.kind === 'data' ? [e] : e.calls ?? [];
  const out: PlaintextChunk[] = [];
  for (const c of calls) {
    if (c.local === undefined || c.remote === undefined) continue;
    out.push({
      timestampMs: c.timestamp,
      direction: c.direction,
      local: c.local,
      remote: c.remote,
      data: c.data,
      owner,
      comment: `pid ${c.proc.pid} tid ${c.proc.tid} ${c.proc.comm} ${c.function}${place === undefined ? (unattributed ? ' in an unknown container' : '') : ` in ${place}`}${c.truncated ? ' (cut by --max-bytes)' : ''}`,
      connection: c.conn,
    });
  }
  return out;
}

/** A pcapng writer on a file, fed by the front end with the shown events; close() ends the streams and the file. */
export function pcapngFileTap(path: string): EventTap<TraceTlsEvent> {
  let fd: number;
  try {
    fd = openSync(path, 'w');
  } catch (e) {
    throw new UsageError(`-w ${path}: cannot write the file: ${errorMessage(e)}`, 'give a path in a directory that exists and that you may write to');
  }
  const w = new PlaintextPcapngWriter((chunk) => void writeSync(fd, chunk));
  let closed = false;
  return {
    events(batch) {
      w.write(batch.flatMap(plaintextChunks));
    },
    close() {
      if (closed) return;
      closed = true;
      try {
        w.close();
      } finally {
        closeSync(fd);
      }
    },
  };
}
