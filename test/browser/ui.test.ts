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
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { featureSkip, NEEDS } from '../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.tls);
import { makeWorkDir } from '../integration/tls/helpers.js';
import { CliProcess } from '../helpers/cli.js';
import { runProcess, stopChild } from '../helpers/process.js';
import { waitUntil } from '../helpers/wait.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = fileURLToPath(new URL('../../../test/.work/browser/', import.meta.url));
const skip = kernelSkip || (existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing: scripts/setup.sh --test installs Debian's chromium`);

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
srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print('port', srv.server_address[1], flush=True)
srv.serve_forever()
`;


let work: ReturnType<typeof makeWorkDir>;
let server: ChildProcess;
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

function row(path: string, comm = 'curl'): string {
  return `[data-test=row][data-path="${path}"][data-comm="${comm}"]`;
}

before(async () => {
  if (skip) return;
  mkdirSync(SHOTS, { recursive: true });
  work = makeWorkDir('tlscope-ui-browser-');
  writeFileSync(join(work.dir, 'server.py'), SERVER_PY);
  server = spawn('python3', [join(work.dir, 'server.py'), work.cert, work.key], { stdio: ['ignore', 'pipe', 'inherit'] });
  createInterface({ input: server.stdout! }).on('line', (l) => {
    const [k, v = ''] = l.split(' ');
    if (k === 'port') serverPort = Number(v);
    if (k === 'req') served.push(v);
  });
  await waitUntil('the python TLS server', () => serverPort > 0 || server.exitCode !== null);
  assert.ok(serverPort > 0, 'python TLS server did not start');

  ui = new CliProcess(['ui', '--host', '--port', '0']);
  await waitUntil('tlscope ui to print its URL', () => /open http:\/\/127\.0\.0\.1:\d+\/\?token=\S+/.test(ui.stdoutText) || ui.exited, 60_000);
  assert.equal(ui.exited, false, `tlscope ui exited: ${ui.stderr}`);
  url = /open (http:\S+)/.exec(ui.stdoutText)?.[1] ?? '';

  profile = mkdtempSync(join(work.dir, 'profile-'));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1500, height: 820 },
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-gpu', '--disable-default-apps', '--disable-extensions'],
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
});

after(async () => {
  if (skip) return;
  await browser?.close();
  await ui?.stop('SIGINT', 5000);
  if (server !== undefined) await stopChild(server);
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
  await page.fill('[data-test=query]', 'proc.comm==curl,http.path~^/orders/4[23]');
  await page.press('[data-test=query]', 'Enter');
  await waitUntil('the table to narrow to two rows', async () => (await page.locator('[data-test=row]').count()) === 2);
  const paths = await page.locator('[data-test=row]').evaluateAll((rs) => rs.map((r) => r.getAttribute('data-path')));
  assert.deepEqual(paths.sort(), ['/orders/42?n=0', '/orders/43?n=1']);
  assert.notEqual(await page.locator('[data-test=count-shown] b').textContent(), before);
  assert.match(page.url(), /[?&]q=proc\.comm/, 'the query is in the URL');
  await curl('/orders/43?n=live');
  await curl('/cart');
  await page.waitForSelector(row('/orders/43?n=live'), { timeout: 20_000 });
  assert.equal(await page.locator(row('/cart')).count(), 0, 'a new request outside the query stays out');
  await shot('query');

  await page.fill('[data-test=query]', 'http.status>=500,http.path~([');
  await page.press('[data-test=query]', 'Enter');
  const err = page.locator('[data-test=query-error]');
  await err.waitFor({ timeout: 10_000 });
  assert.match((await err.textContent()) ?? '', /at 28: bad regular expression/);
  assert.equal(await err.locator('mark').textContent(), '(');
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
