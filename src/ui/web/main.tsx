// SPDX-License-Identifier: Apache-2.0
/** The page: a live table of entries, a detail pane, the query bar, the counts and a service map. */
import { render } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Entry, QueryErrorBody, StreamEvent, UiNodeStatus, UiSessionStats, UiStats } from '../protocol.js';
import { auth, params, token } from './api.js';
import { Detail } from './detail.js';
import { Lock } from './icons.js';
import { ServiceMapView } from './map.js';
import { Table } from './table.js';


interface QueryFail {
  error: string;
  position: number | undefined;
  hint?: string;
}

/** Reads /api/stream (server-sent events over fetch, so a 400 with the query's error can be read). */
async function readStream(query: string, after: number, signal: AbortSignal, onEvent: (ev: StreamEvent) => void): Promise<QueryFail | undefined> {
  const res = await fetch(`/api/stream?q=${encodeURIComponent(query)}&after=${after}`, { headers: auth, signal });
  if (res.status === 400) return (await res.json()) as QueryErrorBody;
  if (!res.ok || res.body === null) throw new Error(`stream: HTTP ${res.status}`);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return undefined;
    buf += value;
    let cut: number;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
      if (data !== '') onEvent(JSON.parse(data) as StreamEvent);
    }
  }
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

function Counts({ stats, shown, waiting }: { stats: UiStats | undefined; shown: number; waiting: number }) {
  const sessions = Object.entries(stats?.sessions ?? {});
  const s = sessions.map(([, x]) => x);
  const lost = sum(s.map((x) => x.lost));
  const missed = sum(s.map((x) => sum(Object.values(x.misses))));
  const filtered = sum(s.map((x) => x.filtered + x.outOfScope)) + (stats?.view.queryFiltered ?? 0);
  const held = sum(s.map((x) => x.held));
  const dropped = stats?.view.dropped ?? 0;
  const per = (f: (x: UiSessionStats) => string): string => sessions.map(([g, x]) => `${g}: ${f(x)}`).join('\n');
  const missTitle = `events seen but not shown as they are (not attributable, incomplete calls)\n${per((x) => Object.entries(x.misses).map(([k, v]) => `${v} ${k}`).join(', ') || '0')}`;
  const chip = (name: string, n: number, title: string, bad = false) => (
    <span class={`chip${bad && n > 0 ? ' bad' : ''}`} title={title} data-test={`count-${name}`}>
      <b>{n.toLocaleString()}</b> {name}
    </span>
  );
  return (
    <div class="counts">
      {chip('shown', shown, `rows in this view\nevents the sessions passed on:\n${per((x) => String(x.shown))}`)}
      {waiting > 0 ? chip('waiting', waiting, 'arrived while paused') : null}
      {chip('lost', lost, `events the kernel could not queue (ring buffer full)\n${per((x) => String(x.lost))}`, true)}
      {chip('missed', missed, missTitle, true)}
      {chip('filtered', filtered, `left out: ${sum(s.map((x) => x.outOfScope))} out of scope, ${sum(s.map((x) => x.filtered))} by the session's filter, ${stats?.view.queryFiltered ?? 0} by this query`)}
      {held > 0 ? chip('held', held, 'waiting for their container to be known (late binding, up to 2 s)') : null}
      {chip('dropped', dropped, 'not sent because this page read too slowly', true)}
      <span class="chip dim" title="entries the server keeps; older ones are evicted" data-test="count-ring">
        ring {(stats?.ring.size ?? 0).toLocaleString()}/{(stats?.ring.capacity ?? 0).toLocaleString()}
      </span>
    </div>
  );
}

/** A state's weight: the node line shows a node's worst state over its gadgets' sessions. */
const NODE_STATES = ['running', 'ended', 'starting', 'not ready', 'unreachable', 'gone'];

function nodeLabel(n: UiNodeStatus): string {
  if (n.state === 'running') return n.gone > 0 ? `running (agent back after ${n.gone} loss${n.gone === 1 ? '' : 'es'})` : 'running';
  if (n.state === 'gone') return `agent gone${n.reason ? ` (${n.reason})` : ''}`;
  if (n.state === 'not ready' || n.state === 'unreachable') return `agent ${n.state}${n.reason ? ` (${n.reason})` : ''}`;
  return n.state;
}

/** A cluster's nodes (kubectl tlscope ui): each node's agent as its sessions see it, and its counts. */
function Nodes({ stats }: { stats: UiStats | undefined }) {
  const byNode = new Map<string, [string, UiNodeStatus][]>();
  for (const [g, x] of Object.entries(stats?.sessions ?? {})) {
    for (const n of x.nodes ?? []) {
      const l = byNode.get(n.node) ?? [];
      l.push([g, n]);
      byNode.set(n.node, l);
    }
  }
  if (byNode.size === 0) return null;
  return (
    <div class="nodes" data-test="nodes">
      <span class="nodes-title">nodes</span>
      {[...byNode.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([node, per]) => {
        const worst = per.reduce((w, [, n]) => (NODE_STATES.indexOf(n.state) > NODE_STATES.indexOf(w.state) ? n : w), (per[0] as [string, UiNodeStatus])[1]);
        const shown = per.reduce((a, [, n]) => a + n.shown, 0);
        const lost = per.reduce((a, [, n]) => a + n.lost, 0);
        const title = per.map(([g, n]) => `${g}: ${nodeLabel(n)}${n.pod ? `, pod ${n.pod}` : ''}, ${n.shown} shown, ${n.lost} lost${n.gone > 0 ? `, agent gone ${n.gone}×` : ''}`).join('\n');
        return (
          <span class={`node st-${worst.state.replace(/ /g, '-')}`} title={title} data-test="node-status" data-node={node} data-state={worst.state}>
            <i class="dot" /> <b>{node}</b> {nodeLabel(worst)} <small>{shown.toLocaleString()} shown{lost > 0 ? `, ${lost.toLocaleString()} lost` : ''}</small>
          </span>
        );
      })}
    </div>
  );
}

/** What the sessions say: problems (a -c container that never appeared), warnings, the latest note. */
function Messages({ stats }: { stats: UiStats | undefined }) {
  if (stats === undefined) return null;
  const problems = Object.entries(stats.sessions).flatMap(([g, x]) => (x.problems ?? []).map((p) => `${g}: ${p}`));
  const lines = [...problems.map((t) => ['problem', t] as const), ...stats.warnings.slice(-3).map((t) => ['warning', t] as const), ...stats.notes.slice(-1).map((t) => ['note', t] as const)];
  if (lines.length === 0) return null;
  return (
    <div class="warnings" data-test="messages">
      {lines.map(([kind, t]) => <div class={kind} data-test={kind}>{t}</div>)}
    </div>
  );
}

function QueryBar({ value, error, onInput, onApply }: { value: string; error: QueryFail | undefined; onInput: (s: string) => void; onApply: () => void }) {
  return (
    <form class="query" onSubmit={(ev) => { ev.preventDefault(); onApply(); }}>
      <div class={`qbox${error ? ' bad' : ''}`}>
        <input data-test="query" value={value} spellcheck={false} placeholder={'CEL, as --query:  proc.comm == "curl" && http.status >= 400   ·   tls   ·   kind == "sni"   (Enter)'} onInput={(ev) => onInput((ev.target as HTMLInputElement).value)} />
        {error ? (
          <div class="qerror" data-test="query-error">
            {error.position !== undefined ? (
              <code class="caret">
                {value.slice(0, error.position)}
                <mark>{value.slice(error.position, error.position + 1) || ' '}</mark>
                {value.slice(error.position + 1)}
              </code>
            ) : null}
            <span>{error.position !== undefined ? `at ${error.position + 1}: ` : ''}{error.error}</span>
            {error.hint ? <small class="qhint" data-test="query-hint">{error.hint}</small> : null}
          </div>
        ) : null}
      </div>
    </form>
  );
}

function App() {
  const entries = useRef<Entry[]>([]);
  const pending = useRef<Entry[]>([]);
  const [version, setVersion] = useState(0);
  const [stats, setStats] = useState<UiStats | undefined>();
  const [capacity, setCapacity] = useState(10000);
  const [node, setNode] = useState('');
  const [paused, setPaused] = useState(false);
  const pausedRef = useRef(false);
  const [queryText, setQueryText] = useState(params.get('q') ?? '');
  const [query, setQuery] = useState(params.get('q') ?? '');
  const [queryError, setQueryError] = useState<QueryFail | undefined>();
  const [selected, setSelected] = useState<number | undefined>();
  const [tab, setTab] = useState<'table' | 'map'>('table');
  const [connected, setConnected] = useState(false);

  useEffect(() => {
    const ac = new AbortController();
    entries.current = [];
    pending.current = [];
    setVersion((v) => v + 1);
    let cap = capacity;
    const add = (list: Entry[], more: Entry[]): void => {
      list.push(...more);
      if (list.length > cap) list.splice(0, list.length - cap);
    };
    void (async () => {
      while (!ac.signal.aborted) {
        try {
          const last = entries.current.at(-1)?.seq ?? pending.current.at(-1)?.seq ?? 0;
          const fail = await readStream(query, last, ac.signal, (ev) => {
            if (ev.type === 'hello') {
              cap = ev.ringCapacity;
              setCapacity(ev.ringCapacity);
              setNode(ev.node);
              setConnected(true);
            } else if (ev.type === 'entries') {
              if (pausedRef.current) add(pending.current, ev.entries);
              else add(entries.current, ev.entries);
              setVersion((v) => v + 1);
            } else setStats(ev.stats);
          });
          if (fail !== undefined) {
            setQueryError(fail);
            return;
          }
        } catch (e) {
          if (ac.signal.aborted) return;
        }
        setConnected(false);
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    return () => ac.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [query]);

  const apply = async (): Promise<void> => {
    const res = await fetch(`/api/query?q=${encodeURIComponent(queryText)}`, { headers: auth });
    if (res.status === 400) {
      setQueryError((await res.json()) as QueryErrorBody);
      return;
    }
    setQueryError(undefined);
    setSelected(undefined);
    setQuery(queryText);
    const u = new URL(location.href);
    if (queryText === '') u.searchParams.delete('q');
    else u.searchParams.set('q', queryText);
    history.replaceState(null, '', u);
  };

  const togglePause = (): void => {
    const p = !pausedRef.current;
    pausedRef.current = p;
    setPaused(p);
    if (!p && pending.current.length > 0) {
      entries.current.push(...pending.current);
      if (entries.current.length > capacity) entries.current.splice(0, entries.current.length - capacity);
      pending.current = [];
      setVersion((v) => v + 1);
    }
  };

  const list = entries.current;
  const lastSeq = list.at(-1)?.seq ?? 0;
  const viewArgs = `q=${encodeURIComponent(query)}&upto=${lastSeq}${token ? `&token=${encodeURIComponent(token)}` : ''}`;
  const download = `/api/download.jsonl?${viewArgs}`;
  const downloadPcap = `/api/download.pcapng?${viewArgs}`;
  const selectedEntry = useMemo(() => list.find((e) => e.seq === selected), [selected, version]);

  return (
    <div class="app">
      <header>
        <div class="brand">
          <Lock source={undefined} /> tlscope
          <span class={`live${connected ? (paused ? ' paused' : '') : ' off'}`} title={connected ? 'connected' : 'reconnecting'}>
            {connected ? (paused ? 'paused' : 'live') : 'offline'}
          </span>
          {node ? <span class="host">{node}</span> : null}
        </div>
        <nav>
          <button class={tab === 'table' ? 'on' : ''} onClick={() => setTab('table')} data-test="tab-table">Traffic</button>
          <button class={tab === 'map' ? 'on' : ''} onClick={() => setTab('map')} data-test="tab-map">Service map</button>
        </nav>
        <QueryBar value={queryText} error={queryError} onInput={(s) => { setQueryText(s); if (queryError) setQueryError(undefined); }} onApply={() => void apply()} />
        <div class="actions">
          <button onClick={togglePause} data-test="pause" class={paused ? 'on' : ''} title="stop adding rows; they wait and come in on resume">
            {paused ? '▶ Resume' : '❚❚ Pause'}
          </button>
          <a class="button" href={download} download="tlscope-view.jsonl" data-test="download" title="the rows of this view as JSON lines (-o json objects)">⤓ JSON lines</a>
          <a class="button" href={downloadPcap} download="tlscope-view.pcapng" data-test="download-pcapng" title="the decrypted plaintext of this view as pcapng (as trace tls -w): TCP streams of the real 4-tuples, one interface per process; Wireshark reads HTTP/1, HTTP/2 and gRPC with no keys">⤓ pcapng</a>
        </div>
      </header>
      <Counts stats={stats} shown={list.length} waiting={pending.current.length} />
      <Nodes stats={stats} />
      <Messages stats={stats} />
      <main class={selectedEntry && tab === 'table' ? 'split' : ''}>
        {tab === 'table' ? (
          <>
            <Table entries={list} version={version} selected={selected} onSelect={setSelected} />
            {selectedEntry ? <Detail entry={selectedEntry} onClose={() => setSelected(undefined)} /> : null}
          </>
        ) : (
          <ServiceMapView entries={list} version={version} />
        )}
      </main>
    </div>
  );
}

const root = document.getElementById('app');
if (root !== null) render(<App />, root);
