// SPDX-License-Identifier: Apache-2.0
// `tlscope ui` in a real browser: Debian's chromium driven by playwright-core (headless, no
// sandbox, background networking off, a fresh profile; never a browser download) against the
// real CLI tracing a real python TLS server and real curl requests on loopback. The token is
// required (401); a request shows within 1 s with method, path, status and the lock; its row
// opens to the body; a query narrows the table (a bad one says where); the service map has
// the curl → python3 edge with its error rate; pausing stops new rows. Each view is saved as a
// screenshot under test/.work/browser/ (not committed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { chromiumSkip, launchBrowser, SERVE_H_OVER_TLS_PY } from './browser.js';
import { featureSkip, NEEDS } from '../helpers/features.js';
import { makeWorkDir } from '../integration/tls/helpers.js';
import { CliProcess, runCli, startUi } from '../helpers/cli.js';
import { runProcess, startProcess, stopChild, type Running } from '../helpers/process.js';
import { waitUntil } from '../helpers/wait.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.tls);

const SHOTS = fileURLToPath(new URL('../../../test/.work/browser/', import.meta.url));
const skip = kernelSkip || chromiumSkip;

// A JSON API over TLS: 500 for /fail…, 200 otherwise, the path echoed in the body.
const SERVER_PY = `
import http.server, json, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_GET(self):
        code = 500 if self.path.startswith('/fail') else 200
        body = json.dumps({"path": self.path, "items": [{"id": 1, "name": "tea"}, {"id": 2, "name": "cake"}], "ok": code == 200}).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print('req', self.path, flush=True)
    def log_message(self, *a):
        pass
${SERVE_H_OVER_TLS_PY}`;

const BASE_QUERY = 'proc.comm in ["curl", "python3"]';

let work: ReturnType<typeof makeWorkDir>;
let server: Running;
let serverPort = 0;
const served: string[] = [];
let ui: CliProcess;
let url = '';
let profile = '';
let browser: BrowserContext;
let page: Page;
/** where in the server's log the requests the UI saw begin (the first warm-up that showed) */
let servedFrom = 0;

async function curl(path: string): Promise<void> {
  const r = await runProcess('curl', ['-sk', '--http1.1', '--resolve', `shop.test:${serverPort}:127.0.0.1`, `https://shop.test:${serverPort}${path}`]);
  assert.equal(r.code, 0, r.stderr);
}

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

/** Waits for an async condition (the page's CSP forbids the string form of waitForFunction). */
function poll(what: string, cond: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  return waitUntil(what, cond, timeoutMs, undefined, 50);
}

function row(path: string, comm = 'curl'): string {
  return `[data-test=row][data-path="${path}"][data-comm="${comm}"]`;
}

before(async () => {
  if (skip) return;
  mkdirSync(SHOTS, { recursive: true });
  work = makeWorkDir('tlscope-ui-browser-');
  writeFileSync(join(work.dir, 'server.py'), SERVER_PY);
  server = startProcess('python3', [join(work.dir, 'server.py'), work.cert, work.key], {
    timeoutMs: 3_600_000,
    onLine: (l) => {
      const [k, v = ''] = l.split(' ');
      if (k === 'port') serverPort = Number(v);
      if (k === 'req') served.push(v);
    },
  });
  await waitUntil('the python TLS server', () => serverPort > 0 || server.child.exitCode !== null);
  assert.ok(serverPort > 0, `python TLS server did not start: ${server.errors()}`);

  // the host may carry other TLS traffic (a cluster's API server): the page opens with a query on
  // the test's own processes (`--query`, the same CEL as the trace commands'; it goes in the URL)
  ({ ui, url } = await startUi(['--host', '--port', '0', '--query', BASE_QUERY]));
  assert.equal(new URL(url).searchParams.get('q'), BASE_QUERY, 'the URL carries --query');

  profile = mkdtempSync(join(work.dir, 'profile-'));
  ({ browser, page } = await launchBrowser(profile, { width: 1500, height: 820 }));
});

after(async () => {
  if (skip) return;
  await browser?.close();
  if (ui !== undefined) await ui.stop('SIGINT', 5000);
  if (server !== undefined) await stopChild(server.child);
  work?.remove();
});

test('without the token: 401, for the page and the API', { skip }, async () => {
  const base = url.replace(/\?token=.*$/, '');
  const res = await page.goto(base);
  assert.equal(res?.status(), 401);
  assert.match((await page.textContent('body')) ?? '', /needs the token/);
  assert.equal((await page.goto(`${base}?token=not-the-token`))?.status(), 401);
  assert.equal((await page.goto(`${base}api/stream`))?.status(), 401);
});

test('a curl request shows within 1 s with method, path, status and the lock; its row opens to the body', { skip }, async () => {
  const res = await page.goto(url);
  assert.equal(res?.status(), 200);
  // a positive marker that tracing is on: warm-up requests until one shows
  for (let i = 0; ; i++) {
    await curl(`/warmup/${i}`);
    try {
      await page.waitForSelector(row(`/warmup/${i}`), { timeout: 3000 });
      servedFrom = served.indexOf(`/warmup/${i}`);
      break;
    } catch (e) {
      if (i >= 10) throw new Error(`no warm-up request showed in 10 tries; tlscope ui said: ${ui.stderr}`, { cause: e });
    }
  }
  const delays: number[] = [];
  for (let i = 0; i < 3; i++) {
    const path = `/orders/${42 + i}?n=${i}`;
    await curl(path);
    const done = Date.now();
    await page.waitForSelector(row(path), { timeout: 30_000 });
    delays.push(Date.now() - done);
  }
  // the row is drawn once the server has paired curl's request and response
  const median = [...delays].sort((a, b) => a - b)[1] ?? Infinity;
  console.log(`# request to row: ${delays.join(', ')} ms`);
  assert.ok(median < 1000, `a request takes ${median} ms (median of ${delays.join(', ')}) to show; wanted < 1 s`);

  const r = page.locator(row('/orders/42?n=0'));
  assert.equal(await r.locator('[data-test=method]').textContent(), 'GET');
  assert.equal(await r.locator('[data-test=status]').textContent(), '200');
  assert.equal(await r.locator('[data-test=lock]').count(), 1, 'the lock icon');
  assert.equal(await r.locator('[data-test=lock] title').textContent(), 'decrypted from OpenSSL');
  const server = page.locator(row('/orders/42?n=0', 'python3'));
  assert.equal(await server.locator('[data-test=status]').textContent(), '200', "the server's side of the same exchange");
  await shot('table');

  await r.click();
  const body = page.locator('[data-test=detail] [data-test=body]').last();
  await body.waitFor({ timeout: 10_000 });
  const text = (await body.textContent()) ?? '';
  assert.match(text, /"path": "\/orders\/42\?n=0"/, 'the response body, as JSON');
  assert.match(text, /"name": "tea"/);
  assert.match((await page.locator('[data-test=detail]').textContent()) ?? '', /User-Agent/, 'the request headers');
  await shot('detail');
});

test('a query narrows the table; a bad one says where it is wrong', { skip }, async () => {
  await page.goto(url);
  await page.waitForSelector(row('/orders/42?n=0'));
  const before = await page.locator('[data-test=count-shown] b').textContent();
  await page.fill('[data-test=query]', 'proc.comm == "curl" && http.path.matches("^/orders/4[23]")');
  await page.press('[data-test=query]', 'Enter');
  await poll('the table to narrow to two rows', async () => (await page.locator('[data-test=row]').count()) === 2);
  const paths = await page.locator('[data-test=row]').evaluateAll((rs) => rs.map((r) => r.getAttribute('data-path')));
  assert.deepEqual(paths.sort(), ['/orders/42?n=0', '/orders/43?n=1']);
  assert.notEqual(await page.locator('[data-test=count-shown] b').textContent(), before);
  assert.match(page.url(), /[?&]q=proc\.comm/, 'the query is in the URL');
  // the counts come from the sessions and are always there
  for (const c of ['shown', 'lost', 'missed', 'filtered', 'dropped']) assert.equal(await page.locator(`[data-test=count-${c}]`).count(), 1, c);
  assert.ok(Number(((await page.locator('[data-test=count-filtered] b').textContent()) ?? '').replace(/\D/g, '')) > 0, 'the query left rows out');
  await curl('/orders/43?n=live');
  await curl('/cart');
  await page.waitForSelector(row('/orders/43?n=live'), { timeout: 20_000 });
  assert.equal(await page.locator(row('/cart')).count(), 0, 'a new request outside the query stays out');
  await shot('query');

  // the same CEL as --query: a misspelt field is shown where it is
  await page.fill('[data-test=query]', 'http.status >= 500 && http.pth == "/x"');
  await page.press('[data-test=query]', 'Enter');
  const err = page.locator('[data-test=query-error]');
  await err.waitFor({ timeout: 10_000 });
  assert.match((await err.textContent()) ?? '', /at 23: unknown field "http\.pth"/);
  assert.equal(await err.locator('mark').textContent(), 'h');
  assert.match((await err.locator('[data-test=query-hint]').textContent()) ?? '', /http\.path/);
  await shot('query-error');
  await page.fill('[data-test=query]', '');
  await page.press('[data-test=query]', 'Enter');
  await err.waitFor({ state: 'detached' });
});

test('the service map shows curl → python3 with its calls and error rate', { skip }, async () => {
  await curl('/fail/1');
  await page.goto(url);
  await page.waitForSelector(row('/fail/1'), { timeout: 20_000 });
  await page.click('[data-test=tab-map]');
  const edge = page.locator('[data-test=map-edge][data-from=curl][data-to=python3]');
  await edge.waitFor({ timeout: 10_000 });
  const label = (await edge.textContent()) ?? '';
  const m = /^(\d+) calls · (\d+)% errors$/.exec(label);
  assert.ok(m, `edge label "${label}"`);
  const calls = Number(m[1]);
  const seen = served.slice(servedFrom);
  const fails = seen.filter((p) => p.startsWith('/fail')).length;
  assert.ok(fails > 0);
  assert.equal(calls, seen.length, `one call per request the server answered since tracing was on (seen from both ends, counted once): ${seen.join(' ')}`);
  assert.equal(Number(m[2]), Math.round((100 * fails) / seen.length));
  assert.equal(await edge.evaluate((e) => e.classList.contains('bad')), true, 'an edge with errors is marked');
  await shot('map');
  await page.click('[data-test=tab-table]');
});

test('pausing stops new rows; they come in on resume', { skip }, async () => {
  await page.goto(url);
  await page.waitForSelector(row('/orders/42?n=0'));
  await page.click('[data-test=pause]');
  const rows = await page.locator('[data-test=count-shown] b').textContent();
  await curl('/while-paused');
  // positive marker: the page got it and holds it back
  await page.waitForSelector('[data-test=count-waiting]', { timeout: 20_000 });
  assert.equal(await page.locator(row('/while-paused')).count(), 0);
  assert.equal(await page.locator('[data-test=count-shown] b').textContent(), rows);
  assert.equal(await page.locator('.live').textContent(), 'paused');
  await shot('paused');
  await page.click('[data-test=pause]');
  await page.waitForSelector(row('/while-paused'), { timeout: 10_000 });
});

test('tlscope ui --query: a bad expression is a usage error with its column, before anything loads', { skip }, async () => {
  const r = await runCli(['ui', '--port', '0', '--query', 'proc.comm == "curl" && proc.cmd == "x"']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--query: unknown field "proc\.cmd" at column 24/);
});

test('the session speaks in the page: -c NAME that is not running says it waits, and the counts are there', { skip }, async () => {
  const { ui: other, url: otherUrl } = await startUi(['-c', 'never-there-ui', '--port', '0']);
  try {
    await page.goto(otherUrl);
    const note = page.locator('[data-test=messages] [data-test=note]');
    await poll('the waiting note', async () => /waiting for container never-there-ui to start/.test((await note.textContent().catch(() => '')) ?? ''), 20_000);
    // the counts are there from the start, from the sessions' stats
    for (const c of ['shown', 'lost', 'missed', 'filtered', 'dropped']) assert.equal(await page.locator(`[data-test=count-${c}] b`).textContent(), '0', c);
    await poll('the sessions\' first stats (per session, in the title)', async () => /trace tls: 0/.test((await page.locator('[data-test=count-lost]').getAttribute('title')) ?? ''), 10_000);
    assert.doesNotMatch((await page.locator('[data-test=messages]').textContent()) ?? '', /never appeared/, 'while it waits, it is not said to have never appeared');
    await shot('waiting');
  } finally {
    await other.stop('SIGINT', 5000);
  }
});

test('--capture: packets of the server\'s port are rows of their own (tcpdump\'s line), selected with kind == "packet"', { skip }, async () => {
  // its own run: the capture gadget's session beside trace tls and trace sni, on the test server's port only
  const { ui: other, url: otherUrl } = await startUi(['--port', '0', '--capture', `tcp port ${serverPort}`, '--query', 'kind == "packet" && summary.contains("Flags [S]")']);
  try {
    await page.goto(otherUrl);
    await page.waitForSelector('[data-test=count-shown]');
    const syn = page.locator('[data-test=row]', { hasText: `> 127.0.0.1.${serverPort}: Flags [S]` }).first();
    for (let i = 0; ; i++) {
      await curl(`/syn-please/${i}`);
      try {
        await syn.waitFor({ timeout: 3000 });
        break;
      } catch (e) {
        if (i >= 10) throw new Error(`no SYN row in 10 tries; tlscope ui said: ${other.stderr}`, { cause: e });
      }
    }
    assert.match((await syn.textContent()) ?? '', /PKT/);
    assert.equal(await page.locator('[data-test=row]', { hasText: 'HTTP' }).count(), 0, 'the query leaves only packets');
    await shot('capture');
  } finally {
    await other.stop('SIGINT', 5000);
  }
});
