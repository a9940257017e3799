//! The one summary line every command ends with, on stderr:
//! `crimg: <what was done> in <seconds>s`. Sizes in decimal units, as every table and
//! progress bar shows them.

use std::time::Duration;

use crate::model::human_size;

/// `crimg: {what} in 1.2s`.
pub(crate) fn line(what: &str, elapsed: Duration) -> String {
    format!("crimg: {what} in {:.1}s", elapsed.as_secs_f64())
}

/// Prints a summary line on stderr unless quiet.
pub(crate) fn print(quiet: bool, what: &str, elapsed: Duration) {
    if !quiet {
        eprintln!("{}", line(what, elapsed));
    }
}

/// What one prune did (or, dry, would do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Prune {
    pub dry_run: bool,
    pub removed: usize,
    pub reclaimed_bytes: u64,
    pub kept: usize,
    pub failed: usize,
}

impl Prune {
    /// `removed 3 image(s), 12.3MB reclaimed; kept 5; 1 failed`, the part of the summary
    /// line before the time. Repeated runs print it once per run.
    pub(crate) fn what(&self) -> String {
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        let mut s = format!(
            "{verb} {} image(s), {} reclaimed{}; kept {}",
            self.removed,
            human_size(self.reclaimed_bytes),
            if self.dry_run { " (dry run)" } else { "" },
            self.kept
        );
        if self.failed > 0 {
            s.push_str(&format!("; {} failed", self.failed));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_lines() {
        let p = Prune {
            dry_run: false,
            removed: 3,
            reclaimed_bytes: 12_345_678,
            kept: 5,
            failed: 1,
        };
        assert_eq!(
            line(&p.what(), Duration::from_millis(1234)),
            "crimg: removed 3 image(s), 12.3MB reclaimed; kept 5; 1 failed in 1.2s"
        );
        let dry = Prune {
            dry_run: true,
            failed: 0,
            ..p
        };
        assert_eq!(
            dry.what(),
            "would remove 3 image(s), 12.3MB reclaimed (dry run); kept 5"
        );
    }
}
