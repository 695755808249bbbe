// SPDX-License-Identifier: Apache-2.0
/**
 * Shared by the browser tests and the screenshot script: Debian's chromium driven by
 * playwright-core (headless, a throw-away profile), and the tail of their python HTTPS servers.
 */
import { existsSync } from 'node:fs';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Why the browser tests cannot run here, or false. */
export const chromiumSkip: string | false = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing: scripts/setup.sh --test installs Debian's chromium`;

/** Headless chromium on a fresh profile in `profileDir`; its first page logs the page's errors. */
export async function launchBrowser(profileDir: string, viewport: { width: number; height: number }, opts: { deviceScaleFactor?: number } = {}): Promise<{ browser: BrowserContext; page: Page }> {
  const browser = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    ...opts,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-gpu', '--disable-default-apps', '--disable-extensions'],
  });
  const page = browser.pages()[0] ?? (await browser.newPage());
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  return { browser, page };
}

/**
 * The end of a python HTTPS server script whose handler class is `H`: serve it on a port of
 * 127.0.0.1 the kernel picks, with the certificate and key given as argv[1] and argv[2], and
 * print `port N` once listening.
 */
export const SERVE_H_OVER_TLS_PY = `srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print('port', srv.server_address[1], flush=True)
srv.serve_forever()
`;
