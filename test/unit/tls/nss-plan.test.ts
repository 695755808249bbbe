// SPDX-License-Identifier: Apache-2.0
// What trace tls plans for NSS, on this machine's own NSS files (Debian's libnspr4.so and
// libssl3.so): NSPR's four I/O calls, entry and return, at their symbols' offsets; libssl3 a
// finding without probes of its own; nothing at all when nss is left out of --sources.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { ElfFile } from '../../../src/proc/elf.js';
import { planFile } from '../../../src/gadgets/tls/targets.js';
import { analyzeFile, PROBE_SOURCES } from '../../../src/gadgets/tls/stacks.js';

const NSPR = ['/usr/lib/x86_64-linux-gnu/libnspr4.so', '/usr/lib64/libnspr4.so'].find((p) => existsSync(p));
const SSL3 = ['/usr/lib/x86_64-linux-gnu/libssl3.so', '/usr/lib64/libssl3.so'].find((p) => existsSync(p));
const skip = NSPR === undefined || SSL3 === undefined ? 'NSS is not installed (Debian packages libnspr4, libnss3; scripts/setup.sh --test)' : false;

test('libnspr4.so: PR_Write/PR_Read/PR_Send/PR_Recv, entry and return, at their symbols', { skip }, () => {
  const plans = planFile(NSPR!, new Set(PROBE_SOURCES));
  assert.deepEqual(plans.map((p) => p.source), ['nss']);
  const elf = ElfFile.open(NSPR!);
  let syms: Map<string, { fileOffset: number }>;
  try {
    syms = elf.functions((n) => ['PR_Write', 'PR_Read', 'PR_Send', 'PR_Recv'].includes(n));
  } finally {
    elf.close();
  }
  const probes = plans[0]!.probes;
  assert.equal(probes.length, 8);
  for (const [name, program] of [['PR_Write', 'tls_nss_write'], ['PR_Read', 'tls_nss_read'], ['PR_Send', 'tls_nss_send'], ['PR_Recv', 'tls_nss_recv']] as const) {
    const at = syms.get(name)?.fileOffset;
    assert.ok(at !== undefined && at > 0, name);
    assert.ok(probes.some((p) => p.program === program && !p.retprobe && p.offset === at), `${name} entry`);
    assert.ok(probes.some((p) => p.program === 'tls_lib_ret' && p.retprobe && p.offset === at), `${name} return`);
  }
  // without nss among the sources: nothing
  assert.deepEqual(planFile(NSPR!, new Set(PROBE_SOURCES.filter((s) => s !== 'nss'))), []);
});

test('libssl3.so: NSS with its version, hooked through NSPR, no probes of its own; left out with nss', { skip }, () => {
  const a = analyzeFile(SSL3!, SSL3!, new Set(PROBE_SOURCES));
  assert.deepEqual(a.plans, []);
  assert.equal(a.findings.length, 1);
  const f = a.findings[0]!;
  assert.equal(f.stack, 'nss');
  assert.equal(f.hook, true);
  assert.equal(f.probes, 0);
  assert.match(f.label, /^NSS 3\.\d+(\.\d+)* \(libssl3\.so\)$/);
  assert.deepEqual(analyzeFile(SSL3!, SSL3!, new Set(PROBE_SOURCES.filter((s) => s !== 'nss'))), { plans: [], findings: [] });
});
