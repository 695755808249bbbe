#!/usr/bin/env bash
# Installs everything tlscope needs on Debian/Ubuntu and builds it. Run as root.
#   scripts/setup.sh          what `tlscope` needs to build and run
#   scripts/setup.sh --test   plus the real TLS clients/servers, container runtimes and peer
#                             tools (tcpdump, tshark, bpftrace) the tests and benchmarks use
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=0
[ "${1:-}" = "--test" ] && want_tests=1

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (it installs packages)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
pkgs=(clang llvm make gcc libc6-dev libbpf1 libbpf-dev libpcap0.8 bpftool ca-certificates)
if [ "$want_tests" = 1 ]; then
  pkgs+=(curl openssl python3 gnutls-bin golang-go iproute2 jq
         tcpdump tshark bpftrace libpcap-dev libssl-dev
         docker.io containerd runc podman containernetworking-plugins busybox-static
         chromium fonts-dejavu-core  # the web UI's browser tests (playwright-core drives chromium; no browser download)
         qemu-system-x86 cpio kmod xz-utils) # npm test's kernels phase (qemu guests)
  # the rustls fixture (test/fixtures/stacks/rust): Debian 12's cargo/rustc (1.63) are older
  # than rustls 0.23 needs (1.71; its zeroize 1.85); cargo-web/rustc-web 1.96 (bookworm-security)
  # build it. A rustup toolchain under ~/.cargo is used when present.
  if ! command -v cargo >/dev/null 2>&1 && [ ! -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
    pkgs+=(cargo-web rustc-web)
  fi
  # the BoringSSL fixture (test/fixtures/stacks/boring): boring-sys builds BoringSSL with cmake
  # and a C++ compiler, and runs bindgen on clang's libclang
  pkgs+=(cmake g++)
  # the musl fixture (test/integration/stacks/distroless-musl): musl-gcc builds OpenSSL 3 from
  # Debian's source package and a client against it (dpkg-dev: apt-get source)
  pkgs+=(musl-tools dpkg-dev)
  # the NSS fixtures (test/integration/stacks/nss): a client on NSS's own API (libnss3-dev) and
  # one on libcurl's NSS flavour (libcurl3-nss)
  pkgs+=(libnss3-dev libcurl3-nss)
  # a JVM for test/integration/cli/doctor-pid: a JSSE client run from source (`java Client.java`
  # needs the jdk.compiler module, so the JDK's headless package, not only the JRE's)
  command -v java >/dev/null 2>&1 || pkgs+=(default-jdk-headless)
fi
# bpftool is its own package on Debian 12; on Ubuntu it comes with linux-tools.
if ! apt-cache show bpftool >/dev/null 2>&1; then
  apt-get update -q
fi
if ! apt-cache show bpftool >/dev/null 2>&1; then
  pkgs=("${pkgs[@]/bpftool/linux-tools-common}")
fi
# shellcheck source=scripts/apt-ensure.sh
. scripts/apt-ensure.sh
apt_ensure setup "${pkgs[@]}"

# Node.js ≥ 20.19 (it requires an ES module synchronously: the query engine): the
# distribution's package when it is new enough, otherwise the official build published on the
# npm registry.
node_ok() { node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' 2>/dev/null; }
if ! node_ok; then
  command -v npm >/dev/null 2>&1 || apt-get install -y -q --no-install-recommends nodejs npm
  if ! node_ok; then
    npm install -g --no-audit --no-fund node@20
    hash -r
  fi
fi
echo "setup: node $(node --version), $(clang --version | head -n1)"

if [ "$want_tests" = 1 ]; then
  # python's h2 (an HTTP/2 client for test/integration/http2), pinned, from PyPI
  if ! python3 -c 'import h2' 2>/dev/null; then
    python3 -m pip --version >/dev/null 2>&1 || apt-get install -y -q --no-install-recommends python3-pip
    python3 -m pip install -q 'h2==4.1.0' 2>/dev/null || python3 -m pip install -q --break-system-packages 'h2==4.1.0'
  fi
  # grpcio (python gRPC, test/integration/http2), pinned, from PyPI
  if ! python3 -c 'import grpc' 2>/dev/null; then
    python3 -m pip --version >/dev/null 2>&1 || apt-get install -y -q --no-install-recommends python3-pip
    python3 -m pip install -q 'grpcio==1.66.2' 2>/dev/null || python3 -m pip install -q --break-system-packages 'grpcio==1.66.2'
  fi
  # grpc-go and its dependencies, pinned, from the Go module proxy into the tests' module cache
  # (the test builds offline against it: GOPROXY=off)
  if [ ! -d /var/cache/tlscope-test/gomod/google.golang.org/grpc@v1.58.3 ]; then
    gomod=$(mktemp -d)
    printf 'module example.test/grpcfetch\n\ngo 1.19\n\nrequire google.golang.org/grpc v1.58.3\n' > "$gomod/go.mod"
    printf 'package main\n\nimport _ "google.golang.org/grpc"\nimport _ "google.golang.org/grpc/credentials"\n\nfunc main() {}\n' > "$gomod/main.go"
    (cd "$gomod" && GOMODCACHE=/var/cache/tlscope-test/gomod GOFLAGS=-mod=mod GOTOOLCHAIN=local go mod tidy)
    rm -rf "$gomod"
  fi
fi

npm ci --no-audit --no-fund
npm run build
if [ "$want_tests" = 1 ]; then
  # toolchains and fixture programs of the TLS stack tests, cached outside the repository
  node dist/test/integration/stacks/prepare.js
fi
echo "setup: done; try: ./tlscope doctor"
