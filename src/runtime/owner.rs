//! Which process owns a crimg lease, and whether that process is gone.
//!
//! Every lease crimg creates is labelled with its process: pid, start time (field 22 of
//! `/proc/<pid>/stat`, in clock ticks since boot), boot id and pid namespace. Together
//! they name one process on one boot, even after its pid is reused. A later crimg can
//! then tell a lease whose owner was killed (SIGKILL, OOM, containerd killed under it so
//! the delete failed) from one held by an import still running, and release it instead
//! of letting it hold half-written content until it expires.

use std::collections::BTreeMap;

/// The pid of the process that created the lease.
pub const LABEL_PID: &str = "crimg/pid";
/// Its start time: field 22 of `/proc/<pid>/stat`.
pub const LABEL_START: &str = "crimg/start";
/// The boot it ran in: `/proc/sys/kernel/random/boot_id`.
pub const LABEL_BOOT: &str = "crimg/boot";
/// Its pid namespace (`/proc/self/ns/pid`, e.g. `pid:[4026531836]`): a pid means
/// nothing in another namespace.
pub const LABEL_PIDNS: &str = "crimg/pidns";

/// One process on one boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub start: String,
    pub boot: String,
    pub pidns: String,
}

impl Owner {
    /// This process, or `None` when `/proc` does not say (not Linux, no procfs).
    pub fn current() -> Option<Owner> {
        static CURRENT: std::sync::OnceLock<Option<Owner>> = std::sync::OnceLock::new();
        CURRENT
            .get_or_init(|| {
                let pid = std::process::id();
                Some(Owner {
                    pid,
                    start: start_time(&std::fs::read_to_string("/proc/self/stat").ok()?)?,
                    boot: boot_id()?,
                    pidns: pid_namespace()?,
                })
            })
            .clone()
    }

    /// The labels that name this process on a lease.
    pub(crate) fn labels(&self) -> [(String, String); 4] {
        [
            (LABEL_PID.into(), self.pid.to_string()),
            (LABEL_START.into(), self.start.clone()),
            (LABEL_BOOT.into(), self.boot.clone()),
            (LABEL_PIDNS.into(), self.pidns.clone()),
        ]
    }
}

/// Why a lease's owner is known to be gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Gone {
    /// Created before the last reboot.
    OtherBoot,
    /// No process with that pid and start time runs now.
    Exited { pid: u32 },
}

impl std::fmt::Display for Gone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gone::OtherBoot => f.write_str("created before the last reboot"),
            Gone::Exited { pid } => write!(f, "crimg process {pid} is gone"),
        }
    }
}

/// Whether a lease with these labels belongs to a crimg process that is gone, seen from
/// process `me`; `alive(pid, start)` says whether that process runs now. A lease is left
/// alone unless it carries every owner label: other tools' leases and those of older
/// crimg versions are never touched, nor those of a crimg in another pid namespace.
pub(crate) fn stale(
    labels: &BTreeMap<String, String>,
    me: &Owner,
    alive: impl Fn(u32, &str) -> bool,
) -> Option<Gone> {
    let pid = labels.get(LABEL_PID)?.parse::<u32>().ok()?;
    let start = labels.get(LABEL_START)?;
    let boot = labels.get(LABEL_BOOT)?;
    let pidns = labels.get(LABEL_PIDNS)?;
    if pid == 0 || start.is_empty() || boot.is_empty() || pidns.is_empty() {
        return None;
    }
    if *boot != me.boot {
        // Every process of another boot is gone, whatever its namespace.
        return Some(Gone::OtherBoot);
    }
    if *pidns != me.pidns {
        return None;
    }
    if pid == me.pid && *start == me.start {
        return None;
    }
    (!alive(pid, start)).then_some(Gone::Exited { pid })
}

/// Whether process `pid` started at `start` runs now (a zombie does not).
pub(crate) fn alive(pid: u32, start: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let running = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .is_some_and(|state| state != 'Z' && state != 'X');
    running && start_time(&stat).as_deref() == Some(start)
}

/// Field 22 (start time) of a `/proc/<pid>/stat` line. The command name (field 2) is
/// parenthesised and may hold spaces and parentheses, so count from its last `)`.
fn start_time(stat: &str) -> Option<String> {
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(22 - 3).map(str::to_string)
}

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

fn pid_namespace() -> Option<String> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(link.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Owner {
        Owner {
            pid: 100,
            start: "5000".into(),
            boot: "boot-a".into(),
            pidns: "pid:[1]".into(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn stale_decision() {
        // Running now: pid 200 started at 7000, and this process.
        let alive = |pid: u32, start: &str| (pid, start) == (200, "7000") || pid == 100;
        let full = |pid: &str, start: &str, boot: &str, ns: &str| {
            labels(&[
                (LABEL_PID, pid),
                (LABEL_START, start),
                (LABEL_BOOT, boot),
                (LABEL_PIDNS, ns),
                ("containerd.io/gc.expire", "2030-01-01T00:00:00Z"),
            ])
        };
        let exited = |pid| Some(Gone::Exited { pid });
        let cases: Vec<(&str, BTreeMap<String, String>, Option<Gone>)> = vec![
            (
                "owner running",
                full("200", "7000", "boot-a", "pid:[1]"),
                None,
            ),
            (
                "owner exited",
                full("300", "7000", "boot-a", "pid:[1]"),
                exited(300),
            ),
            (
                "pid reused by another process",
                full("200", "6999", "boot-a", "pid:[1]"),
                exited(200),
            ),
            (
                "this process",
                full("100", "5000", "boot-a", "pid:[1]"),
                None,
            ),
            (
                "another boot",
                full("200", "7000", "boot-b", "pid:[1]"),
                Some(Gone::OtherBoot),
            ),
            (
                "another boot, another namespace",
                full("300", "1", "boot-b", "pid:[2]"),
                Some(Gone::OtherBoot),
            ),
            (
                "another pid namespace",
                full("300", "7000", "boot-a", "pid:[2]"),
                None,
            ),
            ("no labels (another tool)", labels(&[]), None),
            (
                "only an expiry (older crimg)",
                labels(&[("containerd.io/gc.expire", "2030-01-01T00:00:00Z")]),
                None,
            ),
            (
                "no start time",
                labels(&[
                    (LABEL_PID, "300"),
                    (LABEL_BOOT, "boot-a"),
                    (LABEL_PIDNS, "pid:[1]"),
                ]),
                None,
            ),
            (
                "no boot id",
                labels(&[
                    (LABEL_PID, "300"),
                    (LABEL_START, "7000"),
                    (LABEL_PIDNS, "pid:[1]"),
                ]),
                None,
            ),
            (
                "no pid namespace",
                labels(&[
                    (LABEL_PID, "300"),
                    (LABEL_START, "7000"),
                    (LABEL_BOOT, "boot-a"),
                ]),
                None,
            ),
            (
                "pid not a number",
                full("x", "7000", "boot-a", "pid:[1]"),
                None,
            ),
            ("pid 0", full("0", "7000", "boot-a", "pid:[1]"), None),
            ("empty boot id", full("300", "7000", "", "pid:[1]"), None),
        ];
        for (what, labels, want) in cases {
            assert_eq!(stale(&labels, &me(), alive), want, "{what}");
        }
    }

    #[test]
    fn this_process_is_alive_and_named() {
        let me = Owner::current().expect("procfs");
        assert_eq!(me.pid, std::process::id());
        assert!(alive(me.pid, &me.start));
        assert!(!alive(me.pid, &format!("{}0", me.start)));
        let labels: BTreeMap<String, String> = me.labels().into_iter().collect();
        assert_eq!(stale(&labels, &me, alive), None);
    }

    #[test]
    fn start_time_after_a_name_with_spaces() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 123456 1000";
        assert_eq!(start_time(stat).as_deref(), Some("123456"));
    }
}
