// SPDX-License-Identifier: Apache-2.0
// The virtualised table under load, in Debian's chromium (playwright-core, headless): a real
// python TLS server and a real python client ("loadgen", one keep-alive connection) make
// LOAD_REQUESTS HTTPS requests while `tlscope ui -p SERVER -p CLIENT` traces them — two rows
// per request (both ends), streamed into the page as they happen. While they stream the test
// measures, in the page, the gaps between animation frames and the long tasks, and from
// outside the time from a click on a row to its detail pane. It asserts generous bounds (this
// host has 2 shared cores) and then that every row is reachable by scrolling the table: each
// request's path shows twice, once per end. The numbers are printed (`# load: …`).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { chromiumSkip, launchBrowser, SERVE_H_OVER_TLS_PY } from './browser.js';
import { featureSkip, NEEDS } from '../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.tls);
import { makeWorkDir } from '../integration/tls/helpers.js';
import { startUi, type CliProcess } from '../helpers/cli.js';
import { startProcess, stopChild, type Running } from '../helpers/process.js';
import { sleep, waitUntil } from '../helpers/wait.js';

// the page side of page.evaluate (this file is compiled without the DOM library)
declare const window: unknown;
declare const document: { querySelector(s: string): unknown };
declare function requestAnimationFrame(f: (t: number) => void): number;
interface PageTable {
  scrollTop: number;
  clientHeight: number;
  scrollHeight: number;
  dispatchEvent(e: unknown): void;
  querySelectorAll(s: string): Iterable<{ getAttribute(n: string): string | null }>;
}

const SHOTS = fileURLToPath(new URL('../../../test/.work/browser/', import.meta.url));
const skip = kernelSkip || chromiumSkip;
const LOAD_REQUESTS = Number(process.env['TLSCOPE_UI_LOAD'] ?? 1000);
/** requests per second the client aims at (rows arrive at twice that) */
const RATE = 100;

const SERVER_PY = `
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK wait
    def do_GET(self):
        body = ('{"path": "%s", "ok": true}' % self.path).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
${SERVE_H_OVER_TLS_PY}`;

// waits for "go N RATE PORT" on stdin, then makes N requests at about RATE per second
const CLIENT_PY = `
import ctypes, http.client, ssl, sys, time
ctypes.CDLL(None).prctl(15, b'loadgen', 0, 0, 0)
print('ready', flush=True)
_, n, rate, port = sys.stdin.readline().split()
n, rate = int(n), float(rate)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
c = http.client.HTTPSConnection('127.0.0.1', int(port), context=ctx)
t0 = time.monotonic()
for i in range(n):
    c.request('GET', '/load/%d' % i, headers={'Host': 'load.test'})
    r = c.getresponse()
    r.read()
    ahead = t0 + (i + 1) / rate - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)
print('done', n, flush=True)
`;

let work: ReturnType<typeof makeWorkDir>;
let server: Running;
let client: Running;
let serverPort = 0;
let clientState = '';
let ui: CliProcess;
let url = '';
let browser: BrowserContext;
let page: Page;

function poll(what: string, cond: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  return waitUntil(what, cond, timeoutMs, undefined, 50);
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
}

async function shownCount(): Promise<number> {
  return Number(((await page.locator('[data-test=count-shown] b').textContent()) ?? '0').replace(/\D/g, ''));
}

before(async () => {
  if (skip) return;
  mkdirSync(SHOTS, { recursive: true });
  work = makeWorkDir('tlscope-ui-load-');
  writeFileSync(join(work.dir, 'server.py'), SERVER_PY);
  writeFileSync(join(work.dir, 'client.py'), CLIENT_PY);
  server = startProcess('python3', [join(work.dir, 'server.py'), work.cert, work.key], {
    timeoutMs: 3_600_000,
    onLine: (l) => {
      const [k, v = ''] = l.split(' ');
      if (k === 'port') serverPort = Number(v);
    },
  });
  // its stdin stays open: the test writes the go
  client = startProcess('python3', [join(work.dir, 'client.py')], { timeoutMs: 3_600_000, onLine: (l) => (clientState = l) });
  await waitUntil('the python TLS server and client', () => (serverPort > 0 && clientState === 'ready') || server.child.exitCode !== null || client.child.exitCode !== null);
  assert.ok(serverPort > 0 && clientState === 'ready', `python server or client did not start: ${server.errors()} ${client.errors()}`);

  // the scope is the two processes (-p, through the session): other traffic on the host stays out
  ({ ui, url } = await startUi(['-p', String(server.pid), '-p', String(client.pid), '--port', '0']));

  ({ browser, page } = await launchBrowser(mkdtempSync(join(work.dir, 'profile-')), { width: 1500, height: 820 }));
});

after(async () => {
  if (skip) return;
  await browser?.close();
  if (ui !== undefined) await ui.stop('SIGINT', 5000);
  if (client !== undefined) await stopChild(client.child);
  if (server !== undefined) await stopChild(server.child);
  work?.remove();
});

test(`${LOAD_REQUESTS * 2} rows streaming: frames keep coming, a click opens its row at once, every row is reachable by scrolling`, { skip, timeout: 300_000 }, async () => {
  assert.equal((await page.goto(url))?.status(), 200);
  await page.waitForSelector('[data-test=count-shown]');
  // in the page: every animation frame's gap, and long tasks (> 50 ms on the main thread)
  await page.evaluate(() => {
    const w = window as unknown as { __gaps: number[]; __long: number[]; __stop: boolean };
    w.__gaps = [];
    w.__long = [];
    w.__stop = false;
    let last = performance.now();
    const frame = (t: number): void => {
      w.__gaps.push(t - last);
      last = t;
      if (!w.__stop) requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
    new PerformanceObserver((l) => { for (const e of l.getEntries()) w.__long.push(e.duration); }).observe({ type: 'longtask' as never, buffered: false });
  });
  const started = Date.now();
  client.child.stdin!.write(`go ${LOAD_REQUESTS} ${RATE} ${serverPort}\n`);

  // while rows stream: click the newest row now and then, and time its detail pane
  const clicks: number[] = [];
  let peak = 0;
  while (!clientState.startsWith('done') || (await shownCount()) < LOAD_REQUESTS * 2) {
    if (Date.now() - started > 180_000) break;
    await sleep(400);
    const n = await shownCount();
    peak = Math.max(peak, n);
    if (clientState.startsWith('done') || n < 50 || clicks.length >= 8) continue;
    // the newest row, pinned by its seq: `.last()` is resolved again at each action, and while rows
    // stream the last row at click time is a later one than the row whose path was read
    // a user reaching for a row: the pointer over the table first (the table holds still under it)
    await page.locator('[data-test=table]').hover({ position: { x: 200, y: 40 }, timeout: 2000 }).catch(() => undefined);
    const newest = page.locator('[data-test=row][data-comm=loadgen]').last();
    const [seq, path] = await Promise.all([newest.getAttribute('data-seq'), newest.getAttribute('data-path')]).catch(() => [null, null]);
    if (seq === null || path === null) continue;
    const row = page.locator(`[data-test=row][data-seq="${seq}"]`);
    const t0 = Date.now();
    const clicked = await row.click({ timeout: 2000 }).then(() => true, () => false);
    if (!clicked) continue; // scrolled out of the rendered window before the click: try a newer one
    const head = page.locator('[data-test=detail]');
    // the request line of the pane's message: its path exactly (the title runs into the status pill)
    await poll(`the detail of ${path}`, async () => ((await head.textContent().catch(() => '')) ?? '').includes(`GET ${path} HTTP/1.1`), 5000).then(() => clicks.push(Date.now() - t0), () => undefined);
  }
  const streamMs = Date.now() - started;
  const { gaps, long } = await page.evaluate(() => {
    const w = window as unknown as { __gaps: number[]; __long: number[]; __stop: boolean };
    w.__stop = true;
    return { gaps: w.__gaps.slice(1), long: w.__long };
  });
  const shown = await shownCount();
  await page.screenshot({ path: join(SHOTS, 'load.png') });
  console.log(`# load: ${shown} rows in ${streamMs} ms; frame gaps: ${gaps.length} frames, median ${pct(gaps, 50).toFixed(1)} ms, p95 ${pct(gaps, 95).toFixed(1)} ms, p99 ${pct(gaps, 99).toFixed(1)} ms, max ${Math.max(...gaps).toFixed(1)} ms; long tasks: ${long.length}, max ${long.length ? Math.max(...long).toFixed(0) : 0} ms; click → detail: ${clicks.join(', ')} ms`);
  assert.ok(shown >= LOAD_REQUESTS * 2, `the page shows ${shown} rows of ${LOAD_REQUESTS * 2} (tlscope ui said: ${ui.stderr})`);
  assert.ok(gaps.length > 20, `the page drew ${gaps.length} frames in ${streamMs} ms`);
  assert.ok(pct(gaps, 95) < 200, `95% of frames within 200 ms; p95 was ${pct(gaps, 95).toFixed(1)} ms`);
  assert.ok(Math.max(...gaps) < 1500, `no frame gap of 1.5 s or more; max was ${Math.max(...gaps).toFixed(0)} ms`);
  assert.ok(clicks.length >= 3, `at least 3 clicks opened their row while streaming (${clicks.length})`);
  assert.ok(pct(clicks, 50) < 1000, `click → detail median under 1 s: ${clicks.join(', ')} ms`);

  // every row reachable: close the detail, scroll the table from top to bottom, collect the rows
  await page.locator('[data-test=detail] button.x').click().catch(() => undefined);
  const seen = await page.evaluate(async () => {
    const el = document.querySelector('[data-test=table]') as PageTable;
    const out: Record<string, string[]> = {};
    const frame = (): Promise<void> => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r())));
    for (let top = 0; ; top += Math.max(1, el.clientHeight - 26)) {
      el.scrollTop = top;
      el.dispatchEvent(new Event('scroll'));
      await frame();
      for (const r of el.querySelectorAll('[data-test=row]')) {
        const seq = r.getAttribute('data-seq') ?? '';
        out[seq] = [r.getAttribute('data-path') ?? '', r.getAttribute('data-comm') ?? ''];
      }
      if (top >= el.scrollHeight - el.clientHeight) break;
    }
    return out;
  });
  const rows = Object.values(seen);
  assert.equal(rows.length, shown, `every one of the ${shown} rows was drawn at some scroll position`);
  const perPath = new Map<string, Set<string>>();
  for (const [path = "", comm = ""] of rows) {
    if (!path.startsWith('/load/')) continue;
    let s = perPath.get(path);
    if (s === undefined) perPath.set(path, (s = new Set()));
    s.add(comm);
  }
  const missing = [];
  for (let i = 0; i < LOAD_REQUESTS; i++) if (perPath.get(`/load/${i}`)?.size !== 2) missing.push(i);
  assert.deepEqual(missing.slice(0, 20), [], `requests without both ends' rows (${missing.length} of ${LOAD_REQUESTS})`);
  void peak;
});
