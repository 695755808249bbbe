// SPDX-License-Identifier: Apache-2.0
// The layer rules of docs/architecture.md, held against the real import graph of src/: every
// static import, re-export and dynamic import() of every .ts file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));

/**
 * Layer → the layers it may import (besides itself). Lower layers never import higher ones;
 * front ends never import each other. A new top-level folder must be added here (and to
 * docs/architecture.md) before anything in it may be imported.
 */
const BASE = ['errors', 'constants', 'lazy-module'];
const PURE = [...BASE, 'net', 'protocols', 'elf'];
const BELOW_GADGETS = [...PURE, 'fields', 'proc', 'ebpf', 'containers', 'query'];
const FRONT_END_MAY = [...BELOW_GADGETS, 'gadgets', 'session', 'output'];
export const LAYERS: Record<string, readonly string[]> = {
  errors: [],
  // Linux, libpcap and file-format numbers: one definition each, for every layer
  constants: [],
  // a dependency required on first use (the heavy ones: iced-x86, grpc-js, proto-loader, cel-js)
  'lazy-module': ['errors'],
  net: BASE,
  elf: BASE,
  protocols: [...BASE, 'net'],
  fields: BASE,
  proc: [...BASE, 'net', 'elf'],
  ebpf: [...BASE, 'elf'],
  // the start hook uses fanotify, a raw syscall, so from src/ebpf/
  containers: [...BASE, 'net', 'proc', 'elf', 'ebpf'],
  query: [...BASE, 'net', 'fields'],
  gadgets: BELOW_GADGETS,
  session: [...BELOW_GADGETS, 'gadgets'],
  output: [...PURE, 'fields', 'ebpf'],
  // the one binary: `tlscope ui` and `tlscope agent` start those front ends; they never import cli
  cli: [...FRONT_END_MAY, 'ui', 'agent'],
  agent: FRONT_END_MAY,
  ui: FRONT_END_MAY,
  // `kubectl tlscope ui` serves the UI's hub and server over the cluster streams
  kube: [...FRONT_END_MAY, 'ui'],
};

interface Edge {
  from: string; // src-relative path
  spec: string; // as written
  to: string | undefined; // src-relative path of a relative import, else undefined
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? tsFiles(p) : n.endsWith('.ts') && !n.endsWith('.d.ts') ? [p] : [];
  });
}

/** Import specifiers of one file: import/export … from '…', import '…', import('…'). */
export function importsOf(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: string[] = [];
  const re = /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const m of code.matchAll(re)) out.push((m[1] ?? m[2]) as string);
  return out;
}

function graph(): Edge[] {
  const edges: Edge[] = [];
  for (const file of tsFiles(SRC)) {
    const from = relative(SRC, file);
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      const to = spec.startsWith('.') ? relative(SRC, resolve(dirname(file), spec)).replace(/\.js$/, '.ts') : undefined;
      edges.push({ from, spec, to });
    }
  }
  return edges;
}

function layerOf(path: string): string {
  const top = path.split('/')[0] ?? '';
  return top.replace(/\.ts$/, '');
}

const edges = graph();

test('the import graph is read (sanity: known edges are found)', () => {
  assert.ok(edges.length > 200, `only ${edges.length} imports found`);
  assert.ok(edges.some((e) => e.from === 'ebpf/native.ts' && e.spec === 'koffi'));
  assert.ok(edges.some((e) => e.from === 'cli/commands/trace-sni.ts' && e.to === 'gadgets/sni/definition.ts'));
  assert.deepEqual(importsOf("import { a } from './x.js';\nexport type { B } from '../y.js';\nconst m = await import('./z.js');\n// import { no } from './comment.js';"), ['./x.js', '../y.js', './z.js']);
});

test('every top-level folder of src/ is a known layer', () => {
  const unknown = [...new Set(edges.map((e) => layerOf(e.from)))].filter((l) => !(l in LAYERS));
  assert.deepEqual(unknown, [], 'add new layers to LAYERS here and to docs/architecture.md');
});

test('only src/ebpf/native.ts imports koffi', () => {
  const bad = edges.filter((e) => e.spec === 'koffi' && e.from !== 'ebpf/native.ts').map((e) => e.from);
  assert.deepEqual(bad, []);
});

test('nothing outside src/ebpf/ imports native.ts (isPrivileged, libbpfVersion … instead)', () => {
  const bad = edges.filter((e) => e.to === 'ebpf/native.ts' && layerOf(e.from) !== 'ebpf').map((e) => `${e.from} → ${e.spec}`);
  assert.deepEqual(bad, []);
});

test('no import runs up the layers, and front ends do not import each other', () => {
  const bad: string[] = [];
  for (const e of edges) {
    if (e.to === undefined) continue;
    const a = layerOf(e.from);
    const b = layerOf(e.to);
    if (a === b) continue;
    const may = LAYERS[a];
    if (may !== undefined && !may.includes(b)) bad.push(`${e.from} (${a}) → ${e.to} (${b})`);
  }
  assert.deepEqual(bad, []);
});

test('output never imports gadgets; ebpf imports nothing above it', () => {
  // stated on their own: the two rules people break first
  assert.deepEqual(edges.filter((e) => layerOf(e.from) === 'output' && e.to !== undefined && layerOf(e.to) === 'gadgets').map((e) => e.from), []);
  assert.deepEqual(edges.filter((e) => layerOf(e.from) === 'ebpf' && e.to !== undefined && !['ebpf', 'errors', 'constants', 'elf'].includes(layerOf(e.to))).map((e) => `${e.from} → ${e.spec}`), []);
});

test('gadgets never print (no console, no process.stdout/stderr writes)', () => {
  const bad: string[] = [];
  for (const file of tsFiles(join(SRC, 'gadgets')).concat(tsFiles(join(SRC, 'session')))) {
    const code = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
    if (/\bconsole\.|process\.(stdout|stderr)\b/.test(code)) bad.push(relative(SRC, file));
  }
  assert.deepEqual(bad, []);
});

test('the session layer imports no front end (usable in-process by the agent and the UI)', () => {
  const bad = edges.filter((e) => layerOf(e.from) === 'session' && e.to !== undefined && ['cli', 'agent', 'ui', 'kube', 'output'].includes(layerOf(e.to))).map((e) => `${e.from} → ${e.spec}`);
  assert.deepEqual(bad, []);
});

test('src/constants.ts imports nothing, and no other file defines its numbers again', () => {
  assert.deepEqual(edges.filter((e) => e.from === 'constants.ts').map((e) => e.spec), []);
  const names = [...readFileSync(join(SRC, 'constants.ts'), 'utf8').matchAll(/^export const (\w+) =/gm)].map((m) => m[1] as string);
  assert.ok(names.length > 50 && names.includes('SOL_SOCKET') && names.includes('LINKTYPE_RAW'), `constants.ts exports ${names.length} names`);
  const allowed = new Set<string>();
  const bad: string[] = [];
  for (const file of tsFiles(SRC)) {
    const from = relative(SRC, file);
    if (from === 'constants.ts' || allowed.has(from)) continue;
    const code = readFileSync(file, 'utf8');
    for (const n of names) if (new RegExp(`^\\s*(export )?const ${n} =`, 'm').test(code)) bad.push(`${from}: ${n}`);
  }
  assert.deepEqual(bad, [], 'import these from src/constants.ts');
});
