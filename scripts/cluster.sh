#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A real Kubernetes test cluster on this host, for the cluster tests and for trying
# `kubectl tlscope` by hand: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
# two (TLSCOPE_NODES) kubelet nodes, each with its own containerd (CRI), root directories and
# cgroup parent, pods wired by the bridge and host-local CNI plugins (one subnet per node,
# routes between them).
#
# usage: scripts/cluster.sh build | built | up | kubeconfig | load-image IMAGE|TARBALL... | status | down
#        scripts/cluster.sh user NAME [GROUP] (a kubeconfig for a user without roles) | kubectl ARGS...
#   build       builds the binaries once into the cache (TLSCOPE_CLUSTER_CACHE,
#               /var/cache/tlscope-cluster): Kubernetes from the k8s.io/kubernetes Go module,
#               its staging modules pinned to their published k8s.io/* versions of the same
#               release; etcd from go.etcd.io/etcd/server/v3. Needs only the Go module proxy.
#   built       exits 0 when the binaries are cached (up would not build), 1 otherwise
#   up          builds if needed, starts everything, waits until every node is Ready, prints
#               the kubeconfig's path
#   kubeconfig  prints the kubeconfig's path (admin)
#   load-image  imports local docker images into every node's containerd
#   down        stops every process it started and removes its state, links, routes, mounts
# Must run as root. State: TLSCOPE_CLUSTER_STATE (/var/lib/tlscope-cluster).
set -euo pipefail

K8S_VERSION=${TLSCOPE_K8S_VERSION:-v1.34.4}
ETCD_VERSION=${TLSCOPE_ETCD_VERSION:-v3.6.16}
CACHE=${TLSCOPE_CLUSTER_CACHE:-/var/cache/tlscope-cluster}
STATE=${TLSCOPE_CLUSTER_STATE:-/var/lib/tlscope-cluster}
NODES=${TLSCOPE_NODES:-2}
K8S_BIN=$CACHE/kubernetes-$K8S_VERSION/bin
ETCD_BIN=$CACHE/etcd-$ETCD_VERSION/bin
K8S_COMPONENTS="kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl"

say() { echo "cluster: $*" >&2; }
die() { say "error: $*"; exit 1; }

# ---------------------------------------------------------------- build

build_kubernetes() {
  local missing=0 c
  for c in $K8S_COMPONENTS; do [ -x "$K8S_BIN/$c" ] || missing=1; done
  [ $missing = 0 ] && return 0
  local src=$CACHE/src/kubernetes-$K8S_VERSION
  mkdir -p "$src" "$K8S_BIN"
  say "building Kubernetes $K8S_VERSION ($K8S_COMPONENTS) from the Go module proxy: about 25 min on 2 cores the first time"
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local patch=${K8S_VERSION##*.}
  local staging_version=v0.$minor.$patch
  (
    cd "$src"
    export GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
    # k8s.io/kubernetes's go.mod points its staging modules at ./staging: pin each to the
    # published module of the same release instead
    local modfile
    modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    [ -f "$modfile" ] || die "the Go module proxy did not serve k8s.io/kubernetes@$K8S_VERSION"
    {
      echo "module tlscope.test/cluster"
      echo
      echo "go $(sed -n 's/^go //p' "$modfile")"
      echo
      echo "require k8s.io/kubernetes $K8S_VERSION"
      echo
      echo "replace ("
      sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\t\1 => \1 '"$staging_version"'#p' "$modfile"
      echo ")"
    } > go.mod
    {
      echo "//go:build tools"
      echo
      echo "package tools"
      echo
      echo "import ("
      for c in $K8S_COMPONENTS; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done
      echo ")"
    } > tools.go
    go mod tidy
    local v=k8s.io/component-base/version cv=k8s.io/client-go/pkg/version
    local ld="-s -w"
    for p in $v $cv; do
      ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
    done
    local pkgs=""
    for c in $K8S_COMPONENTS; do pkgs="$pkgs k8s.io/kubernetes/cmd/$c"; done
    # shellcheck disable=SC2086
    CGO_ENABLED=0 go build -trimpath -tags providerless -ldflags "$ld" -o "$K8S_BIN/" $pkgs
  )
  for c in $K8S_COMPONENTS; do [ -x "$K8S_BIN/$c" ] || die "the build left no $c"; done
}

build_etcd() {
  [ -x "$ETCD_BIN/etcd" ] && return 0
  local src=$CACHE/src/etcd-$ETCD_VERSION
  mkdir -p "$src" "$ETCD_BIN"
  say "building etcd $ETCD_VERSION from go.etcd.io/etcd/server/v3"
  (
    cd "$src"
    export GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
    cat > go.mod <<MOD
module tlscope.test/etcd

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
    cat > main.go <<'GO'
// etcd's own main is a one-line call into its server module's etcdmain
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    go mod tidy
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$ETCD_BIN/etcd" .
  )
}

cmd_build() {
  command -v go >/dev/null || die "go is not installed (scripts/setup.sh --test installs it)"
  # Kubernetes $K8S_VERSION wants Go >= 1.24; a Go >= 1.21 fetches that toolchain itself
  local gv; gv=$(go env GOVERSION 2>/dev/null || echo go1.0); gv=${gv#go}
  local gmaj=${gv%%.*} gmin; gmin=${gv#*.}; gmin=${gmin%%.*}
  if [ "$gmaj" = 1 ] && [ "$gmin" -lt 24 ]; then
    [ "$gmin" -ge 21 ] || die "go $gv is too old to build Kubernetes (>= 1.24; >= 1.21 fetches it through GOTOOLCHAIN)"
    export GOTOOLCHAIN=go1.25.14
  fi
  local t0=$SECONDS
  build_etcd
  build_kubernetes
  say "binaries ready in $CACHE ($((SECONDS - t0)) s)"
}


# ---------------------------------------------------------------- layout

DATA=$STATE
PKI=$DATA/pki
LOGS=$DATA/logs
PIDS=$DATA/pids
KUBECONFIG_ADMIN=$DATA/admin.kubeconfig
NODE_NET=${TLSCOPE_CLUSTER_NET:-10.89}      # $NODE_NET.0.N: node N's address, $NODE_NET.N.0/24: its pods
API_IP=$NODE_NET.0.100
API_PORT=${TLSCOPE_API_PORT:-16443}
ETCD_PORT=${TLSCOPE_ETCD_PORT:-23790}
LINK=tlscope-k8s0                             # a bridge without ports that holds the node and API addresses
FORWARD_RULE="-s $NODE_NET.0.0/16 -d $NODE_NET.0.0/16 -m comment --comment tlscope-cluster -j ACCEPT"
CGROUP_CONTROLLERS="cpu cpuacct cpuset memory pids blkio devices freezer hugetlb systemd"
node_name() { echo "tlscope-n$1"; }
node_dir() { echo "$DATA/n$1"; }
node_sock() { echo "$(node_dir "$1")/run/containerd.sock"; }
kubectl_admin() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# ---------------------------------------------------------------- pki

cert() { # name CN O [SAN]
  local name=$1 cn=$2 o=$3 san=${4:-}
  [ -f "$PKI/$name.crt" ] && return 0
  local ext=$PKI/$name.ext subj="/CN=$cn"
  [ -n "$o" ] && subj="/O=$o$subj"
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"; else echo "extendedKeyUsage=clientAuth"; fi
  } > "$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 30 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

kubeconfig_for() { # file user-cert-name
  local file=$1 name=$2
  cat > "$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: tlscope
  cluster:
    server: https://$API_IP:$API_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $name
  user:
    client-certificate: $PKI/$name.crt
    client-key: $PKI/$name.key
contexts:
- name: tlscope
  context: {cluster: tlscope, user: $name}
current-context: tlscope
KC
}

make_pki() {
  mkdir -p "$PKI"
  if [ ! -f "$PKI/ca.crt" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -days 30 -subj "/CN=tlscope-cluster-ca" 2>/dev/null
  fi
  cert apiserver kube-apiserver "" "IP:$API_IP,IP:127.0.0.1,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost"
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  cert admin tlscope-admin system:masters
  cert controller-manager system:kube-controller-manager ""
  cert scheduler system:kube-scheduler ""
  [ -f "$PKI/sa.key" ] || { openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null; openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null; }
  local n
  for n in $(seq 1 "$NODES"); do
    cert "node$n" "system:node:$(node_name "$n")" system:nodes
    cert "node$n-serving" "$(node_name "$n")" "" "IP:$NODE_NET.0.$n,DNS:$(node_name "$n")"
  done
  kubeconfig_for "$KUBECONFIG_ADMIN" admin
  kubeconfig_for "$DATA/controller-manager.kubeconfig" controller-manager
  kubeconfig_for "$DATA/scheduler.kubeconfig" scheduler
}

# ---------------------------------------------------------------- processes

start_bg() { # name command... (stdout/stderr to logs/name.log, pid to pids/name)
  local name=$1; shift
  "$@" > "$LOGS/$name.log" 2>&1 &
  echo $! > "$PIDS/$name"
}

alive() { [ -f "$PIDS/$1" ] && kill -0 "$(cat "$PIDS/$1")" 2>/dev/null; }

wait_for() { # seconds what command...
  local t=$1 what=$2; shift 2
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || die "$what not ready after $t s (logs in $LOGS)"
    sleep 0.5
  done
}

# ---------------------------------------------------------------- pause image

# A docker-archive tarball (manifest.json + config + one layer) that ctr imports: the pod
# sandbox image, a static Go program that waits for a signal and reaps children.
build_pause() {
  local out=$CACHE/pause.tar
  [ -f "$out" ] && return 0
  local src=$CACHE/src/pause work
  mkdir -p "$src"
  cat > "$src/go.mod" <<'MOD'
module tlscope.test/pause

go 1.22
MOD
  cat > "$src/main.go" <<'GO'
// The pod sandbox's process: holds the pod's namespaces until told to stop, reaps orphans.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var st syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &st, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
GO
  work=$(mktemp -d)
  mkdir -p "$work/rootfs"
  (cd "$src" && CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local} go build -trimpath -ldflags "-s -w" -o "$work/rootfs/pause" .)
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/rootfs" -cf "$work/layer.tar" pause
  local diff; diff=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/pause"],"User":"65535:65535"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$diff" > "$work/config.json"
  local cfg; cfg=$(sha256sum "$work/config.json" | cut -d' ' -f1)
  mv "$work/config.json" "$work/$cfg.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["layer.tar"]}]' "$cfg" "$PAUSE_IMAGE" > "$work/manifest.json"
  tar -C "$work" -cf "$out.tmp" manifest.json "$cfg.json" layer.tar
  mv "$out.tmp" "$out"
  rm -rf "$work"
}
PAUSE_IMAGE=tlscope.test/pause:1

# ---------------------------------------------------------------- control plane

start_control_plane() {
  mkdir -p "$DATA/etcd"
  alive etcd || start_bg etcd nice -n 5 "$ETCD_BIN/etcd" --name tlscope --data-dir "$DATA/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" \
    --initial-cluster "tlscope=http://127.0.0.1:$((ETCD_PORT + 10))" --listen-metrics-urls "" --unsafe-no-fsync
  alive kube-apiserver || start_bg kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" --bind-address "$API_IP" --advertise-address "$API_IP" --secure-port "$API_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" --client-ca-file "$PKI/ca.crt" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc --service-cluster-ip-range 10.96.0.0/16 \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction --allow-privileged=true \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP --profiling=false --endpoint-reconciler-type none
  wait_for 120 "kube-apiserver" kubectl_admin get --raw /readyz
  alive kube-controller-manager || start_bg kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$DATA/controller-manager.kubeconfig" --authentication-kubeconfig "$DATA/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$DATA/controller-manager.kubeconfig" --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" --use-service-account-credentials=true \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" --profiling=false \
    --controllers '*,-cloud-node-lifecycle-controller,-service-lb-controller,-node-route-controller'
  alive kube-scheduler || start_bg kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$DATA/scheduler.kubeconfig" --authentication-kubeconfig "$DATA/scheduler.kubeconfig" \
    --authorization-kubeconfig "$DATA/scheduler.kubeconfig" --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 --profiling=false
}

# ---------------------------------------------------------------- nodes

# A node is a mount namespace (shared pid and network namespaces with the host) in which the
# node's containerd and kubelet see their own /run/containerd, /var/lib/containerd,
# /var/lib/kubelet, /var/lib/cni, /etc/cni/net.d and /var/log/pods: so one DaemonSet (hostPath
# /run/containerd/containerd.sock) reaches each node's own runtime, as on a real cluster.
NODE_BINDS="/run/containerd:run /var/lib/containerd:containerd /var/lib/kubelet:kubelet /var/lib/cni:cni /etc/cni/net.d:net.d /var/log/pods:pods /var/log/containers:containers"

write_node_config() {
  local n=$1 d; d=$(node_dir "$n")
  mkdir -p "$d"/{run,containerd,kubelet,cni,net.d,pods,containers}
  cat > "$d/containerd.toml" <<TOML
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[ttrpc]
  address = "/run/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # these VMs give root no CAP_SYS_RESOURCE: a sandbox's oom_score_adj of -998 (kubelet's) would
  # make runc init fail ("can't get final child's PID from pipe"); keep it >= containerd's own
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
TOML
  cat > "$d/net.d/10-tlscope.conflist" <<CNI
{
  "cniVersion": "0.4.0",
  "name": "tlscope-n$n",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "tlscope-br$n",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$NODE_NET.$n.0/24", "gateway": "$NODE_NET.$n.1" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    }
  ]
}
CNI
  cat > "$d/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_NET.0.$n
port: $((10250 + 10 * (n - 1)))
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $((10248 + 10 * (n - 1)))
tlsCertFile: $PKI/node$n-serving.crt
tlsPrivateKeyFile: $PKI/node$n-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
cgroupRoot: /tlscope-n$n
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
rotateCertificates: false
serializeImagePulls: false
maxPods: 30
resolvConf: /etc/resolv.conf
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
YAML
  kubeconfig_for "$d/kubelet.kubeconfig" "node$n"
}

make_cgroups() {
  local n=$1 c
  for c in $CGROUP_CONTROLLERS; do
    [ -d "/sys/fs/cgroup/$c" ] || continue
    mkdir -p "/sys/fs/cgroup/$c/tlscope-n$n"
  done
  if [ -d /sys/fs/cgroup/cpuset/tlscope-n$n ]; then
    cat /sys/fs/cgroup/cpuset/cpuset.cpus > "/sys/fs/cgroup/cpuset/tlscope-n$n/cpuset.cpus"
    cat /sys/fs/cgroup/cpuset/cpuset.mems > "/sys/fs/cgroup/cpuset/tlscope-n$n/cpuset.mems"
  fi
}

start_node() {
  local n=$1 d b; d=$(node_dir "$n")
  write_node_config "$n"
  make_cgroups "$n"
  if ! alive "n$n-ns"; then
    local script="set -e"
    for b in $NODE_BINDS; do
      local target=${b%%:*} sub=${b#*:}
      mkdir -p "$target"
      script="$script; mount --bind '$d/$sub' '$target'"
    done
    script="$script; mount --make-rshared /var/lib/kubelet; touch '$d/ns-ready'; exec sleep infinity"
    rm -f "$d/ns-ready"
    start_bg "n$n-ns" unshare --mount --propagation slave -- sh -c "$script"
    wait_for 10 "node $n's mount namespace" test -f "$d/ns-ready"
  fi
  local holder; holder=$(cat "$PIDS/n$n-ns")
  alive "n$n-containerd" || start_bg "n$n-containerd" nsenter -t "$holder" -m -- containerd --config "$d/containerd.toml"
  wait_for 30 "node $n's containerd" ctr -a "$(node_sock "$n")" version
  ctr -a "$(node_sock "$n")" -n k8s.io images import --no-unpack=false "$CACHE/pause.tar" >/dev/null
  alive "n$n-kubelet" || start_bg "n$n-kubelet" nsenter -t "$holder" -m -- nice -n 5 "$K8S_BIN/kubelet" \
    --config "$d/kubelet.yaml" --kubeconfig "$d/kubelet.kubeconfig" \
    --hostname-override "$(node_name "$n")" --node-ip "$NODE_NET.0.$n" --v 1
}

cmd_up() {
  [ "$(id -u)" = 0 ] || die "needs root"
  command -v containerd >/dev/null || die "containerd is not installed (scripts/setup.sh --test installs it)"
  [ -x /usr/lib/cni/bridge ] || die "the CNI plugins are not installed (containernetworking-plugins)"
  cmd_build
  build_pause
  mkdir -p "$DATA" "$LOGS" "$PIDS"
  local t0=$SECONDS n
  [ -f "$DATA/ip_forward" ] || cat /proc/sys/net/ipv4/ip_forward > "$DATA/ip_forward"
  echo 1 > /proc/sys/net/ipv4/ip_forward
  if ! ip link show "$LINK" >/dev/null 2>&1; then
    ip link add "$LINK" type bridge
    ip link set "$LINK" up
  fi
  ip addr replace "$API_IP/32" dev "$LINK"
  for n in $(seq 1 "$NODES"); do ip addr replace "$NODE_NET.0.$n/32" dev "$LINK"; done
  # pods of different nodes reach each other through the host, whatever FORWARD's policy is
  # (dockerd sets it to DROP)
  iptables -C FORWARD $FORWARD_RULE 2>/dev/null || iptables -I FORWARD 1 $FORWARD_RULE
  make_pki
  start_control_plane
  for n in $(seq 1 "$NODES"); do start_node "$n"; done
  local end=$((SECONDS + 180))
  until [ "$(kubectl_admin get nodes --no-headers 2>/dev/null | grep -c ' Ready ')" = "$NODES" ]; do
    [ $SECONDS -lt $end ] || { kubectl_admin get nodes >&2 || true; die "the nodes are not Ready after 180 s (logs in $LOGS)"; }
    for n in $(seq 1 "$NODES"); do alive "n$n-kubelet" || die "node $n's kubelet ended: $(tail -5 "$LOGS/n$n-kubelet.log")"; done
    sleep 1
  done
  # pods need their namespace's default service account, made by the controller manager
  wait_for 60 "the default service account" kubectl_admin get serviceaccount default -n default
  say "$NODES nodes Ready in $((SECONDS - t0)) s; kubeconfig: $KUBECONFIG_ADMIN"
  echo "$KUBECONFIG_ADMIN"
}

cmd_kubeconfig() {
  [ -f "$KUBECONFIG_ADMIN" ] || die "no cluster (scripts/cluster.sh up)"
  echo "$KUBECONFIG_ADMIN"
}

cmd_load_image() {
  [ $# -gt 0 ] || die "usage: cluster.sh load-image IMAGE|TARBALL..."
  local img tar n tmp
  for img in "$@"; do
    if [ -f "$img" ]; then tar=$img; else
      tmp=$(mktemp "$DATA/image.XXXXXX.tar")
      docker save "$img" -o "$tmp" || { rm -f "$tmp"; die "docker save $img failed"; }
      tar=$tmp
    fi
    for n in $(seq 1 "$NODES"); do
      ctr -a "$(node_sock "$n")" -n k8s.io images import "$tar" >/dev/null || die "node $n: import of $img failed"
    done
    [ -n "${tmp:-}" ] && rm -f "$tmp"
    tmp=
    say "$img imported on $NODES nodes"
  done
}

stop_pid() { # name
  local f=$PIDS/$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# every process whose mount namespace is the node's (its containerd, kubelet and shims)
node_processes() {
  local holder=$1 ns p
  ns=$(readlink "/proc/$holder/ns/mnt" 2>/dev/null) || return 0
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$holder" ] && continue
    [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$ns" ] && echo "${p#/proc/}"
  done
  return 0
}

remove_cgroup_tree() { # dir: kill what is left in it, then rmdir depth first
  local dir=$1
  [ -d "$dir" ] || return 0
  find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  sleep 0.2
  find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
}

cmd_down() {
  [ "$(id -u)" = 0 ] || die "needs root"
  local n d c holder
  # pods first, while the kubelets can still tear them down (CNI DEL releases IPs and veths)
  if alive kube-apiserver && [ -f "$KUBECONFIG_ADMIN" ]; then
    timeout 30 "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" delete pods --all -A --grace-period=1 --wait=true >/dev/null 2>&1 || true
  fi
  for n in $(seq 1 "${TLSCOPE_NODES_MAX:-8}"); do
    d=$(node_dir "$n")
    [ -d "$d" ] || continue
    stop_pid "n$n-kubelet"
    if [ -S "$(node_sock "$n")" ] && alive "n$n-containerd"; then
      for c in $(ctr -a "$(node_sock "$n")" -n k8s.io tasks ls -q 2>/dev/null); do
        ctr -a "$(node_sock "$n")" -n k8s.io tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
      done
    fi
    stop_pid "n$n-containerd"
    if [ -f "$PIDS/n$n-ns" ]; then
      holder=$(cat "$PIDS/n$n-ns")
      # network namespaces the node's CRI left (bind mounts in the node's mount namespace)
      nsenter -t "$holder" -m -- sh -c 'for f in /run/netns/cni-*; do [ -e "$f" ] || continue; if mountpoint -q "$f"; then umount "$f" && rm -f "$f"; fi; done' 2>/dev/null || true
      node_processes "$holder" | xargs -r kill -9 2>/dev/null || true
    fi
    stop_pid "n$n-ns"
    for c in $CGROUP_CONTROLLERS; do remove_cgroup_tree "/sys/fs/cgroup/$c/tlscope-n$n"; done
    ip link del "tlscope-br$n" 2>/dev/null || true
  done
  stop_pid kube-scheduler
  stop_pid kube-controller-manager
  stop_pid kube-apiserver
  stop_pid etcd
  ip link del "$LINK" 2>/dev/null || true
  while iptables -C FORWARD $FORWARD_RULE 2>/dev/null; do iptables -D FORWARD $FORWARD_RULE; done
  [ -f "$DATA/ip_forward" ] && cat "$DATA/ip_forward" > /proc/sys/net/ipv4/ip_forward
  # empty files the CRI made for its network namespaces (the mounts were the node's)
  find /run/netns -maxdepth 1 -name 'cni-*' -type f -empty -delete 2>/dev/null || true
  rm -rf "$DATA"
  say "down"
}

cmd_user() { # NAME [GROUP]: a kubeconfig for a user the cluster's CA signs (no role unless bound)
  local name=${1:?usage: cluster.sh user NAME [GROUP]} group=${2:-}
  [ -f "$PKI/ca.key" ] || die "no cluster (scripts/cluster.sh up)"
  cert "user-$name" "$name" "$group"
  kubeconfig_for "$DATA/user-$name.kubeconfig" "user-$name"
  echo "$DATA/user-$name.kubeconfig"
}

cmd_status() {
  local name
  for name in etcd kube-apiserver kube-controller-manager kube-scheduler $(for n in $(seq 1 "$NODES"); do echo "n$n-containerd n$n-kubelet"; done); do
    if alive "$name"; then echo "$name: running (pid $(cat "$PIDS/$name"))"; else echo "$name: not running"; fi
  done
  alive kube-apiserver && kubectl_admin get nodes -o wide
  return 0
}

cmd_built() { # exit 0 when every binary is in the cache (up starts at once), 1 when up would build first
  local c
  [ -x "$ETCD_BIN/etcd" ] || exit 1
  for c in $K8S_COMPONENTS; do [ -x "$K8S_BIN/$c" ] || exit 1; done
  exit 0
}

case "${1:-}" in
  build) cmd_build ;;
  built) cmd_built ;;
  up) cmd_up ;;
  kubeconfig) cmd_kubeconfig ;;
  load-image) shift; cmd_load_image "$@" ;;
  status) cmd_status ;;
  user) shift; cmd_user "$@" ;;
  kubectl) shift; [ -f "$KUBECONFIG_ADMIN" ] || die "no cluster (scripts/cluster.sh up)"; exec "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@" ;;
  down) cmd_down ;;
  *) echo "usage: $0 build | built | up | kubeconfig | load-image IMAGE|TARBALL... | status | user NAME [GROUP] | kubectl ARGS... | down" >&2; exit 2 ;;
esac
