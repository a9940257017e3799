#!/usr/bin/env bash
# A first look at crimg on any Debian machine, as root, without touching the machine's own
# runtime: starts a throwaway containerd in a temporary directory (the way the tests start
# theirs), imports an archive of a few generated images, runs a pod, then shows
#   crimg import, crimg pin, crimg list, crimg prune --dry-run, crimg prune --why
# with their real reasons, and removes everything again. The first run builds crimg and
# its tests (a few minutes). On a real node, use `cargo run --release -- list` instead.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/prereqs.sh
require_root scripts/try.sh "starts containerd and a pod"
want_harness
install_missing

# The tour is an end-to-end test (tests/e2e/tour.rs): the same harness, the same checks.
CRIMG_TOUR=1 CRIMG_E2E_REQUIRED=1 exec cargo test --locked --all-features --test e2e -- \
    --exact tour::first_run_tour_shows_real_reasons --nocapture --test-threads 1
