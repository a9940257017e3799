#!/usr/bin/env bash
# A first look at crimg on any Debian machine, as root, without touching the machine's own
# runtime: starts a throwaway containerd in a temporary directory (the way the tests start
# theirs), imports an archive of a few generated images, runs a pod, then shows
#   crimg import, crimg pin, crimg list, crimg prune --dry-run, crimg prune --why
# with their real reasons, and removes everything again. The first run builds crimg and
# its tests (a few minutes). On a real node, use `cargo run --release -- list` instead.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/try.sh: starts containerd and a pod; run as root" >&2
    exit 2
fi
missing=()
command -v containerd >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
command -v gcc >/dev/null || missing+=(gcc)
[ -e "$(gcc -print-file-name=libc.a 2>/dev/null || echo /nonexistent)" ] || missing+=(libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The tour is an end-to-end test (tests/e2e/tour.rs): the same harness, the same checks.
CRIMG_TOUR=1 CRIMG_E2E_REQUIRED=1 exec cargo test --locked --all-features --test e2e -- \
    --exact tour::first_run_tour_shows_real_reasons --nocapture --test-threads 1
