#!/usr/bin/env bash
# Kernel matrix: boots Debian kernels under qemu (software emulation, no KVM needed) and runs
# tlscope inside each one. Run as root on Debian/Ubuntu with the repository built
# (`npm run build`):
#
#   scripts/kernel-matrix.sh                      the newest linux-image-6.1.*-amd64 from apt
#   scripts/kernel-matrix.sh 6.1 6.12             the newest amd64 image of each series
#   scripts/kernel-matrix.sh linux-image-6.12.111+deb12-amd64-unsigned   one package by name
#   scripts/kernel-matrix.sh --run FILE [--out DIR] 6.1 6.12
#       instead of the smoke tests, run the bash script FILE as root in each guest (after the
#       same set-up); FILE's host path is its path in the guest too (one under /tmp is copied
#       in); $KM_OUT is a writable directory whose contents come back to DIR/<kernel release>/;
#       the table shows FILE's exit status per kernel. `npm test`'s kernels phase runs
#       test/kernels/guest.sh this way.
#
# Per kernel: `apt-get download` the image (nothing is installed), extract it, build an
# initramfs of static busybox plus the modules for virtio 9p and kTLS, and boot it with
# qemu-system-x86_64 -accel tcg. The host's root and the repository are shared read-only over
# 9p, so the host's node, python3 and libbpf run inside; /init chroots into the host's root and
# runs: `tlscope doctor -o json`; `trace sni --host -o json` while a python3 ssl client asks a
# local TLS server for a made-up *.test name (the event must carry the name and the client's
# pid); `trace tls --host -o json` while a client sends a request over TLS (an event must carry
# the request and the client's pid). Results come back through a writable 9p share.
# Prints a table; exits 1 if a smoke test failed or a kernel could not be run.
# In the guest, `modprobe` (and the kernel's module autoloading) work from the kernel package's
# own modules (depmod'ed on the host): `modprobe tls` and the crypto modules kTLS loads (gcm,
# ghash, ctr …) load on demand.
# Environment: KM_SNI_TIMEOUT (s, default 300), KM_VM_TIMEOUT (s, default 2400), KM_KEEP=1
# keeps the temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd -P)

SNI_TIMEOUT=${KM_SNI_TIMEOUT:-300}
VM_TIMEOUT=${KM_VM_TIMEOUT:-2400}

say() { echo "kernel-matrix: $*" >&2; }
die() { say "$*"; exit 2; }

RUN_FILE= OUT_DIR=
args=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --run) [ "$#" -ge 2 ] || die "--run wants a file"; RUN_FILE=$2; shift 2 ;;
    --out) [ "$#" -ge 2 ] || die "--out wants a directory"; OUT_DIR=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
set -- ${args[@]+"${args[@]}"}
if [ -n "$RUN_FILE" ]; then
  [ -f "$RUN_FILE" ] || die "--run $RUN_FILE: no such file"
  RUN_FILE=$(realpath "$RUN_FILE")
fi
[ -z "$OUT_DIR" ] || { mkdir -p "$OUT_DIR" && OUT_DIR=$(realpath "$OUT_DIR"); } || die "--out $OUT_DIR: cannot create it"

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and its VMs load BPF as root)"
[ -f dist/src/cli/bin.js ] && [ -f dist/bpf/sni.bpf.o ] || die "build first: npm run build"
command -v apt-get >/dev/null || die "needs apt (Debian/Ubuntu)"

# 1. what it needs
export DEBIAN_FRONTEND=noninteractive
# shellcheck source=scripts/apt-ensure.sh
. scripts/apt-ensure.sh
apt_ensure kernel-matrix qemu-system-x86 busybox-static cpio openssl python3 xz-utils kmod
BUSYBOX=$(command -v busybox)
file_is_static() { case "$(LC_ALL=C ldd "$1" 2>&1 || true)" in *'not a dynamic'* | *'statically linked'*) return 0 ;; esac; return 1; }
file_is_static "$BUSYBOX" || die "$BUSYBOX is not statically linked (install busybox-static)"
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=$(command -v python3)
NODE=$(command -v node) || die "node not found"

# 2. which kernels
newest_of_series() { # 6.1 -> the newest linux-image-6.1.*-amd64 package apt knows
  local s=${1//./\\.} meta
  meta=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" { print $2 }' |
    grep -E "^linux-image-${s}\.[^ ]*-amd64$" | head -n1 || true)
  if [ -n "$meta" ] && has_candidate "$meta"; then echo "$meta"; return; fi
  if [ -n "$meta" ] && has_candidate "$meta-unsigned"; then echo "$meta-unsigned"; return; fi
  # the newest name apt can download: the signed image or, when the mirror has only that one
  # (seen: 6.12.118's signed package without a candidate), the -unsigned image
  local n
  for n in $(apt-cache pkgnames "linux-image-$1." 2>/dev/null |
    grep -E "^linux-image-${s}\.[0-9][^ ]*-amd64(-unsigned)?$" | grep -v -E -- '-(cloud|rt)-' |
    sed -E 's/-unsigned$//' | sort -uV -r); do
    if has_candidate "$n"; then echo "$n"; return; fi
    if has_candidate "$n-unsigned"; then echo "$n-unsigned"; return; fi
  done
}
has_candidate() { # (not `apt-cache | grep -q`: under pipefail grep's early exit fails the pipe)
  local p
  p=$(apt-cache policy "$1" 2>/dev/null || true)
  grep -q -E '^ +Candidate: [^(]' <<<"$p"
}
kernels=()
[ "$#" -gt 0 ] || set -- 6.1
for k in "$@"; do
  if [[ "$k" =~ ^[0-9]+\.[0-9]+$ ]]; then
    p=$(newest_of_series "$k")
    if [ -z "$p" ]; then apt-get update -q >/dev/null; p=$(newest_of_series "$k"); fi
    [ -n "$p" ] || die "apt has no linux-image-$k.*-amd64 package"
    kernels+=("$p")
  else
    kernels+=("$k")
  fi
done

# 4. temp dir and VM cleanup, also on Ctrl-C
TMP=$(mktemp -d "${TMPDIR:-/var/tmp}/tlscope-kernels.XXXXXX")
QPID=
cleanup() {
  if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
    say "stopping qemu (pid $QPID)"
    kill "$QPID" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$QPID" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$QPID" 2>/dev/null || true
  fi
  QPID=
  if [ "${KM_KEEP:-0}" = 1 ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A self-signed certificate for the local TLS server the clients talk to.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=matrix.test \
  -keyout "$TMP/key.pem" -out "$TMP/cert.pem" >/dev/null 2>&1 || die "openssl req failed"

# The TLS peer: `tls.py server PORTFILE` serves until killed; `tls.py client PORT NAME`
# connects, sends one request line, prints {"pid","tid","name"} and exits.
cat >"$TMP/tls.py" <<'EOF'
import json, os, socket, ssl, sys, threading, time
here = os.path.dirname(os.path.abspath(__file__))
if sys.argv[1] == 'server':
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(here, 'cert.pem'), os.path.join(here, 'key.pem'))
    srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(16)
    with open(sys.argv[2] + '.tmp', 'w') as f: f.write(str(srv.getsockname()[1]))
    os.rename(sys.argv[2] + '.tmp', sys.argv[2])
    def serve(c):
        try:
            s = ctx.wrap_socket(c, server_side=True); s.settimeout(60)
            s.recv(4096)
            s.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok')
            s.close()
        except Exception as e:
            print('server:', e, file=sys.stderr)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
else:
    port, name = int(sys.argv[2]), sys.argv[3]
    time.sleep(float(sys.argv[4]) if len(sys.argv) > 4 else 0)
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(('127.0.0.1', port), timeout=60) as c:
        with ctx.wrap_socket(c, server_hostname=name) as s:
            s.sendall(b'GET /kernel-matrix HTTP/1.1\r\nHost: ' + name.encode() + b'\r\n\r\n')
            reply = s.recv(4096)
    print(json.dumps({'pid': os.getpid(), 'tid': threading.get_native_id(), 'name': name,
                      'reply': reply.decode(errors='replace').split('\r\n')[0]}))
EOF

# What runs inside the VM, chrooted into the host's root; $O is the writable share.
cat >"$TMP/vm.sh" <<'EOF'
#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp LC_ALL=C
O=/tmp/out
. $O/env
exec >$O/vm.log 2>&1
set -x
uname -r >$O/uname
ip link set lo up
# modprobe from the guest kernel's own modules (the chroot's /lib/modules is the host's)
mkdir -p /tmp/kmbin
printf '#!/bin/sh\nexec /sbin/modprobe -d /tmp/kmods "$@"\n' >/tmp/kmbin/modprobe
chmod +x /tmp/kmbin/modprobe
export PATH=/tmp/kmbin:$PATH
cd /tmp/repo
if [ -n "$RUN_FILE" ]; then
  F=$RUN_FILE
  case "$F" in /tmp/*) F=$O/run-file ;; esac
  export KM_OUT=$O/km-out KM_REPO=/tmp/repo KM_NODE=$NODE KM_PYTHON=$PYTHON KM_KERNEL=$(uname -r)
  mkdir -p $KM_OUT
  s0=$(date +%s)
  bash "$F" >$O/run.log 2>&1; echo $? >$O/run.rc
  dmesg >$O/dmesg.log 2>&1 || true
  echo "run file took $(( $(date +%s) - s0 )) s"
  echo done >$O/done
  exit 0
fi
T="$NODE dist/src/cli/bin.js"
wait_for() { i=0; while ! grep -q "$1" "$2" 2>/dev/null && [ $i -lt $3 ]; do sleep 1; i=$((i+1)); done; echo "waited $i s for $1"; }
s0=$(date +%s)
timeout 600 $T doctor -o json >$O/doctor.json 2>$O/doctor.err; echo $? >$O/doctor.rc
echo "doctor took $(( $(date +%s) - s0 )) s"

$PYTHON $O/tls.py server $O/port 2>$O/server.err &
SRV=$!
wait_for . $O/port 120
PORT=$(cat $O/port)

# trace sni
s0=$(date +%s)
timeout $((SNI_TIMEOUT + 120)) $T trace sni --host -v -o json --timeout $SNI_TIMEOUT >$O/sni.json 2>$O/sni.err &
TR=$!
wait_for 'sending processes' $O/sni.err $SNI_TIMEOUT
echo "sni tracer up after $(( $(date +%s) - s0 )) s"
timeout 120 $PYTHON $O/tls.py client $PORT sni-smoke.matrix.test >$O/sni-client.json 2>$O/sni-client.err
echo "sni client rc=$?"
sleep 5
kill -INT $TR; wait $TR; echo $? >$O/sni.rc

# trace tls: the client starts after the tracer and waits a moment before it connects, so its
# libssl is mapped and probed first
s0=$(date +%s)
timeout $((SNI_TIMEOUT + 120)) $T trace tls --host -v -o json --timeout $SNI_TIMEOUT >$O/tls.json 2>$O/tls.err &
TR=$!
wait_for 'tracing ' $O/tls.err $SNI_TIMEOUT
echo "tls tracer up after $(( $(date +%s) - s0 )) s"
timeout 180 $PYTHON $O/tls.py client $PORT tls-smoke.matrix.test 15 >$O/tls-client.json 2>$O/tls-client.err
echo "tls client rc=$?"
sleep 5
kill -INT $TR; wait $TR; echo $? >$O/tls.rc
kill $SRV
echo done >$O/done
EOF

# Resolve a module and what it depends on, in load order, from the extracted tree.
declare -A MOD_SEEN
mod_path() { # name -> path of NAME.ko[.xz|.zst] under the tree, '' when built in
  local n
  n=$(printf '%s' "$1" | sed 's/[-_]/[-_]/g')
  find "$MODDIR" -regextype posix-extended -regex ".*/${n}\.ko(\.xz|\.zst|\.gz)?" | head -n1
}
mod_add() { # name -> appends to MOD_ORDER after its dependencies
  local name=$1 path dep
  [ -n "${MOD_SEEN[$name]:-}" ] && return 0
  MOD_SEEN[$name]=1
  path=$(mod_path "$name")
  [ -n "$path" ] || return 0 # built in (or absent: then the mount below says so)
  for dep in $(modinfo -F depends "$path" 2>/dev/null | tr ',' ' '); do mod_add "$dep"; done
  MOD_ORDER+=("$path")
}

run_kernel() { # package -> fills R_* for the table
  local pkg=$1 k=$TMP/k kver vmlinuz start=$SECONDS
  R_KERNEL=$pkg R_DOCTOR='-' R_HOOK='-' R_SNI='FAIL' R_TLS='FAIL' R_RUN='FAIL' R_WHY=() R_TIME=0
  rm -rf "$k"; mkdir -p "$k/deb" "$k/root" "$k/initrd/bin" "$k/initrd/mods" "$k/out"
  chmod 0777 "$k/deb"
  say "$pkg: downloading"
  if ! (cd "$k/deb" && apt-get download -q "$pkg" >"$k/apt.log" 2>&1); then
    R_WHY+=("apt-get download $pkg failed: $(tail -n1 "$k/apt.log")"); return
  fi
  dpkg-deb -x "$k"/deb/*.deb "$k/root"
  vmlinuz=$(ls "$k"/root/boot/vmlinuz-* 2>/dev/null | head -n1)
  [ -n "$vmlinuz" ] || { R_WHY+=("no /boot/vmlinuz-* in $pkg"); return; }
  kver=${vmlinuz##*/vmlinuz-}
  MODDIR=$k/root/lib/modules/$kver
  [ -d "$MODDIR" ] || MODDIR=$k/root/usr/lib/modules/$kver
  R_KERNEL=$kver

  # initramfs: static busybox, the modules for virtio 9p (and tls for kTLS), /init
  cp "$BUSYBOX" "$k/initrd/bin/busybox"
  MOD_SEEN=(); MOD_ORDER=()
  for m in virtio_pci 9pnet_virtio 9p; do mod_add "$m"; done
  # the rest (tls and the crypto it asks for) load on demand from the package's modules:
  # depmod them here; the guest's modprobe reads them over 9p
  local modbase=$k/root
  [ -d "$k/root/lib/modules" ] || ln -s usr/lib "$k/root/lib" # a merged-/usr package
  depmod -b "$modbase" "$kver" >"$k/depmod.log" 2>&1 || { R_WHY+=("depmod failed: $(tail -n1 "$k/depmod.log")"); return; }
  local i=0 f
  : >"$k/initrd/mods/order"
  for f in "${MOD_ORDER[@]}"; do
    i=$((i + 1))
    case "$f" in
      *.xz) xz -dc "$f" >"$k/initrd/mods/$i.ko" ;;
      *.zst) zstd -qdc "$f" >"$k/initrd/mods/$i.ko" ;;
      *.gz) gzip -dc "$f" >"$k/initrd/mods/$i.ko" ;;
      *) cp "$f" "$k/initrd/mods/$i.ko" ;;
    esac
    echo "$i.ko ${f##*/}" >>"$k/initrd/mods/order"
  done
  cat >"$k/initrd/init" <<'EOF'
#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys /dev /host
$B mount -t proc proc /proc; $B mount -t sysfs sys /sys; $B mount -t devtmpfs dev /dev
while read f name; do $B insmod /mods/$f || echo "init: insmod $name failed"; done </mods/order
m9p() { $B mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,$1 $2 $3 2>/dev/null || $B mount -t 9p -o trans=virtio,version=9p2000.L,$1 $2 $3 || echo "init: cannot mount the 9p share $2"; }
m9p ro host0 /host
H=/host
$B mount -t proc proc $H/proc; $B mount -t sysfs sys $H/sys; $B mount -t devtmpfs dev $H/dev
$B mount -t tmpfs tmp $H/tmp; $B mount -t tmpfs run $H/run
$B mount -t tracefs tracefs $H/sys/kernel/tracing; $B mount -t debugfs debugfs $H/sys/kernel/debug
$B mount -t bpf bpf $H/sys/fs/bpf; $B mount -t cgroup2 cgroup2 $H/sys/fs/cgroup
$B mkdir -p $H/tmp/out $H/tmp/repo $H/tmp/kmods
m9p rw out $H/tmp/out
m9p ro repo $H/tmp/repo
m9p ro kmods $H/tmp/kmods
# the kernel's module requests (the first kTLS socket asks for tls, gcm, ctr …) run this
# helper in the initramfs root: it runs the chroot's modprobe on the package's modules
$B mkdir -p /sbin
printf '#!/bin/busybox sh\nexec /bin/busybox chroot /host /sbin/modprobe -d /tmp/kmods "$@"\n' >/sbin/kmprobe
$B chmod +x /sbin/kmprobe
echo /sbin/kmprobe >/proc/sys/kernel/modprobe
$B chroot $H /bin/sh /tmp/out/vm.sh
echo "init: vm.sh exit $?"
$B sync
$B poweroff -f
EOF
  chmod +x "$k/initrd/init"
  (cd "$k/initrd" && find . | cpio -o -H newc --quiet | gzip -1 >"$k/initrd.gz")

  local boot=1
  while :; do
  rm -rf "$k/out"; mkdir -p "$k/out"
  cp "$TMP/tls.py" "$TMP/vm.sh" "$TMP/cert.pem" "$TMP/key.pem" "$k/out/"
  [ -z "$RUN_FILE" ] || cp "$RUN_FILE" "$k/out/run-file"
  printf 'NODE=%s\nPYTHON=%s\nSNI_TIMEOUT=%s\nRUN_FILE=%s\n' "$NODE" "$PYTHON" "$SNI_TIMEOUT" "$RUN_FILE" >"$k/out/env"

  say "$kver: booting under qemu (TCG; several minutes)"
  qemu-system-x86_64 -accel tcg -cpu max -m 3G -smp 2 -nographic -no-reboot -nic none \
    -kernel "$vmlinuz" -initrd "$k/initrd.gz" -append "console=ttyS0 panic=-1 quiet" \
    -virtfs local,path=/,mount_tag=host0,security_model=passthrough,readonly=on,multidevs=remap \
    -virtfs local,path="$REPO",mount_tag=repo,security_model=passthrough,readonly=on,multidevs=remap \
    -virtfs local,path="$k/out",mount_tag=out,security_model=passthrough \
    -virtfs local,path="$modbase",mount_tag=kmods,security_model=passthrough,readonly=on,multidevs=remap \
    </dev/null >"$k/console.log" 2>&1 &
  QPID=$!
  local waited=0
  while kill -0 "$QPID" 2>/dev/null; do
    if [ "$waited" -ge "$VM_TIMEOUT" ]; then
      R_WHY+=("the VM did not finish within ${VM_TIMEOUT}s; killed")
      kill "$QPID" 2>/dev/null || true
      break
    fi
    sleep 2; waited=$((waited + 2))
  done
  wait "$QPID" 2>/dev/null || true
  QPID=
  # A guest kernel that panics before its script ends (6.12.118 under TCG did in CI, at
  # 13-14 s of uptime with "Fatal exception in interrupt"; 12 doctor runs in one guest and the
  # whole kTLS file passed on the next boots) is booted once more (KM_PANIC_BOOTS, default 2
  # boots in all); the panic's oops is kept in the notes either way, never dropped.
  if [ ! -f "$k/out/run.rc" ] && [ ! -f "$k/out/done" ] && grep -q 'Kernel panic' "$k/console.log" 2>/dev/null \
    && [ "$boot" -lt "${KM_PANIC_BOOTS:-2}" ]; then
    R_WHY+=("boot $boot: the guest kernel panicked before the script ended; its oops:")
    oops_lines "$k/console.log"
    cp "$k/console.log" "$TMP/console-$kver-boot$boot.log"
    say "$kver: the guest kernel panicked (boot $boot); booting once more"
    boot=$((boot + 1))
    continue
  fi
  [ "$boot" -eq 1 ] || R_WHY+=("boot $boot: the run below is this boot's")
  break
  done
  R_TIME=$((SECONDS - start))
  if [ -n "$RUN_FILE" ]; then
    evaluate_run "$k/out" "$k/console.log"
  else
    evaluate "$k/out" "$k/console.log"
  fi
  if [ "${KM_KEEP:-0}" = 1 ]; then mv "$k" "$TMP/$kver"; fi
}

# The oops of a panicked guest: from its first BUG/Oops/RIP line, what names the fault and
# the call trace (the registers and the last console lines alone did not say where).
oops_lines() {
  local l
  while IFS= read -r l; do R_WHY+=("  oops| ${l:0:200}"); done < <(tr -d '\r' <"$1" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' \
    | sed -n '/Kernel panic\|BUG:\|Oops:\|general protection\|invalid opcode\|RIP: \|Call Trace/,$p' \
    | grep -vE '^\[ *[0-9.]+\] (RAX|RDX|RBP|RSP|R10|R13|FS|CS|CR2|PKRU|Code): |^\s*$' | grep -vE '^\[ *[0-9.]+\]  \? ' | head -n 40)
}

# Reads the share and fills R_DOCTOR, R_HOOK, R_SNI, R_TLS, R_WHY.
evaluate() {
  local o=$1 console=$2 line
  if [ ! -f "$o/uname" ]; then
    R_WHY+=("the VM never ran the test script; console: $(tr -d '\r' <"$console" | grep -v '^\s*$' | tail -n3 | tr '\n' ' ')")
    return
  fi
  R_KERNEL=$(cat "$o/uname")
  [ -f "$o/done" ] || R_WHY+=("the test script did not finish (see vm.log)")
  while IFS= read -r line; do
    case "$line" in
      DOCTOR\ *) R_DOCTOR=${line#DOCTOR } ;;
      HOOK\ *) R_HOOK=${line#HOOK } ;;
      SNI\ *) R_SNI=${line#SNI } ;;
      TLS\ *) R_TLS=${line#TLS } ;;
      WHY\ *) R_WHY+=("${line#WHY }") ;;
    esac
  done < <("$NODE" - "$o" <<'EOF'
const fs = require('fs'), path = require('path');
const dir = process.argv[2];
const read = (f) => { try { return fs.readFileSync(path.join(dir, f), 'utf8'); } catch { return ''; } };
const lines = (f) => read(f).split('\n').filter(Boolean).flatMap((l) => { try { return [JSON.parse(l)]; } catch { return []; } });
const out = (k, v) => console.log(`${k} ${v}`);
// doctor
let doctor;
try { doctor = JSON.parse(read('doctor.json')); } catch { doctor = undefined; }
if (!doctor) {
  out('DOCTOR', 'no output');
  out('WHY', `doctor: rc ${read('doctor.rc').trim()} ${read('doctor.err').trim().split('\n').pop() ?? ''}`);
} else {
  const short = { 'trace sni': 'sni', 'trace tls: OpenSSL, GnuTLS, node': 'tls', 'trace tls: Go crypto/tls': 'go', 'trace tls: kTLS': 'ktls', capture: 'capture' };
  out('DOCTOR', doctor.gadgets.map((g) => `${short[g.gadget] ?? g.gadget}:${g.status === 'ready' ? 'ok' : g.status === 'unavailable' ? 'no' : g.status}`).join(' '));
  for (const g of doctor.gadgets) if (g.status !== 'ready') out('WHY', `doctor: ${g.gadget}: ${g.status}: ${g.detail}`);
  const missing = doctor.features.filter((f) => !f.supported).map((f) => f.feature);
  out('WHY', `doctor: kernel features missing: ${missing.length ? missing.join(', ') : 'none'}`);
}
// trace sni
const hookLine = read('sni.err').split('\n').find((l) => l.includes('sending processes from')) ?? '';
out('HOOK', hookLine.includes('tcp_sendmsg_locked') ? 'tcp_sendmsg_locked' : hookLine.includes('system call') ? 'syscalls' : '-');
const check = (what, client, events, match) => {
  const c = lines(client)[0];
  const errTail = read(what + '.err').trim().split('\n').slice(-2).join(' | ');
  if (!c) return ['FAIL', `the client did not complete: ${read(client.replace('.json', '.err')).trim().split('\n').pop() ?? ''}`];
  if (!read(what + '.err').includes(what === 'sni' ? 'sending processes' : 'tracing ')) return ['FAIL', `the tracer never started: ${errTail}`];
  const evs = lines(events);
  const mine = evs.filter((e) => match(e, c));
  if (mine.length === 0) return ['FAIL', `no event for ${c.name} (${evs.length} events): ${errTail}`];
  const withPid = mine.filter((e) => e.proc?.pid === c.pid);
  if (withPid.length === 0) return ['FAIL', `${c.name} seen but with pid ${mine.map((e) => e.proc?.pid).join(',')} instead of ${c.pid}`];
  return ['pass', `${withPid.length} event(s) for ${c.name} with pid ${c.pid}`];
};
const [sni, sniWhy] = check('sni', 'sni-client.json', 'sni.json', (e, c) => e.name === c.name);
out('SNI', sni); out('WHY', `trace sni: ${sni}: ${sniWhy}`);
const [tls, tlsWhy] = check('tls', 'tls-client.json', 'tls.json', (e) => JSON.stringify(e).includes('GET /kernel-matrix'));
out('TLS', tls); out('WHY', `trace tls: ${tls}: ${tlsWhy}`);
const tuples = read('tls.err').match(/sockets from ([^\n;]*)/);
if (tuples) out('WHY', `trace tls: sockets from ${tuples[1]}`);
EOF
  )
}

# --run: FILE's exit status; its $KM_OUT goes to OUT_DIR/<release>/.
evaluate_run() {
  local o=$1 console=$2
  R_RUN=FAIL
  if [ ! -f "$o/uname" ]; then
    R_WHY+=("the VM never ran the test script; console: $(tr -d '\r' <"$console" | grep -v '^\s*$' | tail -n3 | tr '\n' ' ')")
    return
  fi
  R_KERNEL=$(cat "$o/uname")
  if [ ! -f "$o/run.rc" ]; then
    R_WHY+=("$RUN_FILE did not finish (see vm.log); its last lines:")
    # what it was doing when it stopped: the last lines of its output, so a CI log says which test hung
    local l
    while IFS= read -r l; do R_WHY+=("  | ${l:0:200}"); done < <(tr -d '\r' <"$o/run.log" 2>/dev/null | grep -v '^\s*$' | tail -n 12)
    # and the guest kernel's last words (a panic, the OOM killer, init's own lines): one CI run's
    # 6.12 guest powered off mid-test with nothing in run.log to say why
    [ ! -s "$o/dmesg.log" ] || while IFS= read -r l; do R_WHY+=("  dmesg| ${l:0:200}"); done < <(grep -iE 'oom|killed|panic|segfault|BUG|call trace' "$o/dmesg.log" | tail -n 8)
    if grep -q 'Kernel panic' "$console" 2>/dev/null; then R_WHY+=("the guest kernel panicked; its oops:"); oops_lines "$console"; fi
    R_WHY+=("the guest's console, last lines:")
    while IFS= read -r l; do R_WHY+=("  console| ${l:0:200}"); done < <(tr -d '\r' <"$console" 2>/dev/null | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' | grep -v '^\s*$' | tail -n 8)
  else
    R_RUN="exit $(cat "$o/run.rc")"
    R_WHY+=("$RUN_FILE: $(grep -v '^\s*$' "$o/run.log" | tail -n1)")
  fi
  if [ -n "$OUT_DIR" ]; then
    rm -rf "${OUT_DIR:?}/$R_KERNEL"; mkdir -p "$OUT_DIR/$R_KERNEL"
    if [ -d "$o/km-out" ]; then cp -a "$o/km-out/." "$OUT_DIR/$R_KERNEL/"; fi
    cp "$o/run.log" "$OUT_DIR/$R_KERNEL/run.log" 2>/dev/null || true
    cp "$console" "$OUT_DIR/$R_KERNEL/console.log" 2>/dev/null || true
  fi
}

rows=()
notes=()
failed=0
if [ -n "$RUN_FILE" ]; then
  for pkg in "${kernels[@]}"; do
    run_kernel "$pkg"
    [ "$R_RUN" = "exit 0" ] || failed=1
    rows+=("$(printf '%-22s %-6s %s' "$R_KERNEL" "${R_TIME}s" "$R_RUN")")
    for w in "${R_WHY[@]}"; do notes+=("$R_KERNEL: $w"); done
  done
  echo
  printf '%-22s %-6s %s\n' KERNEL TIME "RUN ${RUN_FILE##*/}"
  printf '%s\n' "${rows[@]}"
  echo
  printf '%s\n' "${notes[@]}"
  exit "$failed"
fi
for pkg in "${kernels[@]}"; do
  run_kernel "$pkg"
  [ "$R_SNI" = pass ] && [ "$R_TLS" = pass ] || failed=1
  rows+=("$(printf '%-22s %-6s %-19s %-5s %-5s %s' "$R_KERNEL" "${R_TIME}s" "$R_HOOK" "$R_SNI" "$R_TLS" "$R_DOCTOR")")
  for w in "${R_WHY[@]}"; do notes+=("$R_KERNEL: $w"); done
done

echo
printf '%-22s %-6s %-19s %-5s %-5s %s\n' KERNEL TIME SNI-OWNER-HOOK SNI TLS 'DOCTOR (gadgets)'
printf '%s\n' "${rows[@]}"
echo
printf '%s\n' "${notes[@]}"
exit "$failed"
