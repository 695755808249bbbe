// SPDX-License-Identifier: Apache-2.0
/**
 * Who talks to whom, from the entries in view: processes, containers and pods as nodes,
 * connections as edges with call counts and error rates. Pure (the page bundles it; unit
 * tests run it in node).
 *
 * An exchange seen from both ends (a traced client and a traced server) is one call: an
 * address seen as a process's local end names that process, so both views meet on one edge,
 * which counts the larger of its client-side and server-side tallies.
 */
import type { Entry } from './protocol.js';

export type MapNodeKind = 'pod' | 'container' | 'process' | 'remote';

export interface MapNode {
  id: string;
  label: string;
  /** second line: node, namespace, image, address */
  sub: string;
  kind: MapNodeKind;
}

export interface MapEdge {
  from: string;
  to: string;
  /** HTTP exchanges */
  calls: number;
  /** of them with a status of 400 or more */
  errors: number;
  /** TLS connections without HTTP calls, SNI handshakes */
  connections: number;
  /** what the edge was learned from: http, tls, sni */
  protocols: string[];
}

export interface ServiceMap {
  nodes: MapNode[];
  edges: MapEdge[];
}

function nodeOf(e: Entry): MapNode {
  const host = e.node === undefined ? '' : e.node;
  if (e.pod !== undefined) return { id: `pod:${e.node ?? ''}/${e.pod}`, label: e.pod.split('/')[1] ?? e.pod, sub: `pod ${e.pod.split('/')[0] ?? ''}${host ? ` · ${host}` : ''}`, kind: 'pod' };
  if (e.container !== undefined) return { id: `ctr:${e.node ?? ''}/${e.container}`, label: e.container, sub: `container${host ? ` · ${host}` : ''}`, kind: 'container' };
  return { id: `proc:${e.node ?? ''}/${e.comm}`, label: e.comm, sub: `process${host ? ` · ${host}` : ''}`, kind: 'process' };
}

/** The local and remote ends of an entry's connection, as far as it says. */
function ends(e: Entry): { local: string | undefined; remote: string | undefined } {
  switch (e.kind) {
    case 'http':
      return e.role === 'server' ? { local: e.dst, remote: e.src } : { local: e.src, remote: e.dst };
    case 'tls':
      return e.role === 'read' ? { local: e.dst, remote: e.src } : { local: e.src, remote: e.dst };
    default:
      return { local: e.src, remote: e.dst };
  }
}

interface Tally {
  clientCalls: number;
  clientErrors: number;
  serverCalls: number;
  serverErrors: number;
  conns: Set<string>;
  protocols: Set<string>;
}

export function buildServiceMap(entries: readonly Entry[]): ServiceMap {
  const nodes = new Map<string, MapNode>();
  const owner = new Map<string, string>(); // address:port → node id
  for (const e of entries) {
    if (e.kind === 'packet') continue;
    const n = nodeOf(e);
    const { local } = ends(e);
    if (local !== undefined && e.kind !== 'sni') owner.set(`${e.node ?? ''}|${local}`, n.id);
    else if (local !== undefined && (e.json['direction'] ?? 'out') === 'out') owner.set(`${e.node ?? ''}|${local}`, n.id);
  }
  const remoteNode = (e: Entry, addr: string | undefined, name: string | undefined): string => {
    const known = addr === undefined ? undefined : owner.get(`${e.node ?? ''}|${addr}`);
    if (known !== undefined) return known;
    const id = name !== undefined ? `name:${name}` : `addr:${addr ?? '?'}`;
    if (!nodes.has(id)) nodes.set(id, { id, label: name ?? addr ?? '?', sub: name !== undefined && addr !== undefined ? addr : 'not traced', kind: 'remote' });
    return id;
  };
  const tallies = new Map<string, Tally>();
  const tally = (from: string, to: string): Tally => {
    const k = `${from}\u0000${to}`;
    let t = tallies.get(k);
    if (t === undefined) tallies.set(k, (t = { clientCalls: 0, clientErrors: 0, serverCalls: 0, serverErrors: 0, conns: new Set(), protocols: new Set() }));
    return t;
  };
  for (const e of entries) {
    if (e.kind === 'packet') continue;
    if (e.kind === 'sni' && e.json['direction'] === 'in') continue; // no local sender
    const self = nodeOf(e);
    if (!nodes.has(self.id)) nodes.set(self.id, self);
    const { local, remote } = ends(e);
    const error = (e.status ?? 0) >= 400;
    if (e.kind === 'http') {
      if (e.role === 'server') {
        const t = tally(remoteNode(e, remote, undefined), self.id);
        t.serverCalls++;
        if (error) t.serverErrors++;
        t.protocols.add('http');
      } else {
        const t = tally(self.id, remoteNode(e, remote, e.host?.replace(/:\d+$/, '')));
        t.clientCalls++;
        if (error) t.clientErrors++;
        t.protocols.add('http');
      }
    } else if (e.kind === 'tls') {
      // which end is the server is not known from plaintext alone: the lower port is a good guess
      const lp = Number(local?.split(':').at(-1) ?? NaN);
      const rp = Number(remote?.split(':').at(-1) ?? NaN);
      const other = remoteNode(e, remote, undefined);
      const t = lp < rp ? tally(other, self.id) : tally(self.id, other);
      t.conns.add([local ?? '', remote ?? ''].sort().join('-')); // one connection, whichever end says it
      t.protocols.add('tls');
    } else {
      const name = typeof e.json['name'] === 'string' ? e.json['name'] : undefined;
      const t = tally(self.id, remoteNode(e, remote, name));
      t.conns.add(`${local ?? ''}-${remote ?? ''}`);
      t.protocols.add('sni');
    }
  }
  const edges: MapEdge[] = [];
  for (const [k, t] of tallies) {
    const [from = '', to = ''] = k.split('\u0000');
    if (from === to) continue;
    const client = t.clientCalls >= t.serverCalls;
    edges.push({ from, to, calls: client ? t.clientCalls : t.serverCalls, errors: client ? t.clientErrors : t.serverErrors, connections: t.conns.size, protocols: [...t.protocols].sort() });
  }
  const used = new Set(edges.flatMap((e) => [e.from, e.to]));
  // a process with nothing mapped to it still shows (it may talk to untraced peers later)
  return { nodes: [...nodes.values()].filter((n) => used.has(n.id) || n.kind !== 'remote'), edges };
}

export interface Placed {
  node: MapNode;
  x: number;
  y: number;
}

/** Columns by the longest path from a node nothing calls (callers left, callees right), rows in order. */
export function layoutServiceMap(m: ServiceMap, width: number, height: number): Map<string, Placed> {
  const level = new Map<string, number>(m.nodes.map((n) => [n.id, 0]));
  for (let i = 0; i < m.nodes.length; i++) {
    let changed = false;
    for (const e of m.edges) {
      const want = (level.get(e.from) ?? 0) + 1;
      if ((level.get(e.to) ?? 0) < want && want < m.nodes.length) {
        level.set(e.to, want);
        changed = true;
      }
    }
    if (!changed) break;
  }
  const columns = new Map<number, MapNode[]>();
  for (const n of m.nodes) {
    const l = level.get(n.id) ?? 0;
    columns.set(l, [...(columns.get(l) ?? []), n]);
  }
  const count = Math.max(1, ...[...columns.keys()].map((l) => l + 1));
  const out = new Map<string, Placed>();
  for (const [l, ns] of columns) {
    ns.sort((a, b) => a.label.localeCompare(b.label));
    ns.forEach((node, i) => out.set(node.id, { node, x: ((l + 0.5) / count) * width, y: ((i + 0.5) / ns.length) * height }));
  }
  return out;
}
