// SPDX-License-Identifier: Apache-2.0
// The Engine API client against a small Engine-API-shaped server on a unix socket (no root).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { getEventListeners } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { DockerEngineClient } from '../../../src/containers/docker.js';
import { ContainerIndex, type ContainerIndexWarning } from '../../../src/containers/index.js';
import { RuntimeError } from '../../../src/containers/errors.js';
import { waitUntil } from '../../helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'tlscope-engine-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const ID = 'a4297a833e6c2ba3cd0cb4171ebecd52448048bb414d37a09cdcbe8feda5d2eb';

async function fakeEngine(apiVersion: string, opts: { name?: string; holdInspect?: boolean } = {}) {
  const socketPath = join(dir, `engine-${opts.name ?? apiVersion}.sock`);
  const paths: string[] = [];
  /** Inspect answers held back (opts.holdInspect) until the test sends them. */
  const held: (() => void)[] = [];
  const streams = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const url = req.url ?? '';
    paths.push(url);
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url === '/version') return json(200, { ApiVersion: apiVersion, MinAPIVersion: '1.12' });
    const m = /^\/v[\d.]+(\/.*)$/.exec(url);
    const path = m?.[1] ?? '';
    if (path === '/containers/json') return json(200, [{ Id: ID, Names: ['/web'] }, { Id: 'gone' }]);
    if (path === `/containers/${ID}/json`) {
      const answer = () => json(200, { Id: ID, Name: '/web', State: { Running: true, Pid: 4242 }, Config: { Image: 'nginx', Labels: { app: 'web' } } });
      if (opts.holdInspect === true) held.push(answer);
      else answer();
      return;
    }
    if (path.startsWith('/containers/')) return json(404, { message: 'No such container' });
    if (path.startsWith('/events')) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.flushHeaders();
      streams.add(res);
      res.on('close', () => streams.delete(res));
      return;
    }
    return json(404, { message: 'page not found' });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  const push = (action: string, id = ID) => {
    // Events arrive one JSON object per line, possibly split across chunks.
    const line = `${JSON.stringify({ Type: 'container', Action: action, Actor: { ID: id, Attributes: {} } })}\n`;
    for (const s of streams) {
      s.write(line.slice(0, 10));
      s.write(line.slice(10));
    }
  };
  const close = () => new Promise<void>((r) => server.close(() => r()));
  return { socketPath, paths, streams, sockets, held, push, close };
}

const until = (what: string, cond: () => boolean, ms = 3000): Promise<void> => waitUntil(what, cond, ms, undefined, 10);

test('list inspects running containers; inspect of an unknown id is undefined', async () => {
  const engine = await fakeEngine('1.41');
  const client = new DockerEngineClient({ runtime: 'podman', socketPath: engine.socketPath });
  try {
    assert.equal(client.isPresent(), true);
    assert.deepEqual(await client.list(), [{ runtime: 'podman', id: ID, name: 'web', image: 'nginx', labels: { app: 'web' }, pid: 4242 }]);
    assert.equal(await client.inspect('nope'), undefined);
    assert.ok(engine.paths.includes('/v1.41/containers/json'));
  } finally {
    client.close();
    await engine.close();
  }
});

test('an older daemon is spoken to in its own API version', async () => {
  const engine = await fakeEngine('1.39');
  const client = new DockerEngineClient({ runtime: 'docker', socketPath: engine.socketPath });
  try {
    await client.list();
    assert.ok(engine.paths.includes('/v1.39/containers/json'), engine.paths.join(' '));
  } finally {
    client.close();
    await engine.close();
  }
});

test('watch streams start/stop; aborting ends it and closes the connection', async () => {
  const engine = await fakeEngine('1.41');
  const client = new DockerEngineClient({ runtime: 'docker', socketPath: engine.socketPath });
  const ac = new AbortController();
  const seen: string[] = [];
  const done = (async () => {
    for await (const e of client.watch(ac.signal)) seen.push(`${e.type}:${e.id.slice(0, 4)}`);
  })();
  try {
    await until('event stream', () => engine.streams.size === 1);
    engine.push('create');
    engine.push('start');
    engine.push('exec_start: sh');
    engine.push('die');
    await until('two events', () => seen.length === 2);
    assert.deepEqual(seen, ['start:a429', 'stop:a429']);
    ac.abort();
    await done;
    await until('connections closed', () => engine.sockets.size === 0);
  } finally {
    client.close();
    await engine.close();
  }
});

test('close() ends an open event stream too', async () => {
  const engine = await fakeEngine('1.41');
  const client = new DockerEngineClient({ runtime: 'docker', socketPath: engine.socketPath });
  const iterator = client.watch(new AbortController().signal)[Symbol.asyncIterator]();
  const next = iterator.next();
  await until('event stream', () => engine.streams.size === 1);
  client.close();
  await assert.rejects(next);
  await until('connections closed', () => engine.sockets.size === 0);
  await engine.close();
});

test('no socket: not present, and asking anyway is a RuntimeError naming the runtime and socket', async () => {
  writeFileSync(join(dir, 'not-a-socket'), '');
  const client = new DockerEngineClient({ runtime: 'docker', socketPath: join(dir, 'not-a-socket') });
  assert.equal(client.isPresent(), false, 'a regular file is not a socket');
  const missing = new DockerEngineClient({ runtime: 'docker', socketPath: join(dir, 'missing.sock') });
  assert.equal(missing.isPresent(), false);
  await assert.rejects(missing.list(), (e: unknown) => e instanceof RuntimeError && e.runtime === 'docker' && e.message.includes('missing.sock') && typeof e.hint === 'string');
  const events = missing.watch(new AbortController().signal)[Symbol.asyncIterator]();
  await assert.rejects(events.next(), RuntimeError);
  client.close();
  missing.close();
});

test('a crashed daemon’s socket (file there, nobody listening): the index warns once, not per retry', async () => {
  // A process that dies by SIGKILL while listening leaves its socket file behind.
  const socketPath = join(dir, 'crashed.sock');
  spawnSync(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  const client = new DockerEngineClient({ runtime: 'docker', socketPath });
  assert.equal(client.isPresent(), true);
  // the positive marker: how many times the index has tried to list (each a refused connection)
  let attempts = 0;
  const list = client.list.bind(client);
  client.list = (...args: Parameters<typeof client.list>) => {
    attempts++;
    return list(...args);
  };
  const warnings: ContainerIndexWarning[] = [];
  const index = new ContainerIndex({
    clients: [client], rescanIntervalMs: 0, onWarning: (w) => warnings.push(w),
    sessionTiming: { minBackoffMs: 5, maxBackoffMs: 10, absentRecheckMs: 10 },
  });
  const keepAlive = setInterval(() => {}, 1000);
  try {
    await index.start();
    // dozens of reconnect attempts, each refused: counted, not assumed from a sleep
    await until('20 refused attempts to list', () => attempts >= 20);
    assert.equal(warnings.length, 1, `one warning for ${attempts} attempts`);
    const w = warnings[0];
    assert.ok(w?.kind === 'runtime');
    assert.equal(w.runtime, 'docker');
    assert.match(w.error.message, /ECONNREFUSED/);
    assert.match(w.error.hint ?? '', /check that docker is running/);
  } finally {
    clearInterval(keepAlive);
    await index.close();
  }
});

/** Collects the process warnings emitted while `fn` runs (they are emitted on the next tick). */
async function warningsDuring(fn: () => Promise<void>): Promise<Error[]> {
  const seen: Error[] = [];
  const onWarning = (w: Error) => seen.push(w);
  process.on('warning', onWarning);
  try {
    await fn();
    await new Promise((r) => setImmediate(r));
  } finally {
    process.off('warning', onWarning);
  }
  return seen;
}

test('many requests in flight on one signal: one abort listener on it, not one per request (no MaxListenersExceededWarning)', async () => {
  const engine = await fakeEngine('1.41', { name: 'held', holdInspect: true });
  const client = new DockerEngineClient({ runtime: 'docker', socketPath: engine.socketPath });
  // A signal the caller keeps for its whole life, as the index does, with Node's default limit.
  const ac = new AbortController();
  const N = 24;
  let answers: Promise<unknown> | undefined;
  try {
    const warnings = await warningsDuring(async () => {
      await client.inspect('nope', undefined, ac.signal); // negotiates the version first
      const all = Promise.all(Array.from({ length: N }, () => client.inspect(ID, undefined, ac.signal)));
      answers = all;
      await until(`${N} inspects in flight`, () => engine.held.length === N);
      assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
      for (const answer of engine.held.splice(0)) answer();
      assert.equal((await all).filter((c) => c?.pid === 4242).length, N);
      // each request lets go of the signal when its connection closes, just after the answer
      await until('no abort listener left once they are answered', () => getEventListeners(ac.signal, 'abort').length === 0);
    });
    assert.deepEqual(warnings.map((w) => w.message), []);
  } finally {
    for (const answer of engine.held.splice(0)) answer();
    await answers?.catch(() => undefined);
    client.close();
    await engine.close();
  }
});

test('aborting the shared signal still ends every request in flight on it, and only those', async () => {
  const engine = await fakeEngine('1.41', { name: 'abort', holdInspect: true });
  const client = new DockerEngineClient({ runtime: 'docker', socketPath: engine.socketPath });
  const ac = new AbortController();
  const other = new AbortController();
  try {
    await client.inspect('nope');
    const doomed = Array.from({ length: 3 }, () => client.inspect(ID, undefined, ac.signal));
    const kept = client.inspect(ID, undefined, other.signal);
    await until('4 inspects in flight', () => engine.held.length === 4);
    ac.abort();
    for (const p of doomed) await assert.rejects(p, (e: unknown) => e instanceof RuntimeError && /aborted/.test(e.message));
    for (const answer of engine.held.splice(0)) answer();
    assert.equal((await kept)?.pid, 4242);
    await assert.rejects(client.inspect(ID, undefined, ac.signal), (e: unknown) => e instanceof RuntimeError && /aborted/.test(e.message), 'an aborted signal sends nothing');
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    await until('no abort listener left on the other signal', () => getEventListeners(other.signal, 'abort').length === 0);
  } finally {
    client.close();
    await engine.close();
  }
});

test('event streams the daemon ends leave no listener on the caller\'s signal (one watch per reconnect)', async () => {
  const engine = await fakeEngine('1.41', { name: 'reconnect' });
  const client = new DockerEngineClient({ runtime: 'docker', socketPath: engine.socketPath });
  const ac = new AbortController();
  try {
    const warnings = await warningsDuring(async () => {
      for (let i = 0; i < 15; i++) {
        const events = client.watch(ac.signal)[Symbol.asyncIterator]();
        const next = events.next();
        await until('event stream', () => engine.streams.size === 1);
        for (const s of engine.streams) s.end(); // the daemon restarts
        await assert.rejects(next, /event stream ended/);
        await events.return?.();
        await until('stream closed', () => engine.streams.size === 0);
      }
    });
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    assert.deepEqual(warnings.map((w) => w.message), []);
  } finally {
    client.close();
    await engine.close();
  }
});
