//! Unattended prune: whether a run should remove anything, and when the next run starts.
//! Pure functions of the numbers a run measured, so the loop itself decides nothing.

use std::time::Duration;

use crate::plan::protect::Reason;
use crate::plan::prune::{Action, Plan};

/// The share of the interval added at random to each wait, so that the nodes of a fleet
/// started together do not prune in step.
pub(crate) const JITTER: f64 = 0.10;

/// The image filesystem as measured before a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FsUsage {
    pub(crate) used: u64,
    pub(crate) capacity: u64,
}

impl FsUsage {
    /// Used share in percent (0 for an empty or unknown size).
    pub(crate) fn percent(&self) -> f64 {
        if self.capacity == 0 {
            0.0
        } else {
            self.used as f64 * 100.0 / self.capacity as f64
        }
    }
}

/// Which of the image filesystems CRI `ImageFsInfo` reports holds the images: the one of
/// `snapshotter` (containerd names them `<root>/io.containerd.snapshotter.v1.<name>`,
/// one per snapshotter on 2.x), else the first that names a mount point.
pub(crate) fn image_filesystem(mountpoints: &[&str], snapshotter: Option<&str>) -> Option<usize> {
    let named = snapshotter.and_then(|s| {
        let suffix = format!("io.containerd.snapshotter.v1.{s}");
        mountpoints
            .iter()
            .position(|m| m.trim_end_matches('/').ends_with(&suffix))
    });
    named.or_else(|| mountpoints.iter().position(|m| !m.is_empty()))
}

/// What one run does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RunDecision {
    /// Plan and remove as `prune` always does (down to `--target-usage` when given).
    Prune,
    /// The image filesystem is at or below `--high-usage`: remove nothing this time.
    BelowHigh { percent: f64, high: f64 },
}

/// The kubelet's rule: prune only when usage is above the high mark. Without a high mark
/// every run prunes.
pub(crate) fn decide(usage: Option<FsUsage>, high: Option<f64>) -> RunDecision {
    match (usage, high) {
        (Some(u), Some(high)) if u.percent() <= high => RunDecision::BelowHigh {
            percent: u.percent(),
            high,
        },
        _ => RunDecision::Prune,
    }
}

/// The wait from the end of a run to the start of the next. Runs start one interval
/// (plus `random` × [`JITTER`] of it, `random` in 0..1) after the previous start; a run
/// that took longer than that is followed at once. The first run starts at once: nodes
/// that start together (a rollout, a power cut) drift apart as the random parts add up.
pub(crate) fn next_delay(interval: Duration, elapsed: Duration, random: f64) -> Duration {
    interval
        .mul_f64(1.0 + JITTER * random.clamp(0.0, 1.0))
        .saturating_sub(elapsed)
}

/// Applies a run's decision to its plan: below the high mark every planned removal is
/// kept, with the mark as its reason, so reports and metrics say why nothing went.
pub(crate) fn hold(plan: &mut Plan, decision: RunDecision) {
    if let RunDecision::BelowHigh { high, .. } = decision {
        for d in plan
            .decisions
            .iter_mut()
            .filter(|d| d.action == Action::Remove)
        {
            d.action = Action::Keep;
            d.reasons.push(Reason::BelowHigh(format!("{high}%")));
        }
    }
}

/// The kind of a reason (`in-use`, `pinned`, `allowlist`, `excluded`, …): its text up to
/// the first colon. Metrics count kept images by kind, not by container or file.
pub(crate) fn reason_kind(reason: &Reason) -> String {
    let text = reason.to_string();
    match text.split_once(':') {
        Some((kind, _)) => kind.to_string(),
        None => text,
    }
}

/// `--high-usage` must lie above the low mark it prunes down to.
pub(crate) fn check_marks(high: Option<f64>, low: Option<f64>) -> Result<(), String> {
    match (high, low) {
        (Some(_), None) => {
            Err("--high-usage needs --target-usage (the low mark a run prunes down to)".into())
        }
        (Some(h), Some(l)) if h <= l => Err(format!(
            "--high-usage {h}% must be above --target-usage (--low-usage) {l}%"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn decide_follows_the_high_mark() {
        let fs = |used| {
            Some(FsUsage {
                used,
                capacity: 100 * GIB,
            })
        };
        let cases: &[(Option<FsUsage>, Option<f64>, bool)] = &[
            // (usage, high mark, prunes?)
            (fs(90 * GIB), Some(85.0), true),
            (fs(85 * GIB), Some(85.0), false),
            (fs(10 * GIB), Some(85.0), false),
            (fs(10 * GIB), None, true),
            (None, Some(85.0), true),
            (None, None, true),
            (
                Some(FsUsage {
                    used: 0,
                    capacity: 0,
                }),
                Some(0.0),
                false,
            ),
        ];
        for (i, (usage, high, prunes)) in cases.iter().enumerate() {
            let d = decide(*usage, *high);
            assert_eq!(d == RunDecision::Prune, *prunes, "case {i}: {d:?}");
        }
        assert_eq!(
            decide(fs(50 * GIB), Some(80.0)),
            RunDecision::BelowHigh {
                percent: 50.0,
                high: 80.0
            }
        );
    }

    #[test]
    fn next_delay_keeps_start_to_start_intervals_with_jitter() {
        let s = Duration::from_secs;
        let cases = [
            // (interval, elapsed, random, delay)
            (s(60), s(0), 0.0, s(60)),
            (s(60), s(10), 0.0, s(50)),
            (s(60), s(10), 1.0, s(56)),
            (s(60), s(10), 0.5, s(53)),
            (s(60), s(70), 0.0, s(0)),
            (s(60), s(65), 1.0, s(1)),
            (s(100), s(0), 7.0, s(110)),
            (s(100), s(0), -1.0, s(100)),
        ];
        for (interval, elapsed, random, want) in cases {
            assert_eq!(
                next_delay(interval, elapsed, random),
                want,
                "{interval:?} {elapsed:?} {random}"
            );
        }
    }

    #[test]
    fn marks_must_be_ordered() {
        assert!(check_marks(None, None).is_ok());
        assert!(check_marks(None, Some(70.0)).is_ok());
        assert!(check_marks(Some(85.0), Some(70.0)).is_ok());
        assert!(check_marks(Some(85.0), None).is_err());
        assert!(check_marks(Some(70.0), Some(70.0)).is_err());
        assert!(check_marks(Some(60.0), Some(70.0)).is_err());
    }

    #[test]
    fn the_image_filesystem_is_the_snapshotters() {
        let two = [
            "/var/lib/containerd/io.containerd.snapshotter.v1.native",
            "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/",
        ];
        let cases: [(&[&str], Option<&str>, Option<usize>); 6] = [
            (&two, Some("overlayfs"), Some(1)),
            (&two, Some("native"), Some(0)),
            (&two, Some("zfs"), Some(0)),
            (&two, None, Some(0)),
            (&["", "/x"], None, Some(1)),
            (&[], Some("overlayfs"), None),
        ];
        for (mounts, snapshotter, want) in cases {
            assert_eq!(
                image_filesystem(mounts, snapshotter),
                want,
                "{mounts:?} {snapshotter:?}"
            );
        }
    }
}
