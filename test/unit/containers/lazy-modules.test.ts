// SPDX-License-Identifier: Apache-2.0
// grpc-js, proto-loader (protobufjs) and the CEL engine load when first used, not with the CLI:
// a trace with no --query, no --proto and no runtime socket to speak gRPC to never loads them.
// The codes the runtime clients compare with are grpc-js's own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GrpcStatus } from '../../../src/containers/grpc.js';

test('the gRPC status codes the runtime clients test for are grpc-js\'s', () => {
  const { status } = createRequire(import.meta.url)('@grpc/grpc-js') as typeof import('@grpc/grpc-js');
  for (const [name, code] of Object.entries(GrpcStatus)) assert.equal(code, status[name as keyof typeof status], name);
});

test('importing the CLI loads neither grpc-js, proto-loader, protobufjs nor cel-js; a query loads cel-js', () => {
  const main = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));
  const query = fileURLToPath(new URL('../../../src/query/query.js', import.meta.url));
  // which packages' files were loaded: the ESM loader's hook (every import, CommonJS ones
  // included) writes each URL to a file; require.cache has what CommonJS required inside
  const dir = mkdtempSync(join(tmpdir(), 'tlscope-lazy-'));
  const log = join(dir, 'loaded');
  const hook = `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) { appendFileSync(${JSON.stringify(log)}, url + '\\n'); return next(url, context); }`;
  const script = `
    const { register, createRequire } = await import('node:module');
    register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));
    const { readFileSync } = await import('node:fs');
    const m = await import(${JSON.stringify(main)});
    const q = await import(${JSON.stringify(query)});
    const loaded = () => [...readFileSync(${JSON.stringify(log)}, 'utf8').split('\\n'), ...Object.keys(createRequire(import.meta.url).cache)]
      .map((f) => f.match(/node_modules\\/((?:@[^/]+\\/)?[^/]+)/)?.[1]).filter(Boolean);
    const before = [...new Set(loaded())];
    q.compileQuery('x == 1', [{ name: 'x', column: 'X', width: 4, type: 'int', description: 'x', visible: true, get: () => 1 }]);
    const after = [...new Set(loaded())];
    console.log(JSON.stringify({ main: typeof m.main, before, after }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  assert.equal(r.status, 0, r.stderr);
  const { main: mainType, before, after } = JSON.parse(r.stdout) as { main: string; before: string[]; after: string[] };
  assert.equal(mainType, 'function');
  for (const heavy of ['@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs', '@marcbachmann/cel-js']) assert.ok(!before.includes(heavy), `${heavy} loaded with the CLI: ${before.join(', ')}`);
  assert.ok(after.includes('@marcbachmann/cel-js'), `a query did not load cel-js: ${after.join(', ')}`);
});
