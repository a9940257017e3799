#!/usr/bin/env bash
# Profiles containerd itself while it imports one large single-layer archive, once sent by
# `ctr images import` and once by `crimg import`, each into a fresh private containerd.
# It prints each import's wall time, containerd's CPU seconds, and containerd's own CPU
# profile (Go's pprof, served on containerd's debug socket) as a top list.
#
#   scripts/profile-containerd.sh [MiB] [ARCHIVE]
#
# Without ARCHIVE it generates an OCI archive whose one uncompressed layer holds MiB
# (default 256) of random bytes. Needs root, containerd, ctr, a release build of crimg
# (`cargo build --release`), and `go` for reading the profiles (Debian: golang-go).
set -euo pipefail
cd "$(dirname "$0")/.."

mib=${1:-256}
crimg=${CRIMG:-$PWD/target/release/crimg}
work=$(mktemp -d /tmp/crimg-profile-XXXXXX)
trap 'umount -R "$work"/node/root/io.containerd.snapshotter.v1.overlayfs 2>/dev/null || true; rm -rf "$work"' EXIT

for tool in containerd ctr go "$crimg"; do
    command -v "$tool" >/dev/null || { echo "profile-containerd: $tool not found" >&2; exit 2; }
done

archive=${2:-}
if [ -z "$archive" ]; then
    # An OCI layout by hand: random file → layer tar → config → manifest → index.
    l=$work/layout
    mkdir -p "$l/blobs/sha256" "$work/rootfs"
    head -c "$((mib << 20))" /dev/urandom >"$work/rootfs/random.bin"
    tar -C "$work/rootfs" -cf "$work/layer.tar" random.bin
    put() { # put FILE → prints "digest size", moves FILE into blobs/
        local d s
        d=$(sha256sum "$1" | cut -d' ' -f1)
        s=$(stat -c %s "$1")
        mv "$1" "$l/blobs/sha256/$d"
        echo "$d $s"
    }
    read -r layer_d layer_s < <(put "$work/layer.tar")
    printf '{"architecture":"%s","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
        "$(dpkg --print-architecture)" "$layer_d" >"$work/config.json"
    read -r config_d config_s < <(put "$work/config.json")
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
        "$config_d" "$config_s" "$layer_d" "$layer_s" >"$work/manifest.json"
    read -r manifest_d manifest_s < <(put "$work/manifest.json")
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"docker.io/library/profile:%s"}}]}' \
        "$manifest_d" "$manifest_s" "$mib" >"$l/index.json"
    echo '{"imageLayoutVersion":"1.0.0"}' >"$l/oci-layout"
    archive=$work/profile.tar
    tar -C "$l" -cf "$archive" oci-layout index.json blobs
fi

# run NAME COMMAND...: a fresh containerd with a debug socket; profile it during COMMAND.
run() {
    local name=$1 d=$work/node
    shift
    rm -rf "$d"
    mkdir -p "$d/cni/net.d"
    cat >"$d/config.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[debug]
  address = "$d/debug.sock"
[plugins."io.containerd.grpc.v1.cri"]
  disable_apparmor = true
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    conf_dir = "$d/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
EOF
    containerd --config "$d/config.toml" >"$d/log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do [ -S "$d/debug.sock" ] && [ -S "$d/containerd.sock" ] && break; sleep 0.1; done
    sleep 1
    export SOCK=$d/containerd.sock
    curl -s --unix-socket "$d/debug.sock" \
        "http://localhost/debug/pprof/profile?seconds=${PROFILE_SECONDS:-12}" -o "$work/$name.pprof" &
    local prof=$!
    sleep 0.2
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    # utime and stime (fields 14, 15) in clock ticks.
    read -r ut st < <(awk '{print $14, $15}' "/proc/$pid/stat")
    local hz
    hz=$(getconf CLK_TCK)
    wait "$prof"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    umount -R "$d/root/io.containerd.snapshotter.v1.overlayfs" 2>/dev/null || true
    awk -v n="$name" -v t0="$t0" -v t1="$t1" -v ut="$ut" -v st="$st" -v hz="$hz" 'BEGIN {
        printf "\n== %s: %.2f s wall; containerd used %.2f CPU-s (user %.2f, system %.2f)\n",
            n, t1 - t0, (ut + st) / hz, ut / hz, st / hz }'
    go tool pprof -top -nodecount=12 "$(command -v containerd)" "$work/$name.pprof" 2>/dev/null | sed -n '4,20p'
    echo "-- who calls sha256:"
    go tool pprof -peek 'sha256.\(\*digest\).Write$' "$(command -v containerd)" "$work/$name.pprof" 2>/dev/null |
        grep '|' | grep -v 'sha256\.' || true
}

# The hashing speed containerd gets: Go's crypto/sha256 as built by the local Go toolchain
# (Debian 12 builds containerd 1.6.20 with Go 1.19, whose sha256 has no SHA-NI path).
mkdir -p "$work/gosha"
cat >"$work/gosha/main.go" <<'EOF'
package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"
)

func main() {
	f, err := os.Open(os.Args[1])
	if err != nil {
		panic(err)
	}
	h := sha256.New()
	t := time.Now()
	n, _ := io.CopyBuffer(h, f, make([]byte, 1<<20))
	s := time.Since(t).Seconds()
	fmt.Printf("== %s crypto/sha256 of %d bytes: %.3f s (%.0f MiB/s)\n", runtime.Version(), n, s, float64(n)/s/(1<<20))
}
EOF
(cd "$work/gosha" && GO111MODULE=off GOCACHE=$work/gocache go run main.go "$archive")

run "ctr images import" bash -c 'ctr -a "$SOCK" -n k8s.io images import "$0"' "$archive"
run "crimg import" "$crimg" -r "unix://$work/node/containerd.sock" import -q "$archive"
