// SPDX-License-Identifier: Apache-2.0
/**
 * The one waiter of the tests: poll a condition until it holds, with a deadline that names
 * what was awaited (and, given `detail`, what was there instead). Deadlines are long on
 * purpose: these tests share a small machine with other work, and a deadline should trip only
 * on a real bug. A test that wants to show something did NOT happen waits for a positive
 * marker sent after it (see the sni/tls/capture `marker` helpers), never for a sleep.
 */

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class WaitTimeout extends Error {}

/** Polls `cond` (sync or async) every `intervalMs` (20) until it is true; throws after `timeoutMs`. */
export async function waitUntil(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 30_000, detail?: () => string, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new WaitTimeout(`timed out after ${timeoutMs} ms waiting for ${what}${detail === undefined ? '' : `\n${detail()}`}`);
    await sleep(intervalMs);
  }
}

/** Polls `get` until it returns something other than undefined; that value. */
export async function waitFor<T>(what: string, get: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000, detail?: () => string, intervalMs = 20): Promise<T> {
  let value: T | undefined;
  await waitUntil(what, async () => (value = await get()) !== undefined, timeoutMs, detail, intervalMs);
  return value as T;
}
