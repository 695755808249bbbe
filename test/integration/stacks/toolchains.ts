// SPDX-License-Identifier: Apache-2.0
/**
 * Toolchains and fixture binaries for the TLS stack tests, kept in one cache directory outside
 * the repository (TLSCOPE_TEST_CACHE, default /var/cache/tlscope-test) so that a second run
 * builds nothing: Go releases 1.15 (Debian 11's golang-1.15-go, unpacked, not installed),
 * 1.19 (Debian 12's golang-1.19-go) and every minor release from 1.21 on (GOTOOLCHAIN through
 * the Go module proxy). Built binaries are keyed by toolchain, variant and a hash of the
 * fixture's source. `scripts/setup.sh --test` warms the cache through prepare.ts.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CACHE = process.env.TLSCOPE_TEST_CACHE ?? '/var/cache/tlscope-test';
/** The fixture sources, in the repository (src tree; tsc does not copy them). */
export const FIXTURES = fileURLToPath(new URL('../../../../test/fixtures/stacks/', import.meta.url));

export interface GoRelease {
  version: string;
  /** where the toolchain comes from */
  from: 'debian-bullseye' | 'debian-bookworm' | 'gotoolchain';
}

/**
 * One release per minor version, the newest patch the source offers. Go 1.16, 1.17, 1.18 and
 * 1.20 are reachable from nowhere here: Debian 11 ships only 1.15, Debian 12 only 1.19 (its
 * backports and bullseye-backports are not on the mirror), and the module proxy serves
 * toolchains from 1.21 on only.
 */
export const GO_RELEASES: readonly GoRelease[] = [
  { version: '1.15.15', from: 'debian-bullseye' },
  { version: '1.19.8', from: 'debian-bookworm' },
  ...['1.21.13', '1.22.12', '1.23.12', '1.24.13', '1.25.14', '1.26.11', '1.27.4'].map((version) => ({ version, from: 'gotoolchain' as const })),
];
export const GO_UNREACHABLE = ['1.16', '1.17', '1.18', '1.20'];

/** The build variants of one release's fixture: what each changes for the finder. */
export const GO_VARIANTS = {
  /** .symtab present */
  symbols: [] as string[],
  /** -s -w: no .symtab, functions come from the pclntab */
  stripped: ['-ldflags=-s -w'],
  /** PIE (pclntab in .data.rel.ro), -trimpath, stripped */
  hardened: ['-buildmode=pie', '-trimpath', '-ldflags=-s -w'],
} as const;
export type GoVariant = keyof typeof GO_VARIANTS;

function sh(cmd: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): string {
  try {
    // maxBuffer: a make's output passes 1 MiB (node's default, which kills the child)
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 * 1024 * 1024, timeout: opts.timeoutMs ?? 600_000, ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }), ...(opts.env === undefined ? {} : { env: opts.env }) });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${err.stderr?.trim() || err.message}`);
  }
}

/** Debian 11 packages, downloaded with a private apt configuration (the system's sources are untouched). */
function debianBullseye(packages: readonly string[], into: string): void {
  const apt = join(CACHE, 'apt');
  for (const d of ['lists/partial', 'archives/partial', 'etc', 'debs']) mkdirSync(join(apt, d), { recursive: true });
  writeFileSync(join(apt, 'etc', 'sources.list'), 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main\n');
  const opts = [
    `-o`, `Dir::Etc::SourceList=${join(apt, 'etc', 'sources.list')}`, '-o', 'Dir::Etc::SourceParts=/dev/null',
    '-o', `Dir::State::Lists=${join(apt, 'lists')}`, '-o', `Dir::Cache=${apt}`, '-o', 'Dir::State::status=/dev/null',
    '-o', 'APT::Architecture=amd64', '-o', 'APT::Sandbox::User=root',
  ];
  if (!readdirSync(join(apt, 'lists')).some((n) => n.includes('bullseye'))) sh('apt-get', [...opts, 'update', '-q']);
  const debs = join(apt, 'debs');
  sh('apt-get', [...opts, 'download', ...packages], { cwd: debs });
  const tmp = `${into}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  for (const p of packages) {
    const deb = readdirSync(debs).find((n) => n.startsWith(`${p}_`) && n.endsWith('.deb'));
    if (deb === undefined) throw new Error(`apt-get download ${p} left no .deb`);
    sh('dpkg-deb', ['-x', join(debs, deb), tmp]);
  }
  renameSync(tmp, into);
}

/** The `go` command of a release, fetched on first use. */
export function goCommand(r: GoRelease): string {
  const minor = r.version.split('.').slice(0, 2).join('.');
  if (r.from === 'debian-bookworm') {
    const go = `/usr/lib/go-${minor}/bin/go`;
    if (!existsSync(go)) throw new Error(`${go} is missing: apt-get install golang-${minor}-go (scripts/setup.sh --test)`);
    return go;
  }
  if (r.from === 'debian-bullseye') {
    const root = join(CACHE, `go${minor}`);
    const go = join(root, 'usr', 'lib', `go-${minor}`, 'bin', 'go');
    if (!existsSync(go)) debianBullseye([`golang-${minor}-go`, `golang-${minor}-src`], root);
    return go;
  }
  const modcache = join(CACHE, 'gomod');
  const go = join(modcache, 'golang.org', `toolchain@v0.0.1-go${r.version}.linux-amd64`, 'bin', 'go');
  if (!existsSync(go)) {
    // any go ≥ 1.21 fetches the toolchain into the module cache and runs it
    sh('go', ['version'], { env: { ...process.env, GOTOOLCHAIN: `go${r.version}`, GOMODCACHE: modcache, GOENV: 'off', GOFLAGS: '' }, timeoutMs: 900_000 });
    if (!existsSync(go)) throw new Error(`GOTOOLCHAIN=go${r.version} left no ${go}`);
  }
  return go;
}

function sourceHash(dir: string): string {
  const h = createHash('sha256');
  for (const n of readdirSync(dir).sort()) h.update(n).update(readFileSync(join(dir, n)));
  return h.digest('hex').slice(0, 12);
}

/** The Go fixture (test/fixtures/stacks/go) built by one release in one variant; cached. */
export function goFixture(r: GoRelease, variant: GoVariant): string {
  const src = join(FIXTURES, 'go');
  const out = join(CACHE, 'bin', `gotls-${r.version}-${variant}-${sourceHash(src)}`);
  if (existsSync(out)) return out;
  const go = goCommand(r);
  mkdirSync(join(CACHE, 'bin'), { recursive: true });
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH, HOME: CACHE, GOENV: 'off', GOFLAGS: '-mod=mod', GOPROXY: 'off', GOTOOLCHAIN: 'local',
    CGO_ENABLED: '0', GOCACHE: join(CACHE, 'gocache'), GOPATH: join(CACHE, 'gopath'), GOMODCACHE: join(CACHE, 'gomod'),
  };
  const tmp = `${out}.tmp${process.pid}`;
  sh('nice', ['-n', '10', go, 'build', ...GO_VARIANTS[variant], '-o', tmp, '.'], { cwd: src, env });
  renameSync(tmp, out);
  return out;
}

/** `go version` of a built binary's toolchain, as the binary records it. */
export function goToolchainVersion(r: GoRelease): string {
  return sh(goCommand(r), ['version'], { env: { ...process.env, GOENV: 'off', GOFLAGS: '', GOTOOLCHAIN: 'local' } }).trim();
}

/** The C fixture on OpenSSL's SSL_read/SSL_write, libssl.a and libcrypto.a linked in statically (libssl-dev); cached. */
export function opensslStaticFixture(variant: 'symbols' | 'stripped'): string {
  const src = join(FIXTURES, 'openssl');
  const out = join(CACHE, 'bin', `sslpeer-static-${variant}-${sourceHash(src)}`);
  if (existsSync(out)) return out;
  mkdirSync(join(CACHE, 'bin'), { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  sh('gcc', ['-O2', '-o', tmp, join(src, 'sslpeer.c'), '-Wl,-Bstatic', '-lssl', '-lcrypto', '-Wl,-Bdynamic', '-pthread', '-ldl', ...(variant === 'stripped' ? ['-s'] : [])]);
  renameSync(tmp, out);
  return out;
}

/** Where Debian keeps libcurl's NSS flavour (libcurl3-nss). */
export const CURL_NSS = '/usr/lib/x86_64-linux-gnu/libcurl-nss.so.4';

/** Why the NSS fixtures cannot be built here, or false: Debian's libnss3-dev and libcurl3-nss (scripts/setup.sh --test). */
export function nssSkipReason(): string | false {
  if (!existsSync('/usr/include/nss/ssl.h')) return 'NSS headers missing (Debian package libnss3-dev, scripts/setup.sh --test)';
  if (!existsSync(CURL_NSS)) return `no ${CURL_NSS} (Debian package libcurl3-nss, scripts/setup.sh --test)`;
  return false;
}

/**
 * The NSS fixtures (test/fixtures/stacks/nss): `peer`, a client on NSS's own API (PR_Write/PR_Read
 * on an SSL descriptor, file writes through PR_Write between them), and `curl`, a client on
 * libcurl's NSS flavour (PR_Send/PR_Recv inside libcurl). Dynamically linked against Debian's
 * NSS; cached.
 */
export function nssFixture(which: 'peer' | 'curl'): string {
  const src = join(FIXTURES, 'nss');
  const out = join(CACHE, 'bin', `nss${which}-${sourceHash(src)}`);
  if (existsSync(out)) return out;
  mkdirSync(join(CACHE, 'bin'), { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  if (which === 'peer') sh('gcc', ['-O2', '-o', tmp, join(src, 'nsspeer.c'), '-I/usr/include/nss', '-I/usr/include/nspr', '-lssl3', '-lnss3', '-lnspr4']);
  else sh('gcc', ['-O2', '-o', tmp, join(src, 'nsscurl.c'), CURL_NSS]);
  renameSync(tmp, out);
  return out;
}

/** cargo: rustup's under ~/.cargo, else the one on PATH (Debian's cargo-web, scripts/setup.sh --test). */
function cargoCommand(): string {
  const home = join(process.env.HOME ?? '/root', '.cargo', 'bin', 'cargo');
  return existsSync(home) ? home : 'cargo';
}

/** The rustls fixture's builds: legacy-mangled symbols (rustc's default), the same stripped, v0-mangled symbols. */
export type RustlsVariant = 'symbols' | 'stripped' | 'v0';

/**
 * The rustls fixture (test/fixtures/stacks/rust: rustls 0.23 on ring over std::net, Cargo.lock
 * committed) built in release mode: with symbols, stripped (that build through `strip`), or
 * with `-C symbol-mangling-version=v0`. Crates and build trees live in the cache (CARGO_HOME,
 * target dirs), so a later run builds nothing.
 */
export function rustlsFixture(variant: RustlsVariant): string {
  return cargoFixture('rust', 'rustlspeer', variant);
}

/**
 * The BoringSSL fixture (test/fixtures/stacks/boring: the `boring` crate, whose boring-sys builds
 * BoringSSL with cmake and links it statically), with symbols or stripped. The first build takes
 * minutes (measured: 7 min 48 s on 2 loaded cores); cached like the others.
 */
export function boringFixture(variant: 'symbols' | 'stripped'): string {
  return cargoFixture('boring', 'boringpeer', variant);
}

function cargoFixture(dir: string, name: string, variant: RustlsVariant): string {
  const src = join(FIXTURES, dir);
  const hash = createHash('sha256');
  for (const f of [`${dir}/Cargo.toml`, `${dir}/Cargo.lock`, `${dir}/src/main.rs`, 'rust-common/peer.rs']) hash.update(f).update(readFileSync(join(FIXTURES, f)));
  const out = join(CACHE, 'bin', `${name}-${variant}-${hash.digest('hex').slice(0, 12)}`);
  if (existsSync(out)) return out;
  mkdirSync(join(CACHE, 'bin'), { recursive: true });
  const target = join(CACHE, `cargo-target-${dir}${variant === 'v0' ? '-v0' : ''}`);
  const cargo = cargoCommand();
  const env: NodeJS.ProcessEnv = {
    ...process.env, CARGO_HOME: join(CACHE, 'cargo'), CARGO_TARGET_DIR: target,
    PATH: cargo === 'cargo' ? process.env.PATH : `${dirname(cargo)}:${process.env.PATH ?? ''}`,
    RUSTFLAGS: variant === 'v0' ? '-C symbol-mangling-version=v0' : '',
  };
  sh('nice', ['-n', '10', cargo, 'build', '--release', '--locked'], { cwd: src, env, timeoutMs: 1_800_000 });
  const tmp = `${out}.tmp${process.pid}`;
  const built = join(target, 'release', name);
  sh(variant === 'stripped' ? 'strip' : 'cp', variant === 'stripped' ? ['-o', tmp, built] : [built, tmp]);
  renameSync(tmp, out);
  return out;
}

/** `rustc --version` of the toolchain the rustls fixture is built with. */
export function rustcVersion(): string {
  const cargo = cargoCommand();
  return sh(cargo === 'cargo' ? 'rustc' : join(dirname(cargo), 'rustc'), ['--version']).trim();
}

/** The tlsget fixture (test/fixtures/stacks/tlsget) built by gcc against the host's libssl.so.3 (libssl-dev); cached. */
export function tlsgetGlibc(): string {
  const src = join(FIXTURES, 'tlsget');
  const out = join(CACHE, 'bin', `tlsget-glibc-${sourceHash(src)}`);
  if (existsSync(out)) return out;
  mkdirSync(join(CACHE, 'bin'), { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  sh('gcc', ['-O2', '-o', tmp, join(src, 'tlsget.c'), '-lssl', '-lcrypto']);
  renameSync(tmp, out);
  return out;
}

/** Where the musl test's root holds the musl-built libssl/libcrypto: the RPATH tlsgetMusl links with. */
export const MUSL_OPENSSL_DIR = '/opt/openssl-musl/lib';

/** Debian 12's OpenSSL source (the version its main archive has), as built for musl below. */
export const MUSL_OPENSSL_SOURCE = 'openssl';

/** An OpenSSL built with musl-gcc: its shared libraries and headers. */
export interface MuslOpenSsl {
  /** e.g. 3.0.20 */
  version: string;
  /** holds libssl.so.3 and libcrypto.so.3 */
  lib: string;
  include: string;
}

/** The orig tarball of a Debian 12 source package, downloaded with a private apt configuration (deb-src; the system's sources are untouched). */
function debianSourceTarball(pkg: string): string {
  const apt = join(CACHE, 'apt-src');
  for (const d of ['lists/partial', 'archives/partial', 'etc', 'src']) mkdirSync(join(apt, d), { recursive: true });
  writeFileSync(join(apt, 'etc', 'sources.list'), 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main\n');
  const opts = [
    '-o', `Dir::Etc::SourceList=${join(apt, 'etc', 'sources.list')}`, '-o', 'Dir::Etc::SourceParts=/dev/null',
    '-o', `Dir::State::Lists=${join(apt, 'lists')}`, '-o', `Dir::Cache=${apt}`, '-o', 'Dir::State::status=/dev/null',
    '-o', 'APT::Sandbox::User=root',
  ];
  const src = join(apt, 'src');
  const find = (): string | undefined => readdirSync(src).find((n) => n.startsWith(`${pkg}_`) && /\.orig\.tar\.(gz|xz)$/.test(n));
  if (find() === undefined) {
    if (!readdirSync(join(apt, 'lists')).some((n) => n.includes('Sources'))) sh('apt-get', [...opts, 'update', '-q']);
    sh('apt-get', [...opts, 'source', '--download-only', pkg], { cwd: src });
  }
  const tarball = find();
  if (tarball === undefined) throw new Error(`apt-get source --download-only ${pkg} left no orig tarball in ${src}`);
  return join(src, tarball);
}

/**
 * OpenSSL 3 from Debian 12's source package, built with musl-gcc (musl-tools) as shared
 * libssl.so.3/libcrypto.so.3 (no-asm: musl-gcc's specs and OpenSSL's perlasm agree, but C is
 * the safer common ground; no-afalgeng: it needs kernel headers musl does not ship). Cached;
 * the first build (only `build_libs`) measured 7 min 55 s wall, 5 min 30 s of CPU (user + sys) with make -j2 on the 2 shared cores here.
 */
export function muslOpenSsl(): MuslOpenSsl {
  const tarball = debianSourceTarball(MUSL_OPENSSL_SOURCE);
  const version = /_(\d+\.\d+\.\d+[a-z]?)\.orig/.exec(tarball)?.[1];
  if (version === undefined) throw new Error(`no version in ${tarball}`);
  const dir = join(CACHE, `openssl-musl-${version}`);
  const result = { version, lib: join(dir, 'lib'), include: join(dir, 'include') };
  if (existsSync(join(result.lib, 'libssl.so.3'))) return result;
  if (!existsSync('/usr/bin/musl-gcc')) throw new Error('musl-gcc is missing: apt-get install musl-tools (scripts/setup.sh --test)');
  // a build cut short (timeout, a killed setup) is taken up where it stopped: make keeps its objects
  const work = `${dir}.build`;
  if (!existsSync(join(work, 'Makefile'))) {
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    sh('tar', ['-xf', tarball, '-C', work, '--strip-components=1']);
    // musl-gcc's include path has no kernel headers (crypto/mem_sec.c needs linux/mman.h):
    // Debian's linux-libc-dev ones, and no more of /usr/include than them
    const kernel = join(work, 'kernel-headers');
    mkdirSync(kernel);
    for (const [n, from] of [['linux', '/usr/include/linux'], ['asm-generic', '/usr/include/asm-generic'], ['asm', '/usr/include/x86_64-linux-gnu/asm']] as const) symlinkSync(from, join(kernel, n));
    sh('nice', ['-n', '10', './Configure', 'linux-x86_64', 'no-asm', 'no-afalgeng', 'no-tests', 'shared', '--prefix=/opt/openssl-musl', '--libdir=lib', 'CC=musl-gcc', `-I${kernel}`], { cwd: work });
  }
  sh('nice', ['-n', '10', 'make', '-j2', 'build_libs'], { cwd: work, timeoutMs: 3_600_000 });
  const tmp = `${dir}.tmp${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, 'lib'), { recursive: true });
  for (const l of ['libssl.so.3', 'libcrypto.so.3']) sh('cp', [join(work, l), join(tmp, 'lib', l)]);
  sh('cp', ['-r', join(work, 'include'), join(tmp, 'include')]);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  rmSync(work, { recursive: true, force: true });
  return result;
}

/**
 * The tlsget fixture linked against musl (musl-gcc) and the musl-built OpenSSL, with an RPATH
 * of `rpath` (where the container holds the libraries; not a directory musl's loader looks in
 * by itself); cached.
 */
export function tlsgetMusl(rpath: string = MUSL_OPENSSL_DIR): string {
  const ossl = muslOpenSsl();
  const src = join(FIXTURES, 'tlsget');
  const tag = createHash('sha256').update(rpath).update(ossl.version).digest('hex').slice(0, 6);
  const out = join(CACHE, 'bin', `tlsget-musl-${sourceHash(src)}-${tag}`);
  if (existsSync(out)) return out;
  mkdirSync(join(CACHE, 'bin'), { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  sh('musl-gcc', ['-O2', '-o', tmp, join(src, 'tlsget.c'), `-I${ossl.include}`, `-Wl,-rpath,${rpath}`, join(ossl.lib, 'libssl.so.3'), join(ossl.lib, 'libcrypto.so.3')]);
  renameSync(tmp, out);
  return out;
}
