#!/usr/bin/env bash
# Runs crimg's whole test suite: formatting, lints, unit tests and end-to-end tests
# against private containerd instances the tests start themselves.
# Run as root on Debian: it installs what it needs (containerd, runc, a static libc).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/prereqs.sh
require_root scripts/test.sh "the end-to-end tests run containerd and pods"

# Debian packages the end-to-end tests need, installed only when missing.
want_harness
want docker-registry docker-registry
want skopeo skopeo
want tmux tmux
# Shells whose completion tests/e2e/complete.rs drives.
want zsh zsh
want fish fish
# Producers and consumers of the interop tests (tests/e2e/interop.rs).
want podman podman
want buildah buildah
want umoci umoci
want dockerd docker.io
want docker docker.io
want zstd zstd
want kubectl kubectl
install_missing

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
