// SPDX-License-Identifier: Apache-2.0
/**
 * What the stacks tests share: one `tlscope trace tls --host` for the whole file, started in a
 * before hook once it has said what it traces, with a python TLS server for positive markers
 * and a work dir with a certificate; the after hook stops it and asserts a clean exit with
 * nothing lost. Plus the request bytes and the regex escaping both files use.
 */
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { notRoot } from '../../helpers/root.js';
import { CliTracer, makeWorkDir, startPyServer, stream, type PyServer } from '../tls/helpers.js';
import type { Running } from '../../helpers/process.js';
import { waitUntil } from '../../helpers/wait.js';

export interface StackTracer {
  readonly work: ReturnType<typeof makeWorkDir>;
  readonly tracer: CliTracer;
  readonly py: PyServer;
}

/**
 * Registers the file's before/after hooks (call it at the top level of a test file) and returns
 * what they set up, valid inside tests. Nothing is started without root.
 */
export function stackTracer(workPrefix: string, timeoutSeconds: number): StackTracer {
  let work: ReturnType<typeof makeWorkDir> | undefined;
  let tracer: CliTracer | undefined;
  let py: PyServer | undefined;
  before(async () => {
    if (notRoot) return;
    work = makeWorkDir(workPrefix);
    py = await startPyServer(work);
    tracer = new CliTracer(['--host', '--timeout', String(timeoutSeconds)]);
    await tracer.ready();
  });
  after(async () => {
    if (notRoot) return;
    const r = await tracer?.stop();
    await py?.close();
    work?.remove();
    assert.equal(r?.code, 0, r?.stderr);
    assert.match(r?.stderr ?? '', /tlscope: \d+ events? shown, 0 lost/);
  });
  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`the stacks ${what} is not set up (the before hook did not run or failed)`);
    return v;
  };
  return {
    get work() { return need(work, 'work dir'); },
    get tracer() { return need(tracer, 'tracer'); },
    get py() { return need(py, 'marker server'); },
  };
}

/** n random bytes without a newline but the last: the fixture servers read up to it. */
export function request(n: number): Buffer {
  const b = randomBytes(n);
  for (let i = 0; i < b.length; i++) if (b[i] === 0x0a) b[i] = 0x0b;
  b[n - 1] = 0x0a;
  return b;
}

/** `s` as a literal inside a RegExp. */
export function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The fixture peers' conversation (test/fixtures/stacks: `client` waits for a line on stdin):
 * lets the client go, checks it got the reply, waits until the tracer has every byte, and
 * asserts both directions byte-exact on both sides.
 */
export async function converseAndCheck(stack: StackTracer, client: Running, serverPid: number, req: Buffer, reply: Buffer): Promise<void> {
  client.child.stdin!.write('go\n');
  const ran = await client.done;
  assert.equal(ran.code, 0, ran.stderr);
  assert.equal(ran.stdout, `reply ${reply.toString('hex')}\n`);
  const ev = stack.tracer.events;
  await waitUntil('all bytes traced', () => stream(ev, client.pid, 'write').length >= req.length && stream(ev, serverPid, 'read').length >= req.length
    && stream(ev, serverPid, 'write').length >= reply.length && stream(ev, client.pid, 'read').length >= reply.length);
  await stack.tracer.marker(stack.py);
  assert.ok(stream(ev, client.pid, 'write').equals(req), 'client write: the request, byte-exact');
  assert.ok(stream(ev, serverPid, 'read').equals(req), 'server read: the request, byte-exact');
  assert.ok(stream(ev, serverPid, 'write').equals(reply), 'server write: the reply, byte-exact');
  assert.ok(stream(ev, client.pid, 'read').equals(reply), 'client read: the reply, byte-exact');
}
