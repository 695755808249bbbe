// SPDX-License-Identifier: Apache-2.0
/** `tlscope doctor`: what works on this host, probed for real, and what each gadget can do. */
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { bpfCapable, effectiveCapabilities, missingCapabilities } from '../../ebpf/caps.js';
import { probeAll, type FeatureResult } from '../../ebpf/features.js';
import { isRoot, libbpfVersion } from '../../ebpf/privileges.js';
import { gadgetCatalog } from '../../gadgets/catalog.js';
import { TlscopeError } from '../../errors.js';
import { helpText, list, parse, str, type OptionSpecs } from '../args.js';
import type { CommandContext } from '../context.js';
import { parsePids, processTls, processTlsTable } from '../process-tls.js';
import type { AnalysisCache } from '../../gadgets/tls/stacks.js';

const options: OptionSpecs = {
  pid: { type: 'string', short: 'p', arg: 'PID', multiple: true, description: 'instead: the TLS stacks these processes map (repeatable or comma-separated) and whether trace tls hooks each, or why not' },
  output: { type: 'string', short: 'o', arg: 'FORMAT', description: 'columns (default), json or jsonpretty' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

export const help = helpText(
  'tlscope doctor [-o json]\n       tlscope doctor -p PID[,PID…] [-o json]',
  'Probe this host: privileges, libbpf, and each kernel feature tlscope may use (each one loaded\nand attached for real), then say which gadgets can run here and why not.\n\nWith -p: for each process, the TLS stacks it maps (OpenSSL/libssl with its version, node\'s\nbuilt-in OpenSSL, OpenSSL linked statically, GnuTLS, Go crypto/tls with its version, rustls,\nBoringSSL, NSS, the JVM) and whether trace tls would hook each, decided by trace tls\'s own\nanalysis of the files in /proc/PID/maps, with the reason when not (stripped BoringSSL,\njava: plaintext needs an in-process agent). Nothing is attached.',
  options,
  'Exit status: 0 when at least one gadget can run, 1 when none can (no BPF, no libbpf, or no\ngadget has the capabilities it needs). With -p: 0, or 1 for a process that does not exist.\nFor each container\'s processes: tlscope containers --tls.',
);

interface GadgetStatus {
  gadget: string;
  status: 'ready' | 'unavailable' | 'not built yet';
  detail: string;
}

interface Report {
  /** privileged: every gadget has the capabilities it needs (root normally has them all) */
  host: { kernel: string; libbpf: string; privileges: string; privileged: boolean; capabilities: string[] };
  features: FeatureResult[];
  gadgets: GadgetStatus[];
}

function kernelName(): string {
  try {
    return readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  } catch {
    return release();
  }
}

export function buildReport(): Report {
  const lib = libbpfVersion();
  const libbpfMissing = lib.loaded ? undefined : lib.text;
  const libbpf = lib.text;
  const root = isRoot();
  const have = effectiveCapabilities();
  const canBpf = bpfCapable(have);
  const lacking = new Map(gadgetCatalog.map((g) => [g.gadget, missingCapabilities(g.caps, have)]));
  const privileged = [...lacking.values()].every((m) => m.length === 0);
  const features = canBpf && libbpfMissing === undefined ? probeAll() : [];
  const byName = new Map(features.map((f) => [f.feature, f]));
  const gadgets: GadgetStatus[] = gadgetCatalog.map((g) => {
    const missing = g.requires.filter((group) => !group.some((f) => byName.get(f)?.supported));
    if (libbpfMissing !== undefined) return { gadget: g.gadget, status: 'unavailable', detail: libbpf };
    const caps = lacking.get(g.gadget) ?? [];
    if (caps.length > 0) return { gadget: g.gadget, status: 'unavailable', detail: `needs ${caps.join(', ')} (or root); it needs ${g.caps.join(', ')}` };
    if (missing.length > 0) {
      const why = missing.map((group) => group.map((f) => { const r = byName.get(f); return `${r?.title ?? f}: ${r?.reason ?? 'not probed'}`; }).join('; and ')).join('; ');
      return { gadget: g.gadget, status: 'unavailable', detail: why };
    }
    const uses = g.uses?.((f) => byName.get(f)?.supported === true);
    return { gadget: g.gadget, status: g.implemented ? 'ready' : 'not built yet', detail: uses === undefined || uses === '' ? g.what : `${g.what}; ${uses}` };
  });
  return {
    host: { kernel: kernelName(), libbpf, privileges: privilegeWords(root, have, lacking), privileged, capabilities: [...have].sort() },
    features,
    gadgets,
  };
}

function privilegeWords(root: boolean, have: ReadonlySet<string>, lacking: ReadonlyMap<string, readonly string[]>): string {
  const short = [...lacking].filter(([, m]) => m.length > 0);
  const who = root ? 'root' : have.size === 0 ? 'unprivileged' : `capabilities ${[...have].sort().join(', ')}`;
  if (short.length === 0 || (!root && have.size === 0)) return who;
  return `${who}; missing: ${short.map(([g, m]) => `${g}: ${m.join(', ')}`).join('; ')}`;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd()).join('\n');
}

export async function run(argv: string[], ctx: CommandContext): Promise<number> {
  const { values } = parse(argv, options, false);
  if (values.help) {
    ctx.out.write(help);
    return 0;
  }
  const fmt = str(values, 'output') ?? 'columns';
  if (!['columns', 'json', 'jsonpretty'].includes(fmt)) throw new TlscopeError('ERR_USAGE', `unknown output format "${fmt}"`, { exitCode: 2, hint: 'use columns, json or jsonpretty' });
  if (values.pid !== undefined) {
    const pids = parsePids(list(values, 'pid') ?? []);
    if (pids.length === 0) throw new TlscopeError('ERR_USAGE', '-p needs a process id', { exitCode: 2, hint: 'e.g. tlscope doctor -p 1234' });
    const cache: AnalysisCache = new Map();
    const reports = pids.map((pid) => processTls(pid, cache));
    if (fmt === 'columns') ctx.out.write(processTlsTable(reports));
    else for (const rep of reports) ctx.out.write(`${JSON.stringify(rep, null, fmt === 'jsonpretty' ? 2 : undefined)}\n`);
    return 0;
  }
  const r = buildReport();
  const usable = r.gadgets.some((g) => g.status === 'ready' || g.status === 'not built yet');
  if (fmt !== 'columns') {
    ctx.out.write(`${JSON.stringify(r, null, fmt === 'jsonpretty' ? 2 : undefined)}\n`);
  } else {
    const rows = [['CHECK', 'STATUS', 'DETAIL']];
    rows.push(['kernel', 'ok', r.host.kernel]);
    rows.push(['libbpf', r.host.libbpf.startsWith('libbpf.so.1') ? 'ok' : 'missing', r.host.libbpf]);
    const some = r.gadgets.some((g) => !g.detail.startsWith('needs CAP_'));
    rows.push(['privileges', r.host.privileged ? 'ok' : some ? 'partial' : 'missing', r.host.privileged ? r.host.privileges : `${r.host.privileges} (run as root, or give each command what its line below names)`]);
    for (const f of r.features) rows.push([`feature: ${f.title}`, f.supported ? 'ok' : 'unavailable', f.supported ? `since Linux ${f.since}` : (f.reason ?? '')]);
    for (const g of r.gadgets) rows.push([`gadget: ${g.gadget}`, g.status, g.detail]);
    ctx.out.write(`${table(rows)}\n`);
  }
  if (!usable) {
    const why = !r.host.libbpf.startsWith('libbpf.so.1')
      ? r.host.libbpf
      : r.gadgets.every((g) => g.detail.startsWith('needs CAP_'))
        ? (isRoot() ? 'root without the capabilities the gadgets need' : 'not root and without the capabilities the gadgets need')
        : r.gadgets.map((g) => `${g.gadget}: ${g.detail}`).join('; ');
    ctx.err.write(`tlscope: nothing can run on this host: ${why}\n`);
    return 1;
  }
  return 0;
}
