// SPDX-License-Identifier: Apache-2.0
/** `kubectl tlscope`: the cluster front end (kubectl finds the kubectl-tlscope executable as a plugin). */
import { TlscopeError, UsageError, errorMessage } from '../errors.js';
import { gadgets } from '../gadgets/registry.js';
import { runKubeCapture } from './capture.js';
import { runDeploy, runUndeploy } from './deploy.js';
import { runContainers, runDoctor } from './nodes.js';
import { runKubeTrace, type KubeContext } from './trace.js';
import { runKubeUi } from './ui.js';

const USAGE = `kubectl tlscope: tlscope across a Kubernetes cluster, through a node agent on every node.

Usage: kubectl tlscope COMMAND [options]

Commands:
  deploy        deploy the agent (a DaemonSet) and wait until every node's is ready
  undeploy      remove everything deploy made
  trace sni     TLS server names asked for, on every node, with K8S.NODE
  trace tls     TLS plaintext, on every node
  capture       tcpdump in pods on every node into ONE pcapng (-w FILE): an interface per node, pod, container
  ui            the web UI of tlscope ui over every node (trace tls and trace sni), with each node's agent
  containers    the containers and pods every node's agent sees
  doctor        every node's kernel and gadget readiness, side by side

Common: --kubeconfig FILE, --context NAME; trace: --node NAME…, -n NS (pods' namespace),
--k8s-podname POD, -l K=V, -o json, --timeout SECONDS, and tlscope's own flags;
capture: the same scope flags, -w FILE.pcapng, -i IFACE, -s SNAPLEN, -A/-X, --timeout S, then a
tcpdump filter expression (kubectl tlscope capture --help: reading the file with tshark/wireshark);
ui: the same scope flags, --port N, --listen ADDR --tls-cert F --tls-key F | --insecure, --query Q.
`;

export async function kubeMain(argv: string[], ctx: KubeContext): Promise<number> {
  const [a, b] = argv;
  if (a === undefined || a === '-h' || a === '--help' || a === 'help') {
    ctx.out.write(USAGE);
    return a === undefined ? 2 : 0;
  }
  if (a === 'deploy') return runDeploy(argv.slice(1), ctx);
  if (a === 'undeploy') return runUndeploy(argv.slice(1), ctx);
  if (a === 'containers') return runContainers(argv.slice(1), ctx);
  if (a === 'doctor') return runDoctor(argv.slice(1), ctx);
  if (a === 'ui') return runKubeUi(argv.slice(1), ctx);
  if (a === 'capture') return runKubeCapture(argv.slice(1), ctx);
  if (a === 'trace' && (b === 'sni' || b === 'tls')) {
    const def = gadgets[`trace ${b}`];
    if (def === undefined) throw new UsageError(`no gadget trace ${b}`);
    return runKubeTrace(def, argv.slice(2), ctx);
  }
  throw new UsageError(`unknown command "${argv.slice(0, 2).join(' ')}"`, 'run `kubectl tlscope --help`');
}

export function reportKubeError(e: unknown, ctx: KubeContext): number {
  if (e instanceof TlscopeError) {
    ctx.err.write(`kubectl tlscope: ${e.message}\n`);
    if (e.hint) ctx.err.write(`  hint: ${e.hint}\n`);
    return e.exitCode;
  }
  ctx.err.write(`kubectl tlscope: internal error: ${e instanceof Error ? (e.stack ?? errorMessage(e)) : String(e)}\n`);
  return 70;
}
