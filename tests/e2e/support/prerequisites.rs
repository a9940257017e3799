//! What the end-to-end tests need from the machine, checked before a test starts a node.
//!
//! Without it (a plain `cargo test` as a user, a machine without containerd) the e2e
//! binary says in one line what is missing and how to get it, and exits 0 without running
//! the rest. `scripts/test.sh` sets `CRIMG_E2E_REQUIRED=1`, which turns that line into a
//! failure, so CI can never skip them silently.

use std::io::Write;
use std::path::Path;
use std::sync::Once;

/// Set (to anything) by `scripts/test.sh`: missing prerequisites fail the test.
pub const REQUIRED_ENV: &str = "CRIMG_E2E_REQUIRED";

/// The programs the harness runs, found on PATH (sbin included).
const PROGRAMS: &[&str] = &[
    "containerd",
    "ctr",
    "runc",
    "gcc",
    "docker-registry",
    "skopeo",
    "kubectl",
];

/// What is missing to run the end-to-end tests, empty when nothing is.
pub fn missing() -> Vec<String> {
    let mut missing = Vec::new();
    if effective_uid() != Some(0) {
        missing.push("root".to_string());
    }
    let path = super::node::path_with_sbin();
    for program in PROGRAMS {
        let found = path
            .split(':')
            .filter(|dir| !dir.is_empty())
            .any(|dir| Path::new(dir).join(program).is_file());
        if !found {
            missing.push((*program).to_string());
        }
    }
    missing
}

/// Returns when the machine can run the end-to-end tests. Otherwise panics when
/// [`REQUIRED_ENV`] is set, or prints one line and ends the test process with success.
pub fn check() {
    static SAID: Once = Once::new();
    let missing = missing();
    if missing.is_empty() {
        return;
    }
    let line = format!(
        "crimg e2e: not run: the end-to-end tests need root, containerd, ctr, runc, gcc with a \
         static libc, docker-registry, skopeo and kubectl (missing here: {}); `bash scripts/test.sh` as \
         root installs them and runs every test",
        missing.join(", ")
    );
    if std::env::var_os(REQUIRED_ENV).is_some() {
        panic!("{line} ({REQUIRED_ENV} is set, so this is a failure)");
    }
    SAID.call_once(|| {
        // Straight to stderr: the test harness's capture would swallow it on exit.
        let _ = writeln!(std::io::stderr(), "{line}");
    });
    std::process::exit(0);
}

/// The effective user ID, from /proc/self/status ("Uid: real effective saved fs").
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    uids.split_whitespace().nth(1)?.parse().ok()
}
