// SPDX-License-Identifier: Apache-2.0
/** Redaction on by default in the agent and the UI; no-redact turns it off; the UI's pairing masks too. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redactorOf, tlsDefinition } from '../../../src/gadgets/tls/definition.js';
import { tlsDataFields, tlsHttpFields } from '../../../src/gadgets/tls/fields.js';
import { parseParams } from '../../../src/gadgets/params.js';
import { redactionLine, sessionRedaction } from '../../../src/agent/server.js';
import { uiParams } from '../../../src/ui/run.js';
import { EntryMaker } from '../../../src/ui/entries.js';
import { Redactor } from '../../../src/protocols/redact.js';
import { tlsEvent } from '../ui/fixtures.js';

const params = (raw: Record<string, unknown>) => parseParams(tlsDefinition.params, raw);

test('redactorOf: --redact masks, --no-redact wins, neither is off', () => {
  assert.ok(redactorOf(params({ redact: true })) instanceof Redactor);
  assert.equal(redactorOf(params({ redact: true, 'no-redact': true })), undefined);
  assert.equal(redactorOf(params({})), undefined);
});

test('agent: trace tls sessions get --redact unless the request says no-redact; tlscope agent --no-redact makes it opt-in', () => {
  assert.deepEqual(sessionRedaction({}, true), { redact: true });
  assert.deepEqual(sessionRedaction({ 'no-redact': true }, true), { redact: false });
  assert.deepEqual(sessionRedaction({}, false), {});
  assert.deepEqual(sessionRedaction({ 'no-redact': true }, false), { redact: false });
  // a client's --redact still masks on an agent started with --no-redact
  assert.ok(redactorOf(params({ redact: true, ...sessionRedaction({ redact: true }, false) })) instanceof Redactor);
  assert.match(redactionLine(true), /masked.*--no-redact/);
  assert.match(redactionLine(false), /NOT masked/);
});

test('ui: trace tls params mask by default, --no-redact turns it off', () => {
  assert.ok(redactorOf(params(uiParams(true)['trace tls'] ?? {})) instanceof Redactor);
  assert.equal(redactorOf(params(uiParams(false)['trace tls'] ?? {})), undefined);
});

test("ui: the hub's pairing masks credential headers of exchanges when given a redactor", () => {
  const c = { pid: 7, comm: 'curl', conn: 'c1', local: '127.0.0.1:40000', remote: '127.0.0.1:8443' };
  const req = 'GET /p HTTP/1.1\r\nHost: shop.test\r\nAuthorization: Bearer SECRET-1\r\nCookie: s=SECRET-2\r\n\r\n';
  const res = 'HTTP/1.1 200 OK\r\nSet-Cookie: s=SECRET-3\r\nContent-Length: 2\r\n\r\nok';
  const batch = [tlsEvent({ ...c, direction: 'write', text: req }), tlsEvent({ ...c, direction: 'read', text: res })];
  const fields = tlsDataFields({ json: true, hex: false }) as never;
  const masked = new EntryMaker('trace tls', fields, undefined, tlsHttpFields(), new Redactor()).make(batch);
  const http = masked.find((p) => p.detail.request !== undefined);
  assert.ok(http !== undefined, 'an exchange');
  const headers = JSON.stringify([http.detail.request?.headers, http.detail.response?.headers, http.entry.json]);
  assert.ok(headers.includes('/p'));
  assert.ok(!headers.includes('SECRET'), headers);
  const clear = new EntryMaker('trace tls', fields, undefined, tlsHttpFields()).make(batch);
  assert.ok(JSON.stringify(clear.map((p) => [p.detail.request?.headers, p.detail.response?.headers])).includes('SECRET-1'));
});
