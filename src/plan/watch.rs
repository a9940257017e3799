//! What `import --watch` does about a watched archive that has not changed, or has gone:
//! a watched directory declares a set of images, and the runtime is held to it.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{ImageRecord, LABEL_CRI_PINNED, LABEL_K3S_PINNED, PINNED_VALUE};

/// How long a file's size and mtime must hold still before it is imported; also the
/// debounce after a burst of filesystem events.
pub(crate) const SETTLE: Duration = Duration::from_secs(2);
/// Rescan period when inotify is not available.
pub(crate) const POLL: Duration = Duration::from_secs(5);
/// How long the watch sleeps when inotify watches every directory and nothing waits: an
/// event wakes it sooner.
pub(crate) const IDLE: Duration = Duration::from_secs(3600);

/// How long the watch sleeps unless something wakes it: [`SETTLE`] while a file waits to
/// hold still, [`IDLE`] while inotify watches every directory, [`POLL`] otherwise (no
/// inotify, or a watched directory missing); never past the next re-check, `until_check`
/// (with `--pin`).
pub(crate) fn sleep_for(waiting: bool, inotify: bool, until_check: Option<Duration>) -> Duration {
    let timeout = if waiting {
        SETTLE
    } else if inotify {
        IDLE
    } else {
        POLL
    };
    match until_check {
        Some(until) => timeout.min(until),
        None => timeout,
    }
}

/// One containerd image record an archive brought.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Brought {
    /// The record's name: a reference, or the image ID (CRI keeps a record named by it).
    pub(crate) name: String,
    /// The digest the record pointed at after the import; empty for a reference a `.txt`
    /// list pulled through CRI, which is held to being present only.
    pub(crate) target: String,
    /// crimg set the pin on this record (it was not pinned before crimg pinned it), so
    /// `--unpin-removed` may take the pin away again.
    #[serde(default)]
    pub(crate) pinned_by_crimg: bool,
}

/// The runtime's image records by name.
pub(crate) type Records = HashMap<String, ImageRecord>;

/// What to do about an unchanged archive, given what the runtime holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every record is there with its target (and pinned, when pins are asked for).
    Keep,
    /// Everything is there but these records lost their pin: set the label again; the
    /// archive need not be read.
    Repin { records: Vec<String> },
    /// Something is missing or points elsewhere: import the archive again (blobs already
    /// in the store are not written again). `reasons` say why, for the log.
    Reimport { reasons: Vec<String> },
}

fn pinned(r: &ImageRecord) -> bool {
    r.labels
        .get(LABEL_CRI_PINNED)
        .is_some_and(|v| v == PINNED_VALUE)
}

/// Holds an archive's records against the runtime's.
pub(crate) fn verdict(brought: &[Brought], runtime: &Records, pin: bool) -> Verdict {
    let mut reasons = Vec::new();
    let mut unpinned = Vec::new();
    for b in brought {
        match runtime.get(&b.name) {
            None => reasons.push(format!("missing from the runtime: {}", b.name)),
            Some(r) if !b.target.is_empty() && r.target.digest != b.target => reasons.push(
                format!("{} points at {}, not {}", b.name, r.target.digest, b.target),
            ),
            // A list's references were never pinned by the import; only archives are.
            Some(r) if pin && !b.target.is_empty() && !pinned(r) => unpinned.push(b.name.clone()),
            Some(_) => {}
        }
    }
    if !reasons.is_empty() {
        if !unpinned.is_empty() {
            reasons.push(format!("pin removed: {}", unpinned.join(", ")));
        }
        Verdict::Reimport { reasons }
    } else if !unpinned.is_empty() {
        Verdict::Repin { records: unpinned }
    } else {
        Verdict::Keep
    }
}

/// The records an import brought, with who set their pins: crimg, when it pinned a record
/// that was not pinned just before the import, or that crimg had pinned before.
pub(crate) fn brought(
    records: &[(String, String)],
    before: &Records,
    previous: &[Brought],
    pin: bool,
) -> Vec<Brought> {
    records
        .iter()
        .map(|(name, target)| {
            let was_ours = previous
                .iter()
                .any(|p| p.name == *name && p.pinned_by_crimg);
            let pinned_before = before.get(name).is_some_and(pinned);
            Brought {
                name: name.clone(),
                target: target.clone(),
                pinned_by_crimg: pin && !target.is_empty() && (was_ours || !pinned_before),
            }
        })
        .collect()
}

/// The records whose pin `--unpin-removed` takes away when an archive that brought `gone`
/// has left the directory: only pins crimg set, on records that still point where the
/// archive put them, that no archive still watched brings, and that K3s does not pin too.
pub(crate) fn unpin_removed<'a>(
    gone: &[Brought],
    still_watched: impl IntoIterator<Item = &'a Brought>,
    runtime: &Records,
) -> Vec<String> {
    let kept: BTreeSet<&str> = still_watched.into_iter().map(|b| b.name.as_str()).collect();
    gone.iter()
        .filter(|b| b.pinned_by_crimg && !kept.contains(b.name.as_str()))
        .filter(|b| {
            runtime.get(&b.name).is_some_and(|r| {
                r.target.digest == b.target && pinned(r) && !r.labels.contains_key(LABEL_K3S_PINNED)
            })
        })
        .map(|b| b.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Descriptor;

    const A: &str = "docker.io/library/a:1";
    const ID: &str = "sha256:c0ffee";

    fn rec(name: &str, target: &str, labels: &[(&str, &str)]) -> (String, ImageRecord) {
        (
            name.to_string(),
            ImageRecord {
                name: name.into(),
                target: Descriptor {
                    digest: target.into(),
                    ..Descriptor::default()
                },
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..ImageRecord::default()
            },
        )
    }

    fn b(name: &str, target: &str, ours: bool) -> Brought {
        Brought {
            name: name.into(),
            target: target.into(),
            pinned_by_crimg: ours,
        }
    }

    const PIN: (&str, &str) = (LABEL_CRI_PINNED, PINNED_VALUE);
    const K3S: (&str, &str) = (LABEL_K3S_PINNED, PINNED_VALUE);

    #[test]
    fn sleep_table() {
        let s = Duration::from_secs;
        // (case, a file waiting, inotify watching every directory, until the re-check, sleep)
        let cases = [
            ("a file waits to settle", true, true, None, SETTLE),
            ("waiting while polling", true, false, None, SETTLE),
            ("inotify wakes it", false, true, None, IDLE),
            ("polling", false, false, None, POLL),
            ("the re-check comes first", false, true, Some(s(60)), s(60)),
            ("the re-check is due", true, true, Some(s(0)), s(0)),
            ("the re-check is later", false, false, Some(s(60)), POLL),
        ];
        for (name, waiting, inotify, until, want) in cases {
            assert_eq!(sleep_for(waiting, inotify, until), want, "{name}");
        }
    }

    #[test]
    fn verdict_table() {
        let none = Records::new();
        let archive = vec![b(A, "sha256:m1", true), b(ID, "sha256:m1", true)];
        let list = vec![b("docker.io/library/pulled:1", "", false)];
        let both_pinned: Records =
            [rec(A, "sha256:m1", &[PIN]), rec(ID, "sha256:m1", &[PIN])].into();
        let unpinned: Records = [rec(A, "sha256:m1", &[]), rec(ID, "sha256:m1", &[PIN])].into();
        let tag_gone: Records = [rec(ID, "sha256:m1", &[PIN])].into();
        let moved: Records = [rec(A, "sha256:m2", &[PIN]), rec(ID, "sha256:m1", &[PIN])].into();
        let moved_unpinned: Records = [rec(A, "sha256:m2", &[]), rec(ID, "sha256:m1", &[])].into();
        let pulled: Records = [rec("docker.io/library/pulled:1", "sha256:x", &[])].into();
        let cases: Vec<(&str, &[Brought], &Records, bool, Verdict)> = vec![
            (
                "all there, pinned",
                &archive,
                &both_pinned,
                true,
                Verdict::Keep,
            ),
            (
                "all there, no pin asked",
                &archive,
                &unpinned,
                false,
                Verdict::Keep,
            ),
            (
                "pin stripped from the tag: re-pin only",
                &archive,
                &unpinned,
                true,
                Verdict::Repin {
                    records: vec![A.into()],
                },
            ),
            (
                "tag deleted",
                &archive,
                &tag_gone,
                false,
                Verdict::Reimport {
                    reasons: vec![format!("missing from the runtime: {A}")],
                },
            ),
            (
                "everything deleted",
                &archive,
                &none,
                true,
                Verdict::Reimport {
                    reasons: vec![
                        format!("missing from the runtime: {A}"),
                        format!("missing from the runtime: {ID}"),
                    ],
                },
            ),
            (
                "tag moved to another image",
                &archive,
                &moved,
                true,
                Verdict::Reimport {
                    reasons: vec![format!("{A} points at sha256:m2, not sha256:m1")],
                },
            ),
            (
                "moved and unpinned: one import restores both",
                &archive,
                &moved_unpinned,
                true,
                Verdict::Reimport {
                    reasons: vec![
                        format!("{A} points at sha256:m2, not sha256:m1"),
                        format!("pin removed: {ID}"),
                    ],
                },
            ),
            (
                "a list's reference present, unpinned",
                &list,
                &pulled,
                true,
                Verdict::Keep,
            ),
            (
                "a list's reference gone",
                &list,
                &none,
                true,
                Verdict::Reimport {
                    reasons: vec!["missing from the runtime: docker.io/library/pulled:1".into()],
                },
            ),
            ("nothing brought", &[], &none, true, Verdict::Keep),
        ];
        for (name, brought, runtime, pin, want) in cases {
            assert_eq!(verdict(brought, runtime, pin), want, "{name}");
        }
    }

    #[test]
    fn who_set_the_pin() {
        let records = vec![
            (A.to_string(), "sha256:m1".to_string()),
            (ID.to_string(), "sha256:m1".to_string()),
        ];
        // (case, before, previous, pin, expected pinned_by_crimg for A and ID)
        let user_pinned_tag: Records = [rec(A, "sha256:m1", &[PIN])].into();
        type Case = (&'static str, Records, Vec<Brought>, bool, [bool; 2]);
        let cases: Vec<Case> = vec![
            ("new, --pin", Records::new(), vec![], true, [true, true]),
            (
                "new, no --pin",
                Records::new(),
                vec![],
                false,
                [false, false],
            ),
            (
                "tag pinned by someone else",
                user_pinned_tag.clone(),
                vec![],
                true,
                [false, true],
            ),
            (
                "pinned before by crimg itself",
                user_pinned_tag,
                vec![b(A, "sha256:m1", true)],
                true,
                [true, true],
            ),
        ];
        for (name, before, previous, pin, want) in cases {
            let got: Vec<bool> = brought(&records, &before, &previous, pin)
                .iter()
                .map(|b| b.pinned_by_crimg)
                .collect();
            assert_eq!(got, want, "{name}");
        }
        // A list's reference is never pinned by the import.
        let list = brought(&[("x".into(), String::new())], &Records::new(), &[], true);
        assert!(!list[0].pinned_by_crimg);
    }

    #[test]
    fn unpin_removed_table() {
        let none = Records::new();
        let gone = vec![b(A, "sha256:m1", true), b(ID, "sha256:m1", true)];
        let not_ours = vec![b(A, "sha256:m1", false), b(ID, "sha256:m1", false)];
        let pinned: Records = [rec(A, "sha256:m1", &[PIN]), rec(ID, "sha256:m1", &[PIN])].into();
        let k3s_too: Records = [
            rec(A, "sha256:m1", &[PIN, K3S]),
            rec(ID, "sha256:m1", &[PIN]),
        ]
        .into();
        let moved: Records = [rec(A, "sha256:m2", &[PIN]), rec(ID, "sha256:m1", &[PIN])].into();
        let unpinned: Records = [rec(A, "sha256:m1", &[]), rec(ID, "sha256:m1", &[PIN])].into();
        let other = [b(ID, "sha256:m1", true)];
        type Case<'a> = (
            &'a str,
            &'a [Brought],
            &'a [Brought],
            &'a Records,
            Vec<&'a str>,
        );
        let cases: Vec<Case> = vec![
            ("crimg's pins go", &gone, &[], &pinned, vec![A, ID]),
            (
                "pins crimg did not set stay",
                &not_ours,
                &[],
                &pinned,
                vec![],
            ),
            (
                "another watched archive brings the image",
                &gone,
                &other,
                &pinned,
                vec![A],
            ),
            ("K3s pins it too", &gone, &[], &k3s_too, vec![ID]),
            ("the tag points elsewhere now", &gone, &[], &moved, vec![ID]),
            ("already unpinned", &gone, &[], &unpinned, vec![ID]),
            ("already deleted", &gone, &[], &none, vec![]),
        ];
        for (name, gone, still, runtime, want) in cases {
            assert_eq!(unpin_removed(gone, still, runtime), want, "{name}");
        }
    }
}
