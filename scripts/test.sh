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

# The containerd releases the suite runs on besides the host's 1.6 (README, "Supported
# runtimes"): 1.7 from Debian trixie, 2.x from Debian sid.
. scripts/runtimes.sh
newer_runtimes=(trixie sid)
runtime_bins=()
for rel in "${newer_runtimes[@]}"; do
    runtime_bins+=("$(containerd_bin "$rel")")
done

echo "==> tests (unit, and end-to-end on the host's containerd $(containerd --version | awk '{print $3}'))"
# Missing e2e prerequisites fail the run instead of skipping the end-to-end tests.
export CRIMG_E2E_REQUIRED=1
status=0
nextest() {
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --locked --all-features --no-fail-fast "$@"
    else
        cargo test --locked --all-features --no-fail-fast "$@"
    fi
}
nextest || status=1
# The end-to-end tests again on each newer containerd, first on PATH (containerd finds its
# shim there too). Tests that start no containerd ran once above.
once='test(/^complete::/) | test(/^schema::/) | test(/^support::/)'
for bin in "${runtime_bins[@]}"; do
    echo "==> end-to-end tests on containerd $("$bin/containerd" --version | awk '{print $3}')"
    if cargo nextest --version >/dev/null 2>&1; then
        PATH="$bin:$PATH" nextest -E "binary(e2e) & not ($once)" || status=1
    else
        PATH="$bin:$PATH" cargo test --locked --all-features --no-fail-fast --test e2e || status=1
    fi
done
exit $status
