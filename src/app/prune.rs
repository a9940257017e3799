//! `crimg prune`: gather, plan, re-check, remove, report.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use futures::stream::{self, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::unattended::LoopStop;
use crate::app::{Outcome, Session, Settings, inventory, state, status_text};
use crate::cli::{OutputFormat, PruneArgs};
use crate::error::{ConnectionLost, CrimgError};
use crate::model::{Image, Inventory, User};
use crate::plan::exclude;
use crate::plan::protect::Protection;
use crate::plan::prune::{
    Action, Decision, Plan, PrunePolicy, TargetUsage, mark_used, plan, recheck,
};
use crate::plan::schedule::{self, FsUsage};
use crate::reference::select;
use crate::render::table::Grid;
use crate::render::{self, json, metrics};

/// How long to wait for CRI's image list to catch up with deleted records.
const CRI_CATCH_UP: Duration = Duration::from_secs(15);

pub(crate) async fn run(settings: Settings, args: PruneArgs) -> Result<Outcome> {
    schedule::check_marks(args.high_usage, args.target_usage).map_err(CrimgError::Usage)?;
    if let Some(path) = &args.metrics_file {
        metrics::check_target(path).map_err(|e| CrimgError::Usage(format!("{e:#}")))?;
    }
    if let Some(every) = args.every {
        return crate::app::unattended::run(settings, args, every).await;
    }
    let started = SystemTime::now();
    let report = once(&settings, &args, true, None).await;
    if let Some(path) = &args.metrics_file {
        let mut m = metrics::PruneMetrics::load(path, &args);
        m.record(started, &report);
        if let Err(e) = m.write(path) {
            settings.warn(format_args!("{e:#}"));
        }
    }
    Ok(report?.outcome)
}

/// What one prune did, for the summary line and the metrics.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunReport {
    pub(crate) outcome: Outcome,
    /// Below the high mark: nothing was removed on purpose.
    pub(crate) below_high: Option<(f64, f64)>,
    pub(crate) removed: u64,
    pub(crate) reclaimed_bytes: u64,
    pub(crate) kept: u64,
    /// Kept images by reason kind; an image with reasons of several kinds counts in each.
    pub(crate) kept_by_reason: BTreeMap<String, u64>,
    pub(crate) failed: u64,
    /// The image filesystem after the run, when it could be measured.
    pub(crate) image_fs: Option<FsUsage>,
}

/// One prune. `show` prints the table (or JSON) as a single `crimg prune` does; the
/// loop prints its own summary line instead.
/// Under `--every`, `stop` says whether a signal came: a run not yet removing gives up.
pub(crate) async fn once(
    settings: &Settings,
    args: &PruneArgs,
    show: bool,
    stop: Option<&LoopStop>,
) -> Result<RunReport> {
    let started = Instant::now();
    // Bad exclusion input stops everything before the runtime is even asked.
    let mut warnings = Vec::new();
    let excludes = exclude::load(
        &args.exclude_file,
        args.exclude_dir.as_deref(),
        &args.exclude,
        &mut |w| warnings.push(w),
    )
    .map_err(|e| CrimgError::Usage(format!("{e}; nothing was removed")))?;
    for w in &warnings {
        settings.warn(w);
    }
    let state_file = args
        .state_file
        .clone()
        .unwrap_or_else(|| state::state_dir().join("state.json"));
    let state::LastUsed {
        times: mut last_used,
        unusable,
    } = state::load_last_used(&state_file)?;
    if let Some(why) = &unusable {
        settings.warn(format_args!(
            "state file {} is not usable ({why}); last-use times start afresh{}",
            state_file.display(),
            if args.dry_run || args.why.is_some() {
                " (this run leaves the file as it is)"
            } else {
                ", and the file is moved aside before a new one is written"
            }
        ));
    }

    let mut session = Session::connect(settings.clone()).await?;
    let inv = inventory::gather(&mut session).await?;
    for w in &inv.warnings {
        session.settings.warn(w);
    }
    // The image filesystem is needed for the marks; for metrics only, it is optional.
    let marks = args.target_usage.is_some() || args.high_usage.is_some();
    let fs_before = if marks {
        Some(image_fs(&session).await?)
    } else if args.metrics_file.is_some() {
        optional_image_fs(&session).await
    } else {
        None
    };
    let decision = schedule::decide(fs_before, args.high_usage);
    // Below the high mark the run removes nothing, and says so as the reason.
    let target = match (args.target_usage, fs_before) {
        (Some(percent), Some(fs)) if decision == schedule::RunDecision::Prune => {
            Some(TargetUsage {
                label: format!("{percent}%"),
                percent,
                capacity: fs.capacity,
                used: fs.used,
            })
        }
        _ => None,
    };
    let policy = PrunePolicy {
        protection: Protection::new(inv.sandbox_image.as_deref(), !args.no_builtin_allowlist),
        excludes,
        older_than: args
            .older_than
            .as_ref()
            .map(|d| (d.duration, d.text.clone())),
        keep_last: args.keep_last,
        target,
    };
    let now = SystemTime::now();
    let mut plan = plan(&inv.images, &policy, now, &last_used);
    schedule::hold(&mut plan, decision);

    if let Some(reference) = &args.why {
        for image in select(&inv.images, reference)? {
            let decision = plan
                .decisions
                .iter()
                .find(|d| d.image.id == image.id)
                .expect("every image has a decision");
            render_why(&session.settings, decision, &inv.users)?;
        }
        return Ok(RunReport::default());
    }

    // Remember what is in use now, for --target-usage on later runs. Not on a dry run:
    // a dry run changes nothing, the state file included.
    if !args.dry_run {
        mark_used(&mut last_used, &inv.images, now);
        match state::save_last_used(&state_file, &last_used, unusable.is_some()) {
            Ok(Some(aside)) => session.settings.warn(format_args!(
                "moved the unusable state file to {}",
                aside.display()
            )),
            Ok(None) => {}
            Err(e) => session.settings.warn(format_args!("{e:#}")),
        }
    }

    let mut failed: Vec<(Image, String)> = Vec::new();
    let mut lost = None;
    if !args.dry_run && plan.removals().next().is_some() {
        if let Some(stop) = stop {
            // Checked and set with nothing awaited in between: either the loop abandons
            // this run now, or it lets the removals finish.
            if stop.signalled.is_cancelled() {
                std::future::pending::<()>().await;
            }
            stop.removing.store(true, Ordering::SeqCst);
        }
        // Anything that started using an image since the plan was made keeps it.
        let fresh = inventory::gather(&mut session).await?;
        let newly_used = recheck(&mut plan, &fresh.images);
        if newly_used > 0 {
            session.settings.warn(format_args!(
                "{newly_used} image(s) became used while planning; kept"
            ));
        }
        (failed, lost) = remove(&mut session, &inv, &plan, args.parallel as usize).await;
    }
    if show {
        if let schedule::RunDecision::BelowHigh { percent, high } = decision {
            session.settings.info(format_args!(
                "image filesystem {percent:.1}% used, not above --high-usage {high}%: nothing \
                 to remove"
            ));
        }
        let summary = render_plan(
            &session.settings,
            &plan,
            &failed,
            args.dry_run,
            args.no_trunc,
            &inv.users,
        )?;
        render::summary::print(session.settings.quiet, &summary.what(), started.elapsed());
    }
    // Removals that failed because the runtime went away are no partial success: the
    // runtime is unreachable (exit 3), and the table above says what was done.
    if let Some(lost) = lost {
        let planned = plan.removals().count();
        return Err(CrimgError::Lost {
            shown: format!(
                "{} of {planned} removal(s) failed or were not attempted, {lost}; the others \
                 were done",
                failed.len()
            ),
            lost,
        }
        .into());
    }
    let image_fs = if plan.removals().next().is_some() && !args.dry_run {
        optional_image_fs(&session).await
    } else {
        fs_before
    };
    Ok(report(&plan, &failed, decision, image_fs))
}

/// Counts what a run did.
fn report(
    plan: &Plan,
    failed: &[(Image, String)],
    decision: schedule::RunDecision,
    image_fs: Option<FsUsage>,
) -> RunReport {
    let failed_ids: HashSet<&str> = failed.iter().map(|(i, _)| i.id.as_str()).collect();
    let removed: Vec<&Decision> = plan
        .removals()
        .filter(|d| !failed_ids.contains(d.image.id.as_str()))
        .collect();
    let mut kept_by_reason = BTreeMap::new();
    for d in plan.kept() {
        let kinds: BTreeSet<String> = d.reasons.iter().map(schedule::reason_kind).collect();
        for k in kinds {
            *kept_by_reason.entry(k).or_insert(0) += 1;
        }
    }
    RunReport {
        outcome: if failed.is_empty() {
            Outcome::Done
        } else {
            Outcome::Partial
        },
        below_high: match decision {
            schedule::RunDecision::BelowHigh { percent, high } => Some((percent, high)),
            schedule::RunDecision::Prune => None,
        },
        removed: removed.len() as u64,
        reclaimed_bytes: removed.iter().map(|d| d.image.size).sum(),
        kept: plan.kept().count() as u64,
        kept_by_reason,
        failed: failed.len() as u64,
        image_fs,
    }
}

/// The image filesystem's size and use, from the mount point CRI `ImageFsInfo` reports.
async fn image_fs(session: &Session) -> Result<FsUsage> {
    let filesystems = session.cri.image_fs_info().await?;
    let fs = filesystems
        .iter()
        .find(|f| !f.mountpoint.is_empty())
        .context(
            "the runtime reports no image filesystem (CRI ImageFsInfo); --target-usage and \
             --high-usage cannot work",
        )?;
    let st = rustix::fs::statvfs(fs.mountpoint.as_str()).with_context(|| {
        format!(
            "reading the size of the image filesystem at {} (in a container, mount it at \
             the same path)",
            fs.mountpoint
        )
    })?;
    let capacity = st.f_blocks.saturating_mul(st.f_frsize);
    let usage = FsUsage {
        capacity,
        used: capacity.saturating_sub(st.f_bfree.saturating_mul(st.f_frsize)),
    };
    session.settings.debug(format_args!(
        "image filesystem {}: {} of {} used ({:.1}%)",
        fs.mountpoint,
        render::human_size(usage.used),
        render::human_size(usage.capacity),
        usage.percent()
    ));
    Ok(usage)
}

/// [`image_fs`] for metrics only: a failure is a diagnostic, not an error.
async fn optional_image_fs(session: &Session) -> Option<FsUsage> {
    match image_fs(session).await {
        Ok(fs) => Some(fs),
        Err(e) => {
            session.settings.debug(format_args!("{e:#}"));
            None
        }
    }
}

/// Removes the planned images. Returns those that failed, with the error, and when
/// some failed because the connection to the runtime was lost, the socket and why.
/// Once a removal has failed that way no new one starts: the rest would fail alike, and
/// are reported as failed, not attempted, for that reason.
///
/// With containerd, every record of every image (tags, digests, the ID record CRI keeps)
/// is deleted without waiting for garbage collection, a bounded number at a time, then
/// one synchronous collection runs for the whole prune instead of one per image. CRI's
/// view follows the deletes; we wait until it has.
/// Other runtimes get bounded parallel CRI `RemoveImage` calls.
async fn remove(
    session: &mut Session,
    inv: &Inventory,
    plan: &Plan,
    parallel: usize,
) -> (Vec<(Image, String)>, Option<ConnectionLost>) {
    let removals: Vec<&Decision> = plan.removals().collect();
    let bar = progress(&session.settings, removals.len() as u64);
    let containerd = if inv.containerd {
        session.containerd().await.ok().cloned()
    } else {
        None
    };
    let stop = Stop::default();
    let results: Vec<(Image, Result<()>)> = match &containerd {
        Some(c) => {
            let with_records = removals.iter().filter(|d| !d.image.records.is_empty());
            let out: Vec<(Image, Result<()>)> = stream::iter(with_records)
                .map(|d| {
                    let (bar, stop) = (&bar, &stop);
                    async move {
                        if let Some(e) = stop.not_attempted() {
                            return (d.image.clone(), Err(e));
                        }
                        let mut result = Ok(());
                        for r in &d.image.records {
                            if let Err(e) = c.delete_image(r, false).await {
                                stop.check(&e);
                                result = Err(e);
                                break;
                            }
                        }
                        bar.inc(1);
                        (d.image.clone(), result)
                    }
                })
                .buffer_unordered(parallel)
                .collect()
                .await;
            // Images CRI lists without a containerd record of their own go through CRI.
            let cri_only = removals.iter().filter(|d| d.image.records.is_empty());
            let mut out = out;
            out.extend(cri_remove(session, cri_only, parallel, &bar, &stop).await);
            // One collection for the whole prune. Re-deleting a deleted record with `sync`
            // would answer NotFound before collecting anything; deleting an empty lease
            // with `sync` always collects. Not once the connection is lost: the call
            // would fail too, and a restarted containerd collects by itself.
            if stop.0.get().is_none()
                && out.iter().any(|(_, r)| r.is_ok())
                && let Err(e) = collect_garbage(c).await
            {
                session.settings.warn(format_args!(
                    "final garbage collection: {}",
                    status_text(&e)
                ));
            }
            out
        }
        None => cri_remove(session, removals.iter(), parallel, &bar, &stop).await,
    };
    bar.finish_and_clear();
    let removed: Vec<&str> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i.id.as_str())
        .collect();
    wait_for_cri(session, &removed).await;
    let lost = results
        .iter()
        .find_map(|(_, r)| r.as_ref().err().and_then(ConnectionLost::of));
    let failed = results
        .into_iter()
        .filter_map(|(i, r)| r.err().map(|e| (i, status_text(&e))))
        .collect();
    (failed, lost)
}

/// Runs containerd's garbage collection and waits for it.
async fn collect_garbage(c: &crate::runtime::containerd::Containerd) -> Result<()> {
    let lease = c.create_lease("prune-gc", Duration::from_secs(60)).await?;
    c.delete_lease(&lease, true).await
}

/// Set by the first removal that failed because the connection to the runtime was lost.
#[derive(Default)]
struct Stop(std::sync::OnceLock<ConnectionLost>);

impl Stop {
    fn check(&self, e: &anyhow::Error) {
        if let Some(lost) = ConnectionLost::of(e) {
            let _ = self.0.set(lost);
        }
    }

    /// The error of a removal not started because the connection was lost.
    fn not_attempted(&self) -> Option<anyhow::Error> {
        self.0.get().map(|lost| {
            CrimgError::Lost {
                shown: format!("not attempted: {lost}"),
                lost: lost.clone(),
            }
            .into()
        })
    }
}

async fn cri_remove<'a>(
    session: &Session,
    decisions: impl Iterator<Item = &'a &'a Decision>,
    parallel: usize,
    bar: &ProgressBar,
    stop: &Stop,
) -> Vec<(Image, Result<()>)> {
    let cri = &session.cri;
    stream::iter(decisions)
        .map(|d| async move {
            if let Some(e) = stop.not_attempted() {
                return (d.image.clone(), Err(e));
            }
            let r = cri.remove_image(&d.image.id).await;
            if let Err(e) = &r {
                stop.check(e);
            }
            bar.inc(1);
            (d.image.clone(), r)
        })
        .buffer_unordered(parallel)
        .collect()
        .await
}

/// Waits until CRI no longer lists the removed images, so the next command sees the
/// node as it now is.
async fn wait_for_cri(session: &Session, removed: &[&str]) {
    if removed.is_empty() {
        return;
    }
    let start = Instant::now();
    loop {
        match session.cri.list_images().await {
            Ok(images) => {
                let left = images
                    .iter()
                    .filter(|i| removed.contains(&i.id.as_str()))
                    .count();
                if left == 0 {
                    return;
                }
                if start.elapsed() > CRI_CATCH_UP {
                    session.settings.warn(format_args!(
                        "{left} removed image(s) still listed by the runtime after {}s",
                        CRI_CATCH_UP.as_secs()
                    ));
                    return;
                }
            }
            Err(_) => return,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn progress(settings: &Settings, len: u64) -> ProgressBar {
    if !settings.progress || len < 2 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), render::progress::target(true));
    bar.set_style(
        ProgressStyle::with_template("{spinner} removing {pos}/{len} images {wide_bar} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Decisions in the documented order of every prune output: by first name, then ID.
fn by_name<'a>(decisions: impl Iterator<Item = &'a Decision>) -> Vec<&'a Decision> {
    let mut v: Vec<&Decision> = decisions.collect();
    v.sort_by(|a, b| {
        (a.image.display_name(), &a.image.id).cmp(&(b.image.display_name(), &b.image.id))
    });
    v
}

fn render_why(settings: &Settings, d: &Decision, users: &BTreeMap<String, User>) -> Result<()> {
    let action = if d.action == Action::Remove {
        "remove"
    } else {
        "keep"
    };
    match settings.output {
        OutputFormat::Json => render::print_json(&json::PruneWhy {
            schema: json::SCHEMA,
            id: d.image.id.clone(),
            repo_tags: d.image.repo_tags.clone(),
            action,
            reasons: d.reasons.iter().map(ToString::to_string).collect(),
            users: json::users(&d.reasons, users),
        })?,
        _ => {
            let mut lines = vec![format!(
                "{} ({}): {action}",
                d.image.display_name(),
                d.image.id
            )];
            if d.reasons.is_empty() {
                lines.push("  nothing uses or protects it".into());
            }
            lines.extend(
                d.reasons
                    .iter()
                    .map(|r| format!("  {}", render::reason(r, true, users))),
            );
            render::print_lines(lines)?;
        }
    }
    Ok(())
}

fn render_plan(
    settings: &Settings,
    plan: &Plan,
    failed: &[(Image, String)],
    dry_run: bool,
    no_trunc: bool,
    users: &BTreeMap<String, User>,
) -> Result<render::summary::Prune> {
    let failed_ids: HashMap<&str, &str> = failed
        .iter()
        .map(|(i, e)| (i.id.as_str(), e.as_str()))
        .collect();
    let removed = by_name(
        plan.removals()
            .filter(|d| !failed_ids.contains_key(d.image.id.as_str())),
    );
    let kept = by_name(plan.kept());
    let mut failed: Vec<&(Image, String)> = failed.iter().collect();
    failed.sort_by(|(a, _), (b, _)| (a.display_name(), &a.id).cmp(&(b.display_name(), &b.id)));
    let summary = render::summary::Prune {
        dry_run,
        removed: removed.len(),
        reclaimed_bytes: removed.iter().map(|d| d.image.size).sum(),
        kept: kept.len(),
        failed: failed.len(),
    };
    match settings.output {
        OutputFormat::Json => render::print_json(&json::PruneResult {
            schema: json::SCHEMA,
            dry_run,
            removed: removed
                .iter()
                .map(|d| json::PrunedImage {
                    id: d.image.id.clone(),
                    repo_tags: d.image.repo_tags.clone(),
                    size: d.image.size,
                })
                .collect(),
            kept: kept
                .iter()
                .map(|d| json::KeptImage {
                    id: d.image.id.clone(),
                    repo_tags: d.image.repo_tags.clone(),
                    reasons: d.reasons.iter().map(ToString::to_string).collect(),
                })
                .collect(),
            failed: failed
                .iter()
                .map(|(i, e)| json::FailedImage {
                    id: i.id.clone(),
                    error: e.clone(),
                })
                .collect(),
            reclaimed_bytes: summary.reclaimed_bytes,
        })?,
        // Every name of what was (or would be) removed, one per line.
        OutputFormat::Name => {
            let mut names: Vec<&str> = removed.iter().flat_map(|d| d.image.references()).collect();
            if names.is_empty() {
                names = removed.iter().map(|d| d.image.id.as_str()).collect();
            }
            render::print_lines(names)?;
        }
        OutputFormat::Table | OutputFormat::Wide => {
            let wide = settings.output == OutputFormat::Wide;
            let mut t = Grid::new(&["IMAGE", "ACTION", "SIZE", "REASON"]).shrink_column(3);
            // Removals first, then what is kept; by name within each.
            let mut rows: Vec<&Decision> = plan.decisions.iter().collect();
            rows.sort_by(|a, b| {
                (
                    a.action != Action::Remove,
                    a.image.display_name(),
                    &a.image.id,
                )
                    .cmp(&(
                        b.action != Action::Remove,
                        b.image.display_name(),
                        &b.image.id,
                    ))
            });
            for d in rows {
                let (action, reason, compact) =
                    match (d.action, failed_ids.get(d.image.id.as_str())) {
                        (Action::Keep, _) => (
                            "keep",
                            d.reasons
                                .iter()
                                .map(|r| render::reason(r, wide, users))
                                .collect::<Vec<_>>()
                                .join(", "),
                            render::compact_reasons(&d.reasons),
                        ),
                        (Action::Remove, Some(e)) => ("failed", e.to_string(), Vec::new()),
                        (Action::Remove, None) if dry_run => {
                            ("remove", "unused".into(), Vec::new())
                        }
                        (Action::Remove, None) => ("removed", "unused".into(), Vec::new()),
                    };
                t.row(
                    vec![
                        d.image.display_name().to_string(),
                        action.to_string(),
                        render::human_size(d.image.size),
                        reason,
                    ],
                    compact,
                );
            }
            render::print_grid(&t, render::fit_width(wide || no_trunc))?;
        }
    }
    Ok(summary)
}
