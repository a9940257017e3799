//! Prometheus metrics for node_exporter's textfile collector: one file, rewritten whole
//! after each prune run or import, atomically (a temp file in the same directory, synced,
//! then renamed), so the collector never reads half a file. Every value is a gauge: the
//! file describes the last run, and gauges read the same in the classic text format the
//! collector parses and in OpenMetrics.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use prometheus_client::encoding::text::encode_registry;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::app::Outcome;
use crate::app::prune::RunReport;
use crate::cli::PruneArgs;
use crate::plan::schedule::FsUsage;

/// Reason kinds always written for kept images, zero included, so alerts and graphs
/// never see a series vanish.
pub(crate) const KEPT_REASONS: [&str; 8] = [
    "in-use",
    "pinned",
    "allowlist",
    "excluded",
    "newer-than",
    "keep-last",
    "target-usage",
    "high-usage",
];

/// What the prune metrics file says; carried from run to run (and, for the last success
/// and the failure streak, from the file an earlier process wrote).
#[derive(Debug, Clone, Default)]
pub(crate) struct PruneMetrics {
    interval: Option<f64>,
    high: Option<f64>,
    low: Option<f64>,
    last_run: f64,
    last_success: Option<f64>,
    duration: f64,
    success: bool,
    consecutive_failures: i64,
    below_high: bool,
    removed: u64,
    reclaimed: u64,
    failed: u64,
    kept: BTreeMap<String, u64>,
    image_fs: Option<FsUsage>,
}

impl PruneMetrics {
    /// Starts from the file a previous run wrote, if any, so a restart (or the next run of
    /// a timer) does not forget when the last success was.
    pub(crate) fn load(path: &Path, args: &PruneArgs) -> PruneMetrics {
        let old = std::fs::read_to_string(path).unwrap_or_default();
        let value = |name: &str| {
            old.lines().find_map(|l| {
                let (n, v) = l.split_once(' ')?;
                (n == name).then(|| v.trim().parse::<f64>().ok()).flatten()
            })
        };
        PruneMetrics {
            interval: args.every.map(|d| d.as_secs_f64()),
            high: args.high_usage,
            low: args.target_usage,
            last_success: value("crimg_prune_last_success_timestamp_seconds"),
            consecutive_failures: value("crimg_prune_consecutive_failures").unwrap_or(0.0) as i64,
            ..PruneMetrics::default()
        }
    }

    /// Takes in the result of the run that started at `started`.
    pub(crate) fn record(&mut self, started: SystemTime, report: &Result<RunReport>) {
        let start = unix_seconds(started);
        self.last_run = start;
        self.duration = SystemTime::now()
            .duration_since(started)
            .unwrap_or_default()
            .as_secs_f64();
        let ok = report.as_ref().ok();
        self.success = ok.is_some_and(|r| r.outcome == Outcome::Done);
        if self.success {
            self.last_success = Some(start);
            self.consecutive_failures = 0;
        } else {
            self.consecutive_failures += 1;
        }
        self.below_high = ok.is_some_and(|r| r.below_high.is_some());
        self.removed = ok.map_or(0, |r| r.removed);
        self.reclaimed = ok.map_or(0, |r| r.reclaimed_bytes);
        self.failed = ok.map_or(0, |r| r.failed);
        self.kept = ok.map(|r| r.kept_by_reason.clone()).unwrap_or_default();
        self.image_fs = ok.and_then(|r| r.image_fs);
    }

    /// The file's text.
    pub(crate) fn encode(&self) -> String {
        let mut reg = Registry::default();
        let float = |reg: &mut Registry, name: &str, help: &str, v: f64| {
            let g = Gauge::<f64, AtomicU64>::default();
            g.set(v);
            reg.register(name, help, g);
        };
        let int = |reg: &mut Registry, name: &str, help: &str, v: u64| {
            let g = Gauge::<i64, AtomicI64>::default();
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
            reg.register(name, help, g);
        };
        float(
            &mut reg,
            "crimg_prune_last_run_timestamp_seconds",
            "When the last prune run started (Unix time)",
            self.last_run,
        );
        if let Some(t) = self.last_success {
            float(
                &mut reg,
                "crimg_prune_last_success_timestamp_seconds",
                "When the last prune run that removed everything it planned started (Unix time)",
                t,
            );
        }
        float(
            &mut reg,
            "crimg_prune_last_run_duration_seconds",
            "How long the last prune run took",
            self.duration,
        );
        int(
            &mut reg,
            "crimg_prune_last_run_success",
            "1 when the last prune run did all it planned, else 0",
            u64::from(self.success),
        );
        int(
            &mut reg,
            "crimg_prune_consecutive_failures",
            "Prune runs in a row that failed or left images it meant to remove",
            self.consecutive_failures.max(0) as u64,
        );
        int(
            &mut reg,
            "crimg_prune_last_run_below_high_usage",
            "1 when the last prune run removed nothing because the image filesystem was not above --high-usage",
            u64::from(self.below_high),
        );
        int(
            &mut reg,
            "crimg_prune_images_removed",
            "Images the last prune run removed",
            self.removed,
        );
        int(
            &mut reg,
            "crimg_prune_reclaimed_bytes",
            "Bytes the last prune run reclaimed (the removed images' sizes)",
            self.reclaimed,
        );
        int(
            &mut reg,
            "crimg_prune_images_failed",
            "Images the last prune run failed to remove",
            self.failed,
        );
        let kept = Family::<Vec<(String, String)>, Gauge>::default();
        let mut reasons: BTreeMap<&str, u64> = KEPT_REASONS.iter().map(|r| (*r, 0)).collect();
        for (k, n) in &self.kept {
            reasons.insert(k, *n);
        }
        for (reason, n) in reasons {
            kept.get_or_create(&vec![("reason".to_string(), reason.to_string())])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        reg.register(
            "crimg_prune_images_kept",
            "Images the last prune run kept, by kind of reason (an image with several kinds counts in each)",
            kept,
        );
        if let Some(fs) = self.image_fs {
            int(
                &mut reg,
                "crimg_image_fs_used_bytes",
                "Bytes used on the image filesystem after the last prune run",
                fs.used,
            );
            int(
                &mut reg,
                "crimg_image_fs_size_bytes",
                "Size of the image filesystem",
                fs.capacity,
            );
        }
        for (name, help, v) in [
            (
                "crimg_prune_interval_seconds",
                "The --every interval",
                self.interval,
            ),
            (
                "crimg_prune_high_usage_percent",
                "The --high-usage mark",
                self.high,
            ),
            (
                "crimg_prune_target_usage_percent",
                "The --target-usage (low) mark",
                self.low,
            ),
        ] {
            if let Some(v) = v {
                float(&mut reg, name, help, v);
            }
        }
        text(&reg)
    }

    pub(crate) fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.encode())
    }
}

/// What `import --watch` has done since it started.
#[derive(Debug, Clone, Default)]
pub(crate) struct ImportMetrics {
    path: Option<PathBuf>,
    pub(crate) archives_imported: u64,
    pub(crate) archives_failed: u64,
    pub(crate) images_imported: u64,
    pub(crate) last_import: Option<f64>,
}

impl ImportMetrics {
    /// Checks `--metrics-file` (a usage error when it cannot be one) and writes the zeros,
    /// so the file exists from the watcher's start. A file that cannot be written (a
    /// read-only or full filesystem) is a warning, as at every later write: the imports
    /// matter more than their metrics.
    pub(crate) fn start(
        path: Option<PathBuf>,
        settings: &crate::app::Settings,
    ) -> Result<ImportMetrics> {
        let m = ImportMetrics {
            path,
            ..ImportMetrics::default()
        };
        if let Some(p) = &m.path {
            check_target(p).map_err(|e| crate::error::CrimgError::Usage(format!("{e:#}")))?;
            if let Err(e) = m.write(p) {
                settings.warn(format_args!("{e:#}"));
            }
        }
        Ok(m)
    }

    /// One archive (or list) imported with `images` images, or failed; rewrites the file.
    /// A file that cannot be written is a warning: the imports go on.
    pub(crate) fn record(&mut self, images: Option<usize>, settings: &crate::app::Settings) {
        match images {
            Some(n) => {
                self.archives_imported += 1;
                self.images_imported += n as u64;
                self.last_import = Some(unix_seconds(SystemTime::now()));
            }
            None => self.archives_failed += 1,
        }
        if let Some(p) = &self.path
            && let Err(e) = self.write(p)
        {
            settings.warn(format_args!("{e:#}"));
        }
    }

    pub(crate) fn encode(&self) -> String {
        let mut reg = Registry::default();
        for (name, help, v) in [
            (
                "crimg_import_archives_imported",
                "Archives and reference lists the watcher imported since it started",
                self.archives_imported,
            ),
            (
                "crimg_import_archives_failed",
                "Archives and reference lists the watcher failed to import since it started",
                self.archives_failed,
            ),
            (
                "crimg_import_images_imported",
                "Images the watcher imported since it started",
                self.images_imported,
            ),
        ] {
            let g = Gauge::<i64, AtomicI64>::default();
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
            reg.register(name, help, g);
        }
        if let Some(t) = self.last_import {
            let g = Gauge::<f64, AtomicU64>::default();
            g.set(t);
            reg.register(
                "crimg_import_last_success_timestamp_seconds",
                "When the watcher last imported an archive (Unix time)",
                g,
            );
        }
        text(&reg)
    }

    pub(crate) fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.encode())
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn text(reg: &Registry) -> String {
    let mut out = String::new();
    // The classic text format node_exporter reads has no `# EOF` line.
    encode_registry(&mut out, reg).expect("writing to a String cannot fail");
    if !out.ends_with('\n') {
        let _ = writeln!(out);
    }
    out
}

/// Fails when FILE cannot be a metrics file: its directory is missing, or something other
/// than a regular file is in its place. Checked before the first run.
pub(crate) fn check_target(path: &Path) -> Result<()> {
    let dir = parent(path);
    if !dir.is_dir() {
        bail!(
            "--metrics-file {}: the directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => bail!(
            "--metrics-file {}: exists and is not a regular file; crimg writes over regular \
             files only",
            path.display()
        ),
        _ => Ok(()),
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `text` to `path` through a temp file in the same directory: synced, made
/// readable by the collector (0644), then renamed over the old file.
pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<()> {
    write_atomic_in(path, text).with_context(|| format!("metrics file {}", path.display()))
}

fn write_atomic_in(path: &Path, text: &str) -> Result<()> {
    check_target(path)?;
    let dir = parent(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".crimg-metrics.")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temp file in {}", dir.display()))?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    rustix::fs::fchmod(tmp.as_file(), rustix::fs::Mode::from_raw_mode(0o644))
        .with_context(|| format!("setting the mode of {}", tmp.path().display()))?;
    tmp.persist(path)
        .with_context(|| format!("writing metrics to {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_metrics_describe_the_last_run_and_remember_the_last_success() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crimg.prom");
        let args = <crate::cli::Cli as clap::Parser>::try_parse_from([
            "crimg",
            "prune",
            "--every",
            "1h",
            "--high-usage",
            "85",
            "--target-usage",
            "70",
        ])
        .unwrap();
        let crate::cli::Command::Prune(args) = args.command else {
            panic!("parsed as prune")
        };
        let mut m = PruneMetrics::load(&path, &args);
        let t0 = UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let report = RunReport {
            removed: 2,
            reclaimed_bytes: 3000,
            kept: 3,
            kept_by_reason: [("in-use".to_string(), 2), ("pinned".to_string(), 1)].into(),
            image_fs: Some(FsUsage {
                used: 10,
                capacity: 100,
            }),
            ..RunReport::default()
        };
        m.record(t0, &Ok(report));
        m.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        for line in [
            "crimg_prune_last_run_timestamp_seconds 1000000.0",
            "crimg_prune_last_success_timestamp_seconds 1000000.0",
            "crimg_prune_images_removed 2",
            "crimg_prune_reclaimed_bytes 3000",
            "crimg_prune_images_kept{reason=\"in-use\"} 2",
            "crimg_prune_images_kept{reason=\"pinned\"} 1",
            "crimg_prune_images_kept{reason=\"excluded\"} 0",
            "crimg_image_fs_used_bytes 10",
            "crimg_image_fs_size_bytes 100",
            "crimg_prune_interval_seconds 3600.0",
            "crimg_prune_high_usage_percent 85.0",
            "crimg_prune_consecutive_failures 0",
            "# TYPE crimg_prune_images_removed gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
        assert!(!text.contains("# EOF"));

        // A new process after a failed run still knows the last success.
        let mut m = PruneMetrics::load(&path, &args);
        m.record(
            t0 + std::time::Duration::from_secs(60),
            &Err(anyhow::anyhow!("down")),
        );
        let text = m.encode();
        for line in [
            "crimg_prune_last_run_timestamp_seconds 1000060.0",
            "crimg_prune_last_success_timestamp_seconds 1000000.0",
            "crimg_prune_last_run_success 0",
            "crimg_prune_consecutive_failures 1",
            "crimg_prune_images_removed 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
        assert!(!text.contains("crimg_image_fs_used_bytes"));
    }

    #[test]
    fn metrics_never_replace_anything_but_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let e = write_atomic(&sub, "x 1\n").unwrap_err();
        assert!(format!("{e:#}").contains("not a regular file"), "{e:#}");
        assert!(sub.is_dir());
        let e = write_atomic(&dir.path().join("missing/x.prom"), "x 1\n").unwrap_err();
        assert!(format!("{e:#}").contains("does not exist"), "{e:#}");
        // Nothing but the target is left behind.
        let ok = dir.path().join("m.prom");
        write_atomic(&ok, "x 1\n").unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2);
    }
}
