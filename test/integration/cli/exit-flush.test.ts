// SPDX-License-Identifier: Apache-2.0
/**
 * Nothing written is lost at exit when standard output is a pipe whose reader is slow: tlscope
 * used to call process.exit() while the pipe still held back its last output, and a reader
 * that was not keeping up got only the first 64 KiB (the pipe's buffer) of it. Here the test
 * reads nothing until `tlscope capture -w -` has printed its summary (so it is about to exit),
 * then checks that the pcapng it got is whole: every block complete, more than a pipe's
 * worth, as many packets as the summary says were written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, connect, type AddressInfo } from 'node:net';
import { CLI } from '../../helpers/cli.js';
import { featureSkip, NEEDS } from '../../helpers/features.js';

const kernelSkip = featureSkip(...NEEDS.capture);

/** Fails with `what` instead of the test's timeout when p does not settle within ms. */
function within<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(what())), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Counts Enhanced Packet Blocks; throws where a block is cut. */
function pcapngPackets(b: Buffer): number {
  let off = 0;
  let packets = 0;
  while (off < b.length) {
    assert.ok(off + 12 <= b.length, `a block header cut at byte ${off} of ${b.length}`);
    const type = b.readUInt32LE(off);
    const len = b.readUInt32LE(off + 4);
    assert.ok(len >= 12 && off + len <= b.length, `block at ${off} (type ${type}, ${len} bytes) cut: the stream has ${b.length} bytes`);
    assert.equal(b.readUInt32LE(off + len - 4), len, `block at ${off}: trailing length`);
    if (type === 6) packets++;
    off += len;
  }
  return packets;
}

test('capture -w - into a pipe read only after its summary: every packet arrives', { skip: kernelSkip, timeout: 60_000 }, async () => {
  const sink = createServer((s) => s.resume());
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  const port = (sink.address() as AddressInfo).port;
  try {
    const child = spawn(process.execPath, [CLI, 'capture', '--host', '-i', 'lo', '-w', '-', '--timeout', '4', `tcp port ${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pause(); // a reader that is not keeping up: nothing is read until the exit
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const deadline = Date.now() + 20_000;
    while (!/listening|tracing|capturing/i.test(err) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    // ~8 MB over loopback: far more than a pipe's 64 KiB
    await new Promise<void>((resolve, reject) => {
      const c = connect(port, '127.0.0.1', () => {
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        for (let i = 0; i < 128; i++) c.write(chunk);
        c.end(resolve);
      });
      c.on('error', reject);
    });
    // read only once tlscope has said its last line (it then waits for its output to be taken)
    while (!/packets? received by filter/.test(err) && Date.now() < deadline + 20_000) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 500));
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    const ended = new Promise((r) => child.stdout.on('end', r));
    child.stdout.resume();
    await within(ended, 15_000, () => `stdout did not end within 15 s of reading; ${Buffer.concat(chunks).length} bytes read\n${err}`);
    const code = await within(exited, 5_000, () => `tlscope did not exit\n${err}`);
    const out = Buffer.concat(chunks);
    assert.equal(code, 0, err);
    assert.ok(out.length > 1024 * 1024, `only ${out.length} bytes reached the reader\n${err}`);
    const packets = pcapngPackets(out);
    const written = /(\d+) packets? (?:written|captured)/.exec(err);
    assert.ok(packets > 100, `${packets} packets in the file\n${err}`);
    if (written !== null) assert.equal(packets, Number(written[1]), err);
  } finally {
    await new Promise((r) => sink.close(r));
  }
});
