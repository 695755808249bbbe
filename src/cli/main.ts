// SPDX-License-Identifier: Apache-2.0
/** tlscope's entry point: picks the command, turns errors into messages and exit codes. */
import { TlscopeError, UsageError, errorMessage } from '../errors.js';
import { VerifierError } from '../ebpf/errors.js';
import { gadgets } from '../gadgets/registry.js';
import type { CommandContext } from './context.js';

type Runner = (argv: string[], ctx: CommandContext) => Promise<number>;

interface CommandEntry {
  words: string[];
  summary: string;
  load: () => Promise<{ run: Runner }>;
}

const commands: CommandEntry[] = [
  { words: ['trace', 'sni'], summary: gadgets['trace sni']?.oneLine ?? '', load: () => import('./commands/trace-sni.js') },
  { words: ['trace', 'tls'], summary: gadgets['trace tls']?.oneLine ?? '', load: () => import('./commands/trace-tls.js') },
  { words: ['containers'], summary: 'the containers and pods tlscope sees', load: () => import('./commands/containers.js') },
  { words: ['capture'], summary: gadgets['capture']?.oneLine ?? '', load: () => import('./commands/capture.js') },
  { words: ['ui'], summary: 'a live web UI: HTTP exchanges, TLS plaintext, SNI, a service map (127.0.0.1, token)', load: () => import('./commands/ui.js') },
  { words: ['agent'], summary: 'the node agent that `kubectl tlscope` talks to (a DaemonSet runs it)', load: () => import('./commands/agent.js') },
  { words: ['doctor'], summary: 'what works on this host and which gadgets can run', load: () => import('./commands/doctor.js') },
];

const VERSION = '0.1.0';

function usage(): string {
  const w = Math.max(...commands.map((c) => c.words.join(' ').length)) + 2;
  return `tlscope ${VERSION}: see what processes, containers and pods say over TLS and the network, with eBPF.

Usage: tlscope COMMAND [options]      (as root)

Commands:
${commands.map((c) => `  ${c.words.join(' ').padEnd(w)}${c.summary}`).join('\n')}

Run \`tlscope COMMAND --help\` for a command's options. Common to every gadget:
  -r/--runtimes, -c/--containername, --host, -p/--pid, --k8s-namespace, --k8s-podname,
  -o columns|json|jsonpretty, --fields, --filter, --timeout SECONDS, -v
`;
}

function findCommand(argv: string[]): { entry: CommandEntry; rest: string[] } | undefined {
  for (const entry of [...commands].sort((a, b) => b.words.length - a.words.length)) {
    if (entry.words.every((w, i) => argv[i] === w)) return { entry, rest: argv.slice(entry.words.length) };
  }
  return undefined;
}

export async function main(argv: string[], ctx: CommandContext): Promise<number> {
  if (argv.length === 0 || argv[0] === '-h' || argv[0] === '--help' || argv[0] === 'help') {
    ctx.out.write(usage());
    return argv.length === 0 ? 2 : 0;
  }
  if (argv[0] === '--version' || argv[0] === 'version') {
    ctx.out.write(`${VERSION}\n`);
    return 0;
  }
  const found = findCommand(argv);
  if (found === undefined) {
    const near = commands.filter((c) => c.words[0] === argv[0]).map((c) => `tlscope ${c.words.join(' ')}`);
    throw new UsageError(`unknown command "${argv.slice(0, 2).join(' ')}"`, near.length ? `did you mean: ${near.join(', ')}` : 'run `tlscope --help` for the commands');
  }
  const mod = await found.entry.load();
  return mod.run(found.rest, ctx);
}

export function reportError(e: unknown, ctx: CommandContext): number {
  if (e instanceof TlscopeError) {
    ctx.err.write(`tlscope: ${e.message}\n`);
    if (e instanceof VerifierError && ctx.verbose) ctx.err.write(`${e.log}\n`);
    if (e.hint) ctx.err.write(`  hint: ${e.hint}\n`);
    if (ctx.verbose && e.cause !== undefined) ctx.err.write(`  cause: ${errorMessage(e.cause)}\n`);
    return e.exitCode;
  }
  ctx.err.write(`tlscope: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  return 70;
}
