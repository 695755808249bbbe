// SPDX-License-Identifier: Apache-2.0
/** One entry in full: request and response (headers, body as text/JSON/hex), timing, tuple, raw calls. */
import { useEffect, useState } from 'preact/hooks';
import type { Entry, EntryDetail, UiBody, UiChunk, UiMessage } from '../protocol.js';
import { Lock, sourceName } from './icons.js';
import { auth } from './api.js';

type Mode = 'text' | 'json' | 'hex';

function bytesOf(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function hexDump(b: Uint8Array): string {
  const lines: string[] = [];
  for (let off = 0; off < b.length; off += 16) {
    let hex = '';
    let ascii = '';
    for (let i = 0; i < 16; i++) {
      const x = b[off + i];
      hex += x === undefined ? '   ' : `${x.toString(16).padStart(2, '0')} `;
      if (i === 7) hex += ' ';
      if (x !== undefined) ascii += x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : '.';
    }
    lines.push(`${off.toString(16).padStart(8, '0')}  ${hex} |${ascii}|`);
  }
  return lines.join('\n');
}

function asText(b: Uint8Array): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    return undefined;
  }
}

function asJson(b: Uint8Array): string | undefined {
  const t = asText(b);
  if (t === undefined) return undefined;
  try {
    return JSON.stringify(JSON.parse(t), null, 2);
  } catch {
    return undefined;
  }
}

function Bytes({ base64, note, test }: { base64: string; note: string; test?: string }) {
  const b = bytesOf(base64);
  const json = asJson(b);
  const text = asText(b);
  const [mode, setMode] = useState<Mode>(json !== undefined ? 'json' : text !== undefined ? 'text' : 'hex');
  const shown = mode === 'json' ? (json ?? 'not JSON') : mode === 'text' ? (text ?? new TextDecoder().decode(b)) : hexDump(b);
  return (
    <div class="bytes">
      <div class="modes">
        {(['text', 'json', 'hex'] as const).map((m) => (
          <button class={mode === m ? 'on' : ''} disabled={m === 'json' && json === undefined} onClick={() => setMode(m)}>{m}</button>
        ))}
        <span class="dim">{note}</span>
      </div>
      <pre data-test={test}>{shown}</pre>
    </div>
  );
}

function bodyNote(b: UiBody): string {
  return `${b.bytes.toLocaleString()} bytes${b.truncated ? `, first ${bytesOf(b.base64).length.toLocaleString()} kept` : ''}`;
}

function Message({ title, m }: { title: string; m: UiMessage | undefined }) {
  if (m === undefined) return <section><h3>{title}</h3><p class="dim">not seen (the capture began after it)</p></section>;
  return (
    <section>
      <h3>{title}</h3>
      <code class="start">{m.startLine}</code>
      <table class="headers">
        <tbody>
          {m.headers.map(([k, v]) => (
            <tr><th>{k}</th><td>{v}</td></tr>
          ))}
        </tbody>
      </table>
      {m.body ? <Bytes base64={m.body.base64} note={bodyNote(m.body)} test="body" /> : <p class="dim">no body</p>}
    </section>
  );
}

function Chunks({ chunks, omitted }: { chunks: UiChunk[]; omitted: number }) {
  if (chunks.length === 0) return <p class="dim">no plaintext calls kept for this entry</p>;
  const t0 = chunks[0]?.time ?? 0;
  return (
    <div>
      {omitted > 0 ? <p class="dim">{omitted} earlier calls not kept</p> : null}
      {chunks.map((c) => (
        <div class="chunk">
          <div class="chunk-head"><b class={c.direction}>{c.direction === 'write' ? '→ write' : '← read'}</b> {c.len.toLocaleString()} bytes <span class="dim">+{(c.time - t0).toFixed(0)} ms{c.truncated ? ' · cut' : ''}</span></div>
          <Bytes base64={c.base64} note="" />
        </div>
      ))}
    </div>
  );
}

export function Detail({ entry, onClose }: { entry: Entry; onClose: () => void }) {
  const [detail, setDetail] = useState<EntryDetail | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [tab, setTab] = useState<'message' | 'chunks' | 'json'>(entry.kind === 'http' ? 'message' : 'chunks');
  useEffect(() => {
    setDetail(undefined);
    setError(undefined);
    setTab(entry.kind === 'http' ? 'message' : entry.kind === 'tls' ? 'chunks' : 'json');
    const ac = new AbortController();
    void fetch(`/api/entry/${entry.seq}`, { headers: auth, signal: ac.signal })
      .then(async (r) => {
        const body = (await r.json()) as { detail?: EntryDetail; error?: string };
        if (body.detail) setDetail(body.detail);
        else setError(body.error ?? `HTTP ${r.status}`);
      })
      .catch(() => undefined);
    return () => ac.abort();
  }, [entry.seq]);

  const title = entry.kind === 'http' ? `${entry.method} ${entry.path}` : entry.summary;
  return (
    <aside class="detail" data-test="detail">
      <div class="dhead">
        <div class="dtitle">
          {entry.tls ? <Lock source={entry.tls} /> : null}
          <span title={title}>{title}</span>
          {entry.status !== undefined ? <b class={`pill s${Math.floor(entry.status / 100)}`}>{entry.status}</b> : null}
        </div>
        <button class="x" onClick={onClose} title="close">✕</button>
      </div>
      <dl class="facts">
        <dt>process</dt><dd>{entry.comm} <span class="dim">pid {entry.pid}</span></dd>
        {entry.container ? (<><dt>container</dt><dd>{entry.container}</dd></>) : null}
        {entry.pod ? (<><dt>pod</dt><dd>{entry.pod}</dd></>) : null}
        {entry.node ? (<><dt>node</dt><dd>{entry.node}</dd></>) : null}
        <dt>tuple</dt><dd>{entry.src ?? '?'} → {entry.dst ?? '?'}{entry.role ? <span class="dim"> ({entry.role})</span> : null}</dd>
        {entry.tls ? (<><dt>decrypted</dt><dd>{sourceName(entry.tls)}{typeof entry.json['library'] === 'string' ? <span class="dim"> {String(entry.json['library'])}</span> : null}</dd></>) : null}
        <dt>time</dt><dd>{new Date(entry.time).toISOString()}</dd>
        {entry.latencyMs !== undefined ? (<><dt>timing</dt><dd>{entry.latencyMs} ms to first response byte{typeof entry.json['durationMs'] === 'number' ? `, ${String(entry.json['durationMs'])} ms in all` : ''}</dd></>) : null}
      </dl>
      <div class="dtabs">
        {entry.kind === 'http' ? <button class={tab === 'message' ? 'on' : ''} onClick={() => setTab('message')}>Request & response</button> : null}
        <button class={tab === 'chunks' ? 'on' : ''} onClick={() => setTab('chunks')} data-test="tab-chunks">Raw calls{detail ? ` (${detail.chunks.length})` : ''}</button>
        <button class={tab === 'json' ? 'on' : ''} onClick={() => setTab('json')}>JSON</button>
      </div>
      <div class="dbody">
        {error ? <p class="bad">{error}</p> : null}
        {tab === 'json' ? <pre>{JSON.stringify(entry.json, null, 2)}</pre> : detail === undefined ? (error ? null : <p class="dim">loading…</p>) : tab === 'message' ? (
          <>
            <Message title="Request" m={detail.request} />
            <Message title="Response" m={detail.response} />
          </>
        ) : (
          <Chunks chunks={detail.chunks} omitted={detail.chunksOmitted} />
        )}
      </div>
    </aside>
  );
}
