// SPDX-License-Identifier: Apache-2.0
/**
 * bench/capture's traffic: a TCP sink that reads and discards, and a sender that writes as
 * fast as it can for a number of seconds (then stops: the run is bounded), iperf-like.
 *
 *   node traffic.js sink PORT             prints "ready" when listening, then one JSON line per connection
 *   node traffic.js send HOST PORT SECONDS [WRITE_BYTES]   prints {"bytes":…, "seconds":…}
 */
import { createServer, connect } from 'node:net';

const [mode, ...args] = process.argv.slice(2);

if (mode === 'sink') {
  const port = Number(args[0]);
  const server = createServer((sock) => {
    let bytes = 0;
    sock.on('data', (b: Buffer) => (bytes += b.length));
    sock.on('end', () => {
      process.stdout.write(`${JSON.stringify({ received: bytes })}\n`);
      sock.end();
    });
    sock.on('error', () => {});
  });
  server.listen(port, '0.0.0.0', () => process.stdout.write('ready\n'));
  process.on('SIGTERM', () => process.exit(0));
} else if (mode === 'send') {
  const [host = '127.0.0.1', port = '5201', seconds = '5', chunk = String(1 << 16)] = args;
  const buf = Buffer.alloc(Number(chunk), 0x61);
  const sock = connect({ host, port: Number(port) });
  let bytes = 0;
  let stop = false;
  const start = process.hrtime.bigint();
  sock.setNoDelay(Number(chunk) < 4096);
  sock.on('connect', () => {
    setTimeout(() => (stop = true), Number(seconds) * 1000);
    const pump = (): void => {
      while (!stop) {
        bytes += buf.length;
        if (!sock.write(buf)) {
          sock.once('drain', pump);
          return;
        }
      }
      const secs = Number(process.hrtime.bigint() - start) / 1e9;
      sock.end(() => {
        process.stdout.write(`${JSON.stringify({ bytes, seconds: secs })}\n`);
      });
    };
    pump();
  });
  sock.on('error', (e) => {
    process.stderr.write(`send: ${e.message}\n`);
    process.exit(1);
  });
} else {
  process.stderr.write('usage: traffic.js sink PORT | send HOST PORT SECONDS [WRITE_BYTES]\n');
  process.exit(2);
}
