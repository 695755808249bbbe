// SPDX-License-Identifier: Apache-2.0
/**
 * The entries as a virtualised table: only the rows in sight (plus a margin) are in the DOM,
 * so tens of thousands of rows scroll and update without work per row. It follows the newest
 * row while scrolled to the bottom (holding still while the pointer is over the rows), and stays
 * put once the user scrolls up.
 */
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { Entry } from '../protocol.js';
import { Lock, sourceName } from './icons.js';

export const ROW_HEIGHT = 26;
const MARGIN = 12;

function time(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function statusClass(s: number | undefined): string {
  if (s === undefined) return '';
  if (s >= 500) return 's5';
  if (s >= 400) return 's4';
  if (s >= 300) return 's3';
  return 's2';
}

const KIND_LABEL: Record<string, string> = { http: 'HTTP', tls: 'TLS', sni: 'SNI', packet: 'PKT' };

function Row({ e, top, selected, onSelect }: { e: Entry; top: number; selected: boolean; onSelect: (seq: number) => void }) {
  return (
    <div class={`row${selected ? ' sel' : ''} k-${e.kind}`} style={{ top: `${top}px` }} onClick={() => onSelect(e.seq)} data-test="row" data-seq={e.seq} data-path={e.path} data-comm={e.comm}>
      <span class="c-lock">{e.tls ? <Lock source={e.tls} /> : null}</span>
      <span class="c-src" title={e.tls ? `decrypted from ${sourceName(e.tls)}` : ''}>{e.tls ?? ''}</span>
      <span class="c-kind"><i>{KIND_LABEL[e.kind] ?? e.kind}</i></span>
      <span class="c-time">{time(e.time)}</span>
      <span class="c-node" title={e.node}>{e.node ?? ''}</span>
      <span class="c-pod" title={e.pod}>{e.pod ?? '—'}</span>
      <span class="c-ctr" title={e.container}>{e.container ?? (e.pod ? '' : 'host')}</span>
      <span class="c-proc" title={`${e.comm} (pid ${e.pid})`}>{e.comm}<small>{e.pid > 0 ? ` ${e.pid}` : ''}</small></span>
      {e.kind === 'http' ? (
        <>
          <span class="c-method" data-test="method">{e.method}</span>
          <span class="c-path" data-test="path" title={e.path}>{e.path}{e.host ? <small> {e.host}</small> : null}</span>
          <span class={`c-status ${statusClass(e.status)}`} data-test="status">{e.status}</span>
          <span class="c-lat">{e.latencyMs !== undefined ? `${e.latencyMs < 10 ? e.latencyMs.toFixed(2) : Math.round(e.latencyMs)} ms` : ''}</span>
        </>
      ) : (
        <>
          <span class="c-method dim">{e.role ?? ''}</span>
          <span class="c-path summary" title={e.summary}>{e.summary}</span>
          <span class="c-status" />
          <span class="c-lat" />
        </>
      )}
      <span class="c-tuple" title={`${e.src ?? '?'} → ${e.dst ?? '?'}`}>{e.src ?? '?'} → {e.dst ?? '?'}</span>
    </div>
  );
}

export function Table({ entries, version, selected, onSelect }: { entries: Entry[]; version: number; selected: number | undefined; onSelect: (seq: number) => void }) {
  const box = useRef<HTMLDivElement>(null);
  const head = useRef<HTMLDivElement>(null);
  const [scroll, setScroll] = useState({ top: 0, height: 600 });
  const follow = useRef(true);
  // while the pointer is over the rows, following holds still: the row under it stays where it
  // is (and in the DOM) to be clicked, however fast new rows come; it catches up on leaving
  const hover = useRef(false);

  useEffect(() => {
    const el = box.current;
    if (el === null) return;
    const ro = new ResizeObserver(() => setScroll({ top: el.scrollTop, height: el.clientHeight }));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  // new rows: stay at the bottom if we were there
  useLayoutEffect(() => {
    const el = box.current;
    if (el === null || !follow.current || hover.current) return;
    el.scrollTop = el.scrollHeight;
    setScroll({ top: el.scrollTop, height: el.clientHeight });
  }, [version]);

  const onScroll = (): void => {
    const el = box.current;
    if (el === null) return;
    follow.current = el.scrollTop + el.clientHeight >= el.scrollHeight - ROW_HEIGHT * 2;
    // the header scrolls sideways with the rows
    if (head.current !== null && head.current.scrollLeft !== el.scrollLeft) head.current.scrollLeft = el.scrollLeft;
    setScroll({ top: el.scrollTop, height: el.clientHeight });
  };

  const onEnter = (): void => {
    hover.current = true;
  };
  const onLeave = (): void => {
    hover.current = false;
    const el = box.current;
    if (el === null || !follow.current) return;
    el.scrollTop = el.scrollHeight;
    setScroll({ top: el.scrollTop, height: el.clientHeight });
  };

  const first = Math.max(0, Math.floor(scroll.top / ROW_HEIGHT) - MARGIN);
  const last = Math.min(entries.length, Math.ceil((scroll.top + scroll.height) / ROW_HEIGHT) + MARGIN);
  const rows = [];
  for (let i = first; i < last; i++) {
    const e = entries[i];
    if (e !== undefined) rows.push(<Row key={e.seq} e={e} top={i * ROW_HEIGHT} selected={e.seq === selected} onSelect={onSelect} />);
  }
  return (
    <div class="table">
      <div class="headwrap" ref={head}>
      <div class="row head">
        <span class="c-lock" />
        <span class="c-src">tls</span>
        <span class="c-kind">kind</span>
        <span class="c-time">time</span>
        <span class="c-node">node</span>
        <span class="c-pod">pod</span>
        <span class="c-ctr">container</span>
        <span class="c-proc">process</span>
        <span class="c-method">method</span>
        <span class="c-path">path / what</span>
        <span class="c-status">status</span>
        <span class="c-lat">latency</span>
        <span class="c-tuple">source → destination</span>
      </div>
      </div>
      <div class="body" ref={box} onScroll={onScroll} onMouseEnter={onEnter} onMouseLeave={onLeave} data-test="table">
        <div class="spacer" style={{ height: `${entries.length * ROW_HEIGHT}px` }}>{rows}</div>
        {entries.length === 0 ? <div class="empty">Waiting for traffic… make a TLS request in scope (curl https://…) and it shows here.</div> : null}
      </div>
    </div>
  );
}
