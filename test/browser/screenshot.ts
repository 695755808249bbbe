// SPDX-License-Identifier: Apache-2.0
// The README's screenshot of `tlscope ui`, taken from a real run (as root):
//
//   npm run build && node dist/test/browser/screenshot.js docs/ui.png
//
// A python HTTPS shop (HTTP/1.1) and a node HTTP/2 API run on loopback; real curl requests
// (HTTP/1.1 and HTTP/2, some failing) go to them while `tlscope ui` traces the host; Debian's
// chromium (playwright-core, headless) opens the printed URL with a query on those names,
// opens one exchange's detail and saves the page. Also saves the service map beside it
// (docs/ui-map.png). Nothing here is drawn by hand: what shows is what was traced.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { BrowserContext } from 'playwright-core';
import { launchBrowser, SERVE_H_OVER_TLS_PY } from './browser.js';
import { makeWorkDir } from '../integration/tls/helpers.js';
import { startUi, type CliProcess } from '../helpers/cli.js';
import { runProcess, startProcess, stopChild, type Running } from '../helpers/process.js';
import { sleep, waitFor } from '../helpers/wait.js';

const out = resolve(process.argv[2] ?? 'docs/ui.png');
const mapOut = join(dirname(out), 'ui-map.png');

const SHOP_PY = `
import http.server, json, ssl, sys
ITEMS = [{"id": 1, "name": "green tea", "price": 4.5}, {"id": 2, "name": "lemon cake", "price": 3.2}]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path.startswith('/api/items'):
            self.reply(200, {"items": ITEMS, "total": len(ITEMS)})
        elif self.path.startswith('/api/orders/'):
            self.reply(404, {"error": "no such order", "path": self.path})
        else:
            self.reply(500, {"error": "database unavailable"})
    def do_POST(self):
        n = int(self.headers.get('Content-Length', '0'))
        order = json.loads(self.rfile.read(n) or b'{}')
        self.reply(201, {"order": 1042, "status": "accepted", "items": order.get("items", [])})
    def log_message(self, *a):
        pass
${SERVE_H_OVER_TLS_PY}`;

const API_JS = `
const http2 = require('node:http2');
const fs = require('node:fs');
const s = http2.createSecureServer({ cert: fs.readFileSync(process.argv[2]), key: fs.readFileSync(process.argv[3]) });
s.on('stream', (stream, h) => {
  const path = h[':path'];
  const ok = !path.startsWith('/v1/limits');
  stream.respond({ ':status': ok ? 200 : 429, 'content-type': 'application/json' });
  stream.end(JSON.stringify(ok ? { user: 'ada', plan: 'pro', path } : { error: 'rate limited', retryAfter: 2 }));
});
s.listen(0, '127.0.0.1', () => console.log('port', s.address().port));
`;

/** A server that prints `port N` once it listens: running, and its port. */
async function startServer(cmd: string, args: readonly string[]): Promise<{ server: Running; port: number }> {
  let port: number | undefined;
  const server = startProcess(cmd, args, {
    timeoutMs: 3_600_000,
    onLine: (l) => {
      const [k, v = ''] = l.split(' ');
      if (k === 'port') port = Number(v);
    },
  });
  await waitFor(`${cmd} ${args[0] ?? ''} to say its port`, () => {
    if (port === undefined && server.child.exitCode !== null) throw new Error(`${cmd} exited (${server.child.exitCode}): ${server.errors()}`);
    return port;
  });
  return { server, port: port as number };
}

async function main(): Promise<void> {
  const work = makeWorkDir('tlscope-ui-shot-');
  const children: Running[] = [];
  let ui: CliProcess | undefined;
  let browser: BrowserContext | undefined;
  try {
    writeFileSync(join(work.dir, 'shop.py'), SHOP_PY);
    writeFileSync(join(work.dir, 'api.cjs'), API_JS);
    const [shop, api] = await Promise.all([startServer('python3', [join(work.dir, 'shop.py'), work.cert, work.key]), startServer(process.execPath, [join(work.dir, 'api.cjs'), work.cert, work.key])]);
    children.push(shop.server, api.server);
    const [shopPort, apiPort] = [shop.port, api.port];

    const query = 'http.host.contains(".test") || name.endsWith(".test")';
    const started = await startUi(['--port', '0', '--query', query]);
    ui = started.ui;
    const url = started.url;

    const launched = await launchBrowser(mkdtempSync(join(work.dir, 'profile-')), { width: 1440, height: 820 }, { deviceScaleFactor: 1 });
    browser = launched.browser;
    const page = launched.page;
    await page.goto(url);

    const shopUrl = (path: string): string[] => ['--resolve', `shop.test:${shopPort}:127.0.0.1`, `https://shop.test:${shopPort}${path}`];
    const apiUrl = (path: string): string[] => ['--resolve', `api.test:${apiPort}:127.0.0.1`, `https://api.test:${apiPort}${path}`];
    // tracing is on once a first request shows
    for (let i = 0; ; i++) {
      await runProcess('curl', ['-sk', '--http1.1', ...shopUrl('/api/items?warmup')]);
      if (await page.locator('[data-test=row][data-comm=curl]').count() > 0) break;
      if (i > 40) throw new Error(`nothing showed; tlscope ui said: ${started.ui.stderr}`);
      await sleep(500);
    }
    const calls: string[][] = [
      ['-sk', '--http1.1', ...shopUrl('/api/items?category=tea')],
      ['-sk', '--http2', ...apiUrl('/v1/profile')],
      ['-sk', '--http1.1', '-H', 'content-type: application/json', '--data', '{"items":[{"id":1,"qty":2}],"note":"no sugar"}', ...shopUrl('/api/orders')],
      ['-sk', '--http1.1', ...shopUrl('/api/orders/77')],
      ['-sk', '--http2', ...apiUrl('/v1/limits')],
      ['-sk', '--http1.1', ...shopUrl('/checkout')],
      ['-sk', '--http2', ...apiUrl('/v1/profile?fields=plan')],
      ['-sk', '--http1.1', ...shopUrl('/api/items?page=2')],
    ];
    for (const c of calls) {
      await runProcess('curl', c);
      await sleep(150);
    }
    const post = page.locator('[data-test=row][data-path="/api/orders"][data-comm=curl]');
    await post.waitFor({ timeout: 20_000 });
    await page.locator('[data-test=row][data-path="/api/items?page=2"]').first().waitFor({ timeout: 20_000 });
    await page.waitForTimeout(1200); // a stats tick: the counts are the session's
    await page.click('[data-test=tab-map]');
    await page.waitForSelector('[data-test=map-edge]');
    await page.waitForTimeout(300);
    await page.screenshot({ path: mapOut });
    await page.click('[data-test=tab-table]');
    await post.click();
    await page.locator('[data-test=detail] [data-test=body]').last().waitFor({ timeout: 10_000 });
    await page.waitForTimeout(300);
    await page.screenshot({ path: out });
    console.log(`wrote ${out} and ${mapOut}`);
  } finally {
    await browser?.close();
    if (ui !== undefined) await ui.stop('SIGINT', 5000);
    for (const c of children) await stopChild(c.child);
    work.remove();
  }
}

await main();
