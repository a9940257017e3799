//! `crimg prune --every`: the prune repeated until SIGTERM or SIGINT, one summary line
//! per run on stderr, metrics after each run. What to decide lives in
//! [`crate::plan::schedule`]; this module only waits, runs and reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::app::metrics;
use crate::app::prune::{self, RunReport};
use crate::app::{Outcome, Settings};
use crate::cli::{OutputFormat, PruneArgs};
use crate::plan::schedule;
use crate::render::json;

/// Set by SIGTERM or SIGINT; tells a run whether it may still be abandoned.
#[derive(Default)]
pub(crate) struct LoopStop {
    pub(crate) signalled: CancellationToken,
    /// Set when a run starts removing: from then on it finishes before the loop stops.
    pub(crate) removing: AtomicBool,
}

pub(crate) async fn run(settings: Settings, args: PruneArgs, every: Duration) -> Result<Outcome> {
    // Installed before the first wait, so a signal at any moment stops the loop cleanly.
    let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    let stop = Arc::new(LoopStop::default());
    let watcher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            stop.signalled.cancel();
        })
    };
    let mut metrics = args
        .metrics_file
        .as_ref()
        .map(|path| (path.clone(), metrics::PruneMetrics::load(path, &args)));
    settings.info(format_args!(
        "pruning every {} (plus up to {}% at random) until SIGTERM or SIGINT",
        crate::model::human_duration(every),
        (schedule::JITTER * 100.0) as u32
    ));
    let mut delay = Duration::ZERO;
    let mut runs = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.signalled.cancelled() => break,
        }
        runs += 1;
        let started = SystemTime::now();
        let clock = Instant::now();
        stop.removing.store(false, Ordering::SeqCst);
        // A signal abandons a run that has not started removing: until then it only
        // reads. Once removals have started they finish (each is a few record deletes,
        // bounded by --timeout), so no image is left half-removed; then the loop stops.
        let report = {
            let once = prune::once(&settings, &args, false, Some(&*stop));
            tokio::pin!(once);
            let early = tokio::select! {
                r = &mut once => Some(r),
                _ = stop.signalled.cancelled() => None,
            };
            match early {
                Some(r) => Some(r),
                None if stop.removing.load(Ordering::SeqCst) => Some(once.await),
                None => None,
            }
        };
        let Some(report) = report else {
            settings.info(format_args!(
                "prune run {runs}: abandoned before removing anything"
            ));
            break;
        };
        let elapsed = clock.elapsed();
        if let Some((path, m)) = &mut metrics {
            m.record(started, &report);
            if let Err(e) = m.write(path) {
                settings.warn(format_args!("{e:#}"));
            }
        }
        let stopping = stop.signalled.is_cancelled();
        let next = schedule::next_delay(every, elapsed, fastrand::f64());
        summary(
            &settings,
            runs,
            &report,
            args.dry_run,
            elapsed,
            (!stopping).then_some(next),
        )?;
        if stopping {
            break;
        }
        delay = next;
    }
    watcher.abort();
    settings.info("stopping");
    Ok(Outcome::Done)
}

/// One line on stderr: text, or a JSON object with `-o json`. Written even with `-q`:
/// it is the loop's only report.
fn summary(
    settings: &Settings,
    run: u64,
    report: &Result<RunReport>,
    dry_run: bool,
    elapsed: Duration,
    next: Option<Duration>,
) -> Result<()> {
    let line = if settings.output == OutputFormat::Json {
        let r = report.as_ref().ok();
        let fs = r.and_then(|r| r.image_fs);
        serde_json::to_string(&json::PruneRun {
            run,
            result: result_name(report),
            dry_run,
            removed: r.map_or(0, |r| r.removed),
            reclaimed_bytes: r.map_or(0, |r| r.reclaimed_bytes),
            kept: r.map_or(0, |r| r.kept),
            failed: r.map_or(0, |r| r.failed),
            duration_seconds: elapsed.as_secs_f64(),
            image_fs_used_bytes: fs.map(|f| f.used),
            image_fs_size_bytes: fs.map(|f| f.capacity),
            error: report.as_ref().err().map(|e| format!("{e:#}")),
            next_run_seconds: next.map(|d| d.as_secs_f64()),
        })?
    } else {
        let mut line = format!("crimg: prune run {run}: ");
        match report {
            Err(e) => line.push_str(&format!("failed: {e:#}")),
            Ok(r) => {
                if let Some((percent, high)) = r.below_high {
                    line.push_str(&format!(
                        "image filesystem {percent:.1}% used, not above --high-usage {high}%; "
                    ));
                }
                let verb = if dry_run { "would remove" } else { "removed" };
                line.push_str(&format!(
                    "{verb} {} image(s), {} reclaimed; kept {}",
                    r.removed,
                    crate::model::human_size(r.reclaimed_bytes),
                    r.kept
                ));
                if r.failed > 0 {
                    line.push_str(&format!("; {} failed", r.failed));
                }
                if let Some(fs) = r.image_fs {
                    line.push_str(&format!("; image filesystem {:.1}% used", fs.percent()));
                }
            }
        }
        line.push_str(&format!("; took {:.1}s", elapsed.as_secs_f64()));
        match next {
            Some(d) => line.push_str(&format!(
                "; next in {}",
                crate::model::human_duration(Duration::from_secs(d.as_secs()))
            )),
            None => line.push_str("; stopping"),
        }
        line
    };
    eprintln!("{line}");
    Ok(())
}

/// The `result` of a run, as the summary line and the metrics name it.
pub(crate) fn result_name(report: &Result<RunReport>) -> &'static str {
    match report {
        Err(_) => "failed",
        Ok(r) if r.below_high.is_some() => "below-high",
        Ok(r) if r.outcome == Outcome::Partial => "partial",
        Ok(_) => "done",
    }
}
