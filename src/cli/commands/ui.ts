// SPDX-License-Identifier: Apache-2.0
/** `tlscope ui`: a live web UI of every gadget, on 127.0.0.1 behind a token. */
import { runUi, UI_SERVE_OPTIONS, uiListen } from '../../ui/run.js';
import { bool, helpText, int, parse, str, type OptionSpecs } from '../args.js';
import type { CommandContext } from '../context.js';
import { scopeOptions, selectorFrom } from '../scope.js';

const options: OptionSpecs = {
  ...scopeOptions,
  ...UI_SERVE_OPTIONS,
  capture: { type: 'string', arg: 'EXPR', description: "also capture packets (tcpdump's filter, e.g. 'tcp port 443'; '' for all) and show one row per packet; the UI's own port is left out" },
  query: { type: 'string', short: 'q', arg: 'EXPR', description: 'the query the page opens with' },
  timeout: { type: 'string', short: 't', arg: 'SECONDS', description: 'stop after this many seconds (default: until Ctrl-C)' },
  'no-redact': { type: 'boolean', description: 'show credentials: by default Authorization, Proxy-Authorization, Cookie, Set-Cookie and gRPC *-bin metadata are masked in every view, the JSON lines and the pcapng download' },
  verbose: { type: 'boolean', short: 'v', description: 'more detail on errors' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

const ABOUT = `Runs trace tls (plaintext, paired into HTTP/1, HTTP/2 and gRPC exchanges) and trace sni
as sessions over the scope (the same engine, scope and late binding as the trace commands) and
serves a page that shows them live (credentials masked unless --no-redact): a table, each entry's headers and body, a query bar,
a service map, and the view as JSON lines. The page is served from this process only
(nothing is fetched from elsewhere) and only with the token in the URL it prints.

Examples:
  tlscope ui                         every process and container; open the URL it prints
  tlscope ui -c web --port 0         one container, any free port
  tlscope ui --capture 'tcp port 443'  also one row per packet of port 443 (as tlscope capture)
  ssh -L 7483:127.0.0.1:7483 HOST    then open the printed URL on your machine`;

export async function run(argv: string[], ctx: CommandContext): Promise<number> {
  const { values } = parse(argv, options, false);
  if (bool(values, 'help')) {
    ctx.out.write(helpText('tlscope ui [scope] [--port N] [--listen ADDR --tls-cert F --tls-key F | --insecure]', 'A live web UI of what processes, containers and pods say over TLS.', options, ABOUT));
    return 0;
  }
  const selector = selectorFrom(values);
  const { host, port, tls } = uiListen({
    port: int(values, 'port', { min: 0, max: 65535 }),
    listen: str(values, 'listen'),
    certFile: str(values, 'tls-cert'),
    keyFile: str(values, 'tls-key'),
    insecure: bool(values, 'insecure'),
  });
  const ringEntries = int(values, 'ring', { min: 100, max: 1_000_000 }) ?? 10_000;
  const timeout = int(values, 'timeout', { min: 1 });

  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const timer = timeout === undefined ? undefined : setTimeout(onAbort, timeout * 1000);
  try {
    await runUi({
      selector,
      host,
      port,
      tls,
      ringEntries,
      ringBytes: 256 << 20,
      query: str(values, 'query'),
      signal: stop.signal,
      verbose: ctx.verbose || bool(values, 'verbose'),
      redact: !bool(values, 'no-redact'),
      ...(str(values, 'capture') === undefined ? {} : { capture: str(values, 'capture') as string }),
      say: (t) => void ctx.out.write(t),
      warn: (t) => void ctx.err.write(`tlscope: warning: ${t}\n`),
    });
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    ctx.signal.removeEventListener('abort', onAbort);
  }
  return 0;
}
