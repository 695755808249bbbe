// SPDX-License-Identifier: Apache-2.0
/**
 * ClientHello parser micro benchmark: hellos parsed per second, single thread.
 *
 *   npx tsc -p . && node dist/bench/parsers/clienthello.js [seconds per case, default 1]
 *
 * Cases: a real curl hello (fixture), a Chrome-like post-quantum hello with GREASE and a
 * shuffled extension order (~1.8 KB, the name past byte 1500), the same split over 4 records,
 * and the reassembler fed that hello as 2 TCP segments each seen twice (loopback).
 */
import { readFileSync } from 'node:fs';
import { ClientHelloAssembler } from '../../src/protocols/clienthello-assembler.js';
import { parseClientHello } from '../../src/protocols/tls.js';
import { buildClientHello, splitIntoSegments, type ClientHelloSpec } from '../../test/helpers/clienthello.js';
import { opsPerSecond } from '../common.js';

const secondsPerCase = Number(process.argv[2] ?? 1);

interface Case {
  name: string;
  bytes: number;
  /** Runs the operation n times; returns a value so the work cannot be optimised away. */
  run: (n: number) => number;
}

function parseCase(name: string, stream: Uint8Array): Case {
  return {
    name,
    bytes: stream.length,
    run: (n) => {
      let names = 0;
      for (let i = 0; i < n; i++) {
        const result = parseClientHello(stream);
        if (result.status !== 'ok') throw new Error(`${name}: ${JSON.stringify(result)}`);
        names += result.hello.serverName === undefined ? 0 : 1;
      }
      return names;
    },
  };
}

function assemblerCase(name: string, stream: Uint8Array): Case {
  const segments = splitIntoSegments(stream, { initialSeq: 1, duplicate: true });
  const assembler = new ClientHelloAssembler<number>({ now: () => 0, maxFlows: 1024 });
  let flow = 0;
  return {
    name,
    bytes: stream.length,
    run: (n) => {
      let found = 0;
      for (let i = 0; i < n; i++) {
        flow++;
        for (const s of segments) if (assembler.push(flow, s.seq, s.payload).status === 'hello') found++;
        assembler.forget(flow);
      }
      if (found !== n) throw new Error(`${name}: ${found} hellos for ${n} flows`);
      return found;
    },
  };
}

/** Runs batches until the time is up; returns operations per second. */
function measure(c: Case): number {
  return opsPerSecond(c.run, secondsPerCase);
}

const curl = new Uint8Array(readFileSync(new URL('../../../test/fixtures/clienthello/curl.bin', import.meta.url)));
const chromeLikeSpec: ClientHelloSpec = {
  serverName: 'www.example.test',
  alpn: ['h2', 'http/1.1'],
  grease: true,
  postQuantum: true,
  extensionOrder: 'shuffle',
  echPayloadLength: 186,
  seed: 42,
};
const chromeLike = buildClientHello(chromeLikeSpec);

const cases: Case[] = [
  parseCase('parse, curl fixture', curl),
  parseCase('parse, post-quantum + GREASE + ECH, 1 record', chromeLike.bytes),
  parseCase('parse, same, 4 records', buildClientHello({ ...chromeLikeSpec, records: 4 }).bytes),
  assemblerCase('assembler, same hello, 2 segments x 2 (loopback)', chromeLike.bytes),
];

console.log(`node ${process.version}, ${secondsPerCase}s per case`);
for (const c of cases) {
  const perSecond = measure(c);
  const mbPerSecond = (perSecond * c.bytes) / 1e6;
  console.log(`${c.name} (${c.bytes} B): ${Math.round(perSecond).toLocaleString('en-US')} hellos/s, ${mbPerSecond.toFixed(0)} MB/s`);
}
