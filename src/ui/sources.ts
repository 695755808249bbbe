// SPDX-License-Identifier: Apache-2.0
/**
 * The gadgets the UI shows, as streams of session-shaped messages: trace tls (plaintext calls,
 * paired into HTTP exchanges by the hub) and trace sni. Stopgap until src/session lands: the
 * same enrichment and scope as the CLI's runner, nothing more.
 */
import { ContainerIndex } from '../containers/index.js';
import { matches, type ContainerSelector } from '../containers/selector.js';
import { errorMessage } from '../errors.js';
import type { CommonEvent } from '../fields/common.js';
import { NetnsScope } from '../gadgets/netns-scope.js';
import { sniFields } from '../gadgets/sni/fields.js';
import { SniGadget } from '../gadgets/sni/gadget.js';
import { tlsDataFields, tlsHttpFields } from '../gadgets/tls/fields.js';
import { TlsGadget } from '../gadgets/tls/gadget.js';
import type { SourceMessage, SourceSpec } from './hub.js';
import type { UiSessionStats } from './protocol.js';

export interface UiSources {
  specs: SourceSpec<CommonEvent>[];
  stop(): Promise<void>;
}

class Queue<T> implements AsyncIterable<T> {
  private items: T[] = [];
  private wake: (() => void) | undefined;
  private ended = false;
  push(x: T): void {
    this.items.push(x);
    this.wake?.();
  }
  end(): void {
    this.ended = true;
    this.wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      while (this.items.length > 0) yield this.items.shift() as T;
      if (this.ended) return;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }
}

function enrich(e: CommonEvent, index: ContainerIndex): ReturnType<ContainerIndex['byMntns']> {
  const c = e.proc.mntns !== undefined ? index.byMntns(e.proc.mntns) : undefined;
  if (c !== undefined) {
    e.runtime = { runtimeName: c.runtime, containerId: c.id, containerName: c.name, containerImageName: c.image };
    if (c.k8s !== undefined) e.k8s = { namespace: c.k8s.namespace, podName: c.k8s.podName, containerName: c.k8s.containerName, podUid: c.k8s.podUid };
  }
  return c;
}

export async function openSources(selector: ContainerSelector, signal: AbortSignal, warn: (text: string) => void): Promise<UiSources> {
  const index = new ContainerIndex({ onWarning: (w) => warn(w.kind === 'runtime' ? `${w.runtime}: ${errorMessage(w.error)}` : errorMessage(w.error)) });
  await index.start();
  const hasPids = (selector.pids?.length ?? 0) > 0;
  const stops: (() => Promise<void> | void)[] = [];
  const specs: SourceSpec<CommonEvent>[] = [];

  const pump = <E extends CommonEvent>(events: AsyncIterable<E[]>, stats: (shown: number, filtered: number) => UiSessionStats, q: Queue<SourceMessage<E>>): void => {
    let shown = 0;
    let out = 0;
    const timer = setInterval(() => q.push({ type: 'stats', stats: stats(shown, out) }), 1000);
    timer.unref();
    void (async () => {
      try {
        for await (const batch of events) {
          const keep: E[] = [];
          for (const e of batch) {
            const c = enrich(e, index);
            const pid = e.proc.pid > 0 ? e.proc.pid : undefined;
            if ((pid === undefined && hasPids) || !matches(selector, c, pid)) out++;
            else keep.push(e);
          }
          shown += keep.length;
          if (keep.length > 0) q.push({ type: 'events', events: keep });
        }
      } catch (e) {
        q.push({ type: 'warning', code: 'error', text: errorMessage(e) });
      } finally {
        clearInterval(timer);
        q.push({ type: 'stats', stats: stats(shown, out) });
        q.end();
      }
    })();
  };

  const tls = TlsGadget.open({ signal, onWarning: warn });
  const tlsScope = tls.followScope(selector, index, warn);
  tlsScope.start();
  const tq = new Queue<SourceMessage<CommonEvent>>();
  pump(tls, (shown, out) => ({ shown, lost: Number(tls.stats().lost), misses: {}, outOfScope: out, filtered: 0, held: 0 }), tq);
  specs.push({ gadget: 'trace tls', fields: tlsDataFields({ json: true, hex: false }) as never, httpFields: tlsHttpFields() as never, messages: tq });
  stops.push(() => tlsScope.stop(), () => tls.close());

  try {
    const sni = SniGadget.open({ signal });
    const sniScope = new NetnsScope(sni, selector, index, warn);
    sniScope.start();
    const sq = new Queue<SourceMessage<CommonEvent>>();
    pump(sni, (shown, out) => ({ shown, lost: Number(sni.stats().lost), misses: {}, outOfScope: out, filtered: 0, held: 0 }), sq);
    specs.push({ gadget: 'trace sni', fields: sniFields() as never, messages: sq });
    stops.push(() => sniScope.stop(), () => sni.close());
  } catch (e) {
    warn(`trace sni: ${errorMessage(e)}`);
  }

  let stopping: Promise<void> | undefined;
  return {
    specs,
    stop() {
      stopping ??= (async () => {
        for (const s of stops) await s();
        await index.close();
      })();
      return stopping;
    },
  };
}
