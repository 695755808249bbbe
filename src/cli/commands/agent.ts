// SPDX-License-Identifier: Apache-2.0
/**
 * `tlscope agent`: the node agent (src/agent/), as the DaemonSet runs it; `tlscope agent health`
 * is its readiness probe.
 */
import { hostname } from 'node:os';
import { Agent } from '../../agent/server.js';
import { checkHealth } from '../../agent/health.js';
import { TlscopeError, errorMessage } from '../../errors.js';
import { bool, helpText, int, parse, str, type OptionSpecs } from '../args.js';
import type { CommandContext } from '../context.js';
import { buildReport } from './doctor.js';

export const DEFAULT_LISTEN = '127.0.0.1:7443';

const options: OptionSpecs = {
  listen: { type: 'string', arg: 'ADDR', description: `loopback HOST:PORT or unix:/PATH to listen on (default ${DEFAULT_LISTEN})` },
  health: { type: 'string', arg: 'HOST:PORT', description: 'serve GET /healthz and /readyz there for kubelet\'s probes (only those words, no data)' },
  node: { type: 'string', arg: 'NAME', description: 'this node\'s name (default $NODE_NAME, else the host name)' },
  'containerd-socket': { type: 'string', arg: 'PATH', description: 'the node\'s containerd socket (default /run/containerd/containerd.sock)' },
  'max-queued-events': { type: 'string', arg: 'N', description: 'events held for a slow client before they are dropped and counted (default 20000)' },
  'no-redact': { type: 'boolean', description: 'do not mask credentials in trace tls sessions (by default Authorization, Proxy-Authorization, Cookie, Set-Cookie and gRPC *-bin metadata are masked before events leave the agent; a client may also ask with --no-redact)' },
  'no-start-hook': { type: 'boolean', description: 'do not learn containers before they start (the container start hook; on by default where the agent shares the host\'s mount namespace, off in a pod): pods are then learnt from containerd\'s events, and scoped network gadgets watch every network namespace meanwhile' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

export const help = helpText(
  'tlscope agent [--listen 127.0.0.1:PORT] [--node NAME]\n       tlscope agent health [--listen ADDR]',
  'The node agent: runs gadget sessions for `kubectl tlscope` (through the API server\'s port-forward)\nand streams their events, stats and warnings over gRPC (proto/tlscope/agent/v1/agent.proto).',
  options,
  '`tlscope agent health` exits 0 when the agent at --listen serves, 1 otherwise (the readiness probe).',
);

export async function run(argv: string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, options, true);
  if (bool(values, 'help')) {
    ctx.out.write(help);
    return 0;
  }
  const listen = str(values, 'listen') ?? DEFAULT_LISTEN;
  if (positionals[0] === 'health') {
    try {
      const h = await checkHealth(listen.startsWith('unix:') ? listen : listen);
      ctx.out.write(`${h.status}\n`);
      return h.serving ? 0 : 1;
    } catch (e) {
      ctx.err.write(`tlscope: agent at ${listen}: ${errorMessage(e)}\n`);
      return 1;
    }
  }
  if (positionals.length > 0) throw new TlscopeError('ERR_USAGE', `unknown agent command "${positionals[0]}"`, { exitCode: 2, hint: 'tlscope agent, or tlscope agent health' });
  const node = str(values, 'node') ?? process.env['NODE_NAME'] ?? hostname();
  const socket = str(values, 'containerd-socket');
  const maxEvents = int(values, 'max-queued-events', { min: 1 });
  const agent = new Agent({
    node,
    listen,
    version: '0.1.0',
    ...(socket === undefined ? {} : { sockets: { containerd: socket } }),
    ...(maxEvents === undefined ? {} : { limits: { maxEvents } }),
    ...(str(values, 'health') === undefined ? {} : { health: str(values, 'health') as string }),
    redact: !bool(values, 'no-redact'),
    ...(bool(values, 'no-start-hook') ? { startHook: false } : {}),
    doctor: () => buildReport(),
    log: (text) => ctx.err.write(`tlscope agent: ${text}\n`),
  });
  await agent.start();
  await new Promise<void>((resolve) => {
    if (ctx.signal.aborted) resolve();
    else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await agent.stop();
  return 0;
}
