#!/usr/bin/env bash
# Runs crimg's whole test suite: formatting, lints, unit tests and end-to-end tests
# against private containerd instances the tests start themselves.
# Run as root on Debian: it installs what it needs (containerd, runc, a static libc).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: the end-to-end tests run containerd and pods; run as root" >&2
    exit 2
fi

# Debian packages the end-to-end tests need, installed only when missing.
missing=()
command -v containerd >/dev/null || missing+=(containerd)
command -v ctr >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
command -v gcc >/dev/null || missing+=(gcc)
[ -e "$(gcc -print-file-name=libc.a 2>/dev/null || echo /nonexistent)" ] || missing+=(libc6-dev)
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v tmux >/dev/null || missing+=(tmux)
# Producers and consumers of the interop tests (tests/e2e/interop.rs).
command -v podman >/dev/null || missing+=(podman)
command -v buildah >/dev/null || missing+=(buildah)
command -v umoci >/dev/null || missing+=(umoci)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker >/dev/null || missing+=(docker.io)
command -v zstd >/dev/null || missing+=(zstd)
command -v kubectl >/dev/null || missing+=(kubectl)
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --locked --all-targets --all-features -- -D warnings
# The shipped binary is built without the fuzzing feature: lint that build too.
cargo clippy --locked --lib --bins -- -D warnings

echo "==> tests"
# Missing e2e prerequisites fail the run instead of skipping the end-to-end tests.
export CRIMG_E2E_REQUIRED=1
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --all-features --no-fail-fast
else
    cargo test --locked --all-features --no-fail-fast
fi
