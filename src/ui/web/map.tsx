// SPDX-License-Identifier: Apache-2.0
/** The service map of the rows in view: callers on the left, callees on the right. */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Entry } from '../protocol.js';
import { buildServiceMap, layoutServiceMap, type MapEdge } from '../service-map.js';

const NODE_W = 180;
const NODE_H = 46;

function edgeLabel(e: MapEdge): string {
  if (e.calls > 0) return `${e.calls} call${e.calls === 1 ? '' : 's'} · ${Math.round((100 * e.errors) / e.calls)}% errors`;
  return `${e.connections} conn${e.connections === 1 ? '' : 's'} · ${e.protocols.join(', ')}`;
}

export function ServiceMapView({ entries, version }: { entries: Entry[]; version: number }) {
  const box = useRef<HTMLDivElement>(null);
  const [size, setSize] = useState({ w: 900, h: 500 });
  useEffect(() => {
    const el = box.current;
    if (el === null) return;
    const ro = new ResizeObserver(() => setSize({ w: el.clientWidth, h: el.clientHeight }));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const map = useMemo(() => buildServiceMap(entries), [version, entries.length]);
  const placed = useMemo(() => layoutServiceMap(map, Math.max(size.w, 400), Math.max(size.h, 300)), [map, size]);
  if (map.nodes.length === 0) return <div class="map" ref={box}><div class="empty">No connections in view yet.</div></div>;
  return (
    <div class="map" ref={box} data-test="map">
      <svg width={size.w} height={size.h}>
        <defs>
          {['arrow', 'arrow-bad'].map((id) => (
            <marker id={id} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
              <path d="M0,0 L10,5 L0,10 z" />
            </marker>
          ))}
        </defs>
        {map.edges.map((e) => {
          const a = placed.get(e.from);
          const b = placed.get(e.to);
          if (a === undefined || b === undefined) return null;
          const x1 = a.x + NODE_W / 2;
          const x2 = b.x - NODE_W / 2;
          const mx = (x1 + x2) / 2;
          const bad = e.calls > 0 && e.errors > 0;
          return (
            <g class={`edge${bad ? ' bad' : ''}`} data-test="map-edge" data-from={a.node.label} data-to={b.node.label}>
              <path d={`M${x1},${a.y} C${mx},${a.y} ${mx},${b.y} ${x2},${b.y}`} marker-end={bad ? "url(#arrow-bad)" : "url(#arrow)"} />
              <text x={mx} y={(a.y + b.y) / 2 - 6} text-anchor="middle">{edgeLabel(e)}</text>
            </g>
          );
        })}
        {[...placed.values()].map(({ node, x, y }) => (
          <g class={`node n-${node.kind}`} transform={`translate(${x - NODE_W / 2},${y - NODE_H / 2})`} data-test="map-node">
            <rect width={NODE_W} height={NODE_H} rx="8" />
            <text x="12" y="19" class="label">{node.label.length > 22 ? `${node.label.slice(0, 21)}…` : node.label}</text>
            <text x="12" y="36" class="sub">{node.sub.length > 28 ? `${node.sub.slice(0, 27)}…` : node.sub}</text>
          </g>
        ))}
      </svg>
    </div>
  );
}
