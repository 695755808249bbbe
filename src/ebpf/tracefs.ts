// SPDX-License-Identifier: Apache-2.0
import { existsSync } from 'node:fs';
import { c, errno, strerror } from './native.js';

let done = false;

/**
 * libbpf attaches tracepoints and uprobes by name through tracefs. Some hosts (minimal VMs,
 * containers) do not mount it; mount it once, as bpftrace and perf users do by hand.
 * Returns a warning string when it could not, undefined when tracefs is there.
 */
export function ensureTracefs(): string | undefined {
  if (done || existsSync('/sys/kernel/tracing/events') || existsSync('/sys/kernel/debug/tracing/events')) {
    done = true;
    return undefined;
  }
  const r = c.mount('nodev', '/sys/kernel/tracing', 'tracefs', 0, null) as number;
  if (r < 0) return `tracefs is not mounted and mounting it failed: ${strerror(errno())}`;
  done = true;
  return undefined;
}
