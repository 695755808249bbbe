// SPDX-License-Identifier: Apache-2.0
// trace tls (the real CLI) against Go crypto/tls from every Go release reachable here, 1.15
// (stack ABI0) to the newest toolchain the module proxy serves (register ABI): one program
// (test/fixtures/stacks/go) built per release with symbols, stripped (-s -w), and PIE +
// -trimpath + stripped; a server of one build and a client of another exchange random bytes,
// and each side's plaintext must be byte-exact both ways and carry its own pid and tuple.
// Toolchains and binaries are cached (toolchains.ts): first run ≈ 10 min here, then seconds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.tls);
import { stream, type TlsJson } from '../tls/helpers.js';
import { escape, request, stackTracer } from './tracer.js';
import { startProcess, stopChild } from '../../helpers/process.js';
import { waitUntil } from '../../helpers/wait.js';
import { GO_RELEASES, goFixture, type GoRelease, type GoVariant } from './toolchains.js';


const stack = stackTracer('tlscope-stacks-go-', 3600);

async function exchange(r: GoRelease, serverVariant: GoVariant, clientVariant: GoVariant): Promise<void> {
  const serverBin = goFixture(r, serverVariant);
  const clientBin = goFixture(r, clientVariant);
  const abi = Number(r.version.split('.')[1]) >= 17 ? 'register' : 'stack';
  const req = request(3000);
  const reply = randomBytes(40_000); // more than two TLS records, one Write
  // probes go on the file (its inode), once, whichever process mapped it first
  const probed = (bin: string): RegExp => new RegExp(`probing go in /proc/\\d+/root${escape(bin)} \\(go${escape(r.version)}, ${abi} ABI, \\d+ RETs`);
  const server = startProcess(serverBin, ['server', reply.toString('hex')], { timeoutMs: 120_000 });
  try {
    await stack.tracer.waitForStderr(probed(serverBin));
    await waitUntil('the server port', () => /^port \d+$/m.test(server.output()) || server.child.exitCode !== null);
    const port = Number(/^port (\d+)$/m.exec(server.output())?.[1]);
    assert.ok(port > 0, `server ${serverVariant} started`);
    const client = startProcess(clientBin, ['client', String(port), req.toString('hex')], { timeoutMs: 120_000 });
    await stack.tracer.waitForStderr(probed(clientBin));
    client.child.stdin!.write('go\n');
    const ran = await client.done;
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(ran.stdout, `reply ${reply.toString('hex')}\n`);
    const sizes = (): [number, number, number, number] => [
      stream(stack.tracer.events, client.pid, 'write').length, stream(stack.tracer.events, server.pid, 'read').length,
      stream(stack.tracer.events, server.pid, 'write').length, stream(stack.tracer.events, client.pid, 'read').length,
    ];
    await waitUntil(`all bytes traced (${sizes().join('/')})`, () => {
      const [cw, sr, sw, cr] = sizes();
      return cw >= req.length && sr >= req.length && sw >= reply.length && cr >= reply.length;
    });
    await stack.tracer.marker(stack.py); // both have moved all they will: anything more would be out by now
    assert.ok(stream(stack.tracer.events, client.pid, 'write').equals(req), 'client write: the request, byte-exact');
    assert.ok(stream(stack.tracer.events, server.pid, 'read').equals(req), 'server read: the request, byte-exact');
    assert.ok(stream(stack.tracer.events, server.pid, 'write').equals(reply), 'server write: the reply, byte-exact');
    assert.ok(stream(stack.tracer.events, client.pid, 'read').equals(reply), 'client read: the reply, byte-exact');
    const check = (evs: TlsJson[], bin: string, local: (e: TlsJson) => string | undefined, sources: string[]): void => {
      assert.ok(evs.length >= 2);
      for (const e of evs) {
        assert.equal(e.source, 'go');
        assert.match(e.function, /^crypto\/tls\.\(\*Conn\)\.(Read|Write)$/);
        assert.equal(e.proc.comm, basename(bin).slice(0, 15));
        assert.equal(local(e), `127.0.0.1:${port}`, `tuple of ${e.direction}`);
        assert.ok(e.tupleSource !== undefined && sources.includes(e.tupleSource), `tuple source ${e.tupleSource}`);
      }
    };
    check(stack.tracer.of(client.pid), clientBin, (e) => e.remote, ['socket', 'session']);
    // the server's handshake (not probed) may read the request along with the client's Finished
    check(stack.tracer.of(server.pid), serverBin, (e) => e.local, ['socket', 'session', 'thread']);
  } catch (e) {
    const said = stack.tracer.stderr.split('\n').filter((l) => !l.startsWith('{')).slice(-8).join('\n');
    throw new Error(`${(e as Error).message}\nserver ${serverVariant}, client ${clientVariant}; the tracer said last:\n${said}`, { cause: e });
  } finally {
    await stopChild(server.child);
  }
}

for (const r of GO_RELEASES.filter((x) => process.env.TLSCOPE_GO === undefined || x.version === process.env.TLSCOPE_GO)) {
  test(`Go ${r.version} (${r.from}): server with symbols ↔ stripped client, then PIE+trimpath+stripped both sides`, { skip: kernelSkip }, async () => {
    await exchange(r, 'symbols', 'stripped');
    await exchange(r, 'hardened', 'hardened');
  });
}
