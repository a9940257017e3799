//! `crimg prune`: gather, decide, apply (re-check, remove), show.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};

use crate::app::exclude;
use crate::app::metrics;
use crate::app::unattended::LoopStop;
use crate::app::{Outcome, Session, Settings, inventory, state};
use crate::cli::PruneArgs;
use crate::error::{ConnectionLost, CrimgError};
use crate::model::{Image, Inventory};
use crate::plan::protect::Protection;
use crate::plan::prune::{Decision, Plan, PrunePolicy, TargetUsage, mark_used, plan, recheck};
use crate::plan::schedule::{self, FsUsage};
use crate::reference::select;
use crate::render;

mod output;
mod remove;

use output::{render_plan, render_why};
use remove::remove;

/// How long to wait for CRI's image list to catch up with deleted records.
const CRI_CATCH_UP: Duration = Duration::from_secs(15);
/// How long CRI may take to drop a removed image by itself before crimg asks it to.
const CRI_GRACE: Duration = Duration::from_secs(2);

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

/// One prune: gather, decide, apply, show. `show` prints the table (or JSON) as a single
/// `crimg prune` does; the loop prints its own summary line instead. Under `--every`,
/// `stop` says whether a signal came: a run not yet removing gives up.
pub(crate) async fn once(
    settings: &Settings,
    args: &PruneArgs,
    show: bool,
    stop: Option<&LoopStop>,
) -> Result<RunReport> {
    let started = Instant::now();
    let mut g = gather(settings, args).await?;
    let now = SystemTime::now();
    let (mut plan, decision) = decide(args, &g, now);

    if let Some(reference) = &args.why {
        for image in select(&g.inv.images, reference)? {
            let decision = plan
                .decisions
                .iter()
                .find(|d| d.image.id == image.id)
                .expect("every image has a decision");
            render_why(&g.session.settings, decision, &g.inv.users)?;
        }
        return Ok(RunReport::default());
    }

    let (failed, lost) = apply(args, &mut g, &mut plan, now, stop).await?;
    if show {
        show_run(args, &g, &plan, &failed, decision, started)?;
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
        optional_image_fs(&g.session).await
    } else {
        g.fs_before
    };
    Ok(report(&plan, &failed, decision, image_fs))
}

/// What one run starts from: the operator's exclusions, the last-use state, the node's
/// images and users, and its image filesystem when a mark or the metrics need it.
struct Gathered {
    session: Session,
    inv: Inventory,
    protection: Protection,
    state_file: PathBuf,
    last_used: state::LastUsed,
    fs_before: Option<FsUsage>,
}

async fn gather(settings: &Settings, args: &PruneArgs) -> Result<Gathered> {
    // Bad exclusion input stops everything before the runtime is even asked.
    let excludes = exclude::load(
        &args.exclude_file,
        args.exclude_dir.as_deref(),
        &args.exclude,
    )
    .map_err(|e| CrimgError::Usage(format!("{e}; nothing was removed")))?;
    let state_file = args
        .state_file
        .clone()
        .unwrap_or_else(|| state::state_dir().join(crate::files::PRUNE_STATE_FILE));
    let last_used = state::load_last_used(&state_file)?;
    if let Some(why) = &last_used.unusable {
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
    Ok(Gathered {
        session,
        inv,
        protection: Protection::new(!args.no_builtin_allowlist, excludes),
        state_file,
        last_used,
        fs_before,
    })
}

/// The plan for every image, and whether the marks let this run remove anything: below
/// the high mark the run removes nothing, and says so as the reason.
fn decide(args: &PruneArgs, g: &Gathered, now: SystemTime) -> (Plan, schedule::RunDecision) {
    let decision = schedule::decide(g.fs_before, args.high_usage);
    let target = match (args.target_usage, g.fs_before) {
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
        protection: g.protection.clone(),
        older_than: args
            .older_than
            .as_ref()
            .map(|d| (d.duration, d.text.clone())),
        keep_last: args.keep_last,
        target,
    };
    let mut plan = plan(&g.inv.images, &policy, now, &g.last_used.times);
    schedule::hold(&mut plan, decision);
    (plan, decision)
}

/// Remembers what is in use, then removes what the plan says, after listing the node's
/// users once more (anything that started using an image since keeps it). A dry run
/// changes nothing, the state file included.
async fn apply(
    args: &PruneArgs,
    g: &mut Gathered,
    plan: &mut Plan,
    now: SystemTime,
    stop: Option<&LoopStop>,
) -> Result<(Vec<(Image, String)>, Option<ConnectionLost>)> {
    if args.dry_run {
        return Ok((Vec::new(), None));
    }
    // Remember what is in use now, for --target-usage on later runs.
    let mut times = std::mem::take(&mut g.last_used.times);
    mark_used(&mut times, &g.inv.images, now);
    match state::save_last_used(&g.state_file, &times, g.last_used.unusable.is_some()) {
        Ok(Some(aside)) => g.session.settings.warn(format_args!(
            "moved the unusable state file to {}",
            aside.display()
        )),
        Ok(None) => {}
        Err(e) => g.session.settings.warn(format_args!("{e:#}")),
    }
    g.last_used.times = times;
    if plan.removals().next().is_none() {
        return Ok((Vec::new(), None));
    }
    if let Some(stop) = stop {
        // Checked and set with nothing awaited in between: either the loop abandons this
        // run now, or it lets the removals finish.
        if stop.signalled.is_cancelled() {
            std::future::pending::<()>().await;
        }
        stop.removing.store(true, Ordering::SeqCst);
    }
    let fresh = inventory::gather(&mut g.session).await?;
    let newly_used = recheck(plan, &fresh.images);
    if newly_used > 0 {
        g.session.settings.warn(format_args!(
            "{newly_used} image(s) became used while planning; kept"
        ));
    }
    Ok(remove(&mut g.session, &g.inv, plan, args.parallel as usize).await)
}

/// The table (or JSON) and the summary line of a single run.
fn show_run(
    args: &PruneArgs,
    g: &Gathered,
    plan: &Plan,
    failed: &[(Image, String)],
    decision: schedule::RunDecision,
    started: Instant,
) -> Result<()> {
    let settings = &g.session.settings;
    if let schedule::RunDecision::BelowHigh { percent, high } = decision {
        settings.info(format_args!(
            "image filesystem {percent:.1}% used, not above --high-usage {high}%: nothing \
             to remove"
        ));
    }
    let summary = render_plan(
        settings,
        plan,
        failed,
        args.dry_run,
        args.no_trunc,
        &g.inv.users,
    )?;
    render::summary::print(settings.quiet, &summary.what(), started.elapsed());
    Ok(())
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
    // containerd 2.x reports one filesystem per snapshotter: the one CRI unpacks into
    // holds the images.
    let snapshotter = session.snapshotter().await.ok();
    let mounts: Vec<&str> = filesystems.iter().map(|f| f.mountpoint.as_str()).collect();
    let fs = schedule::image_filesystem(&mounts, snapshotter.as_deref())
        .map(|i| &filesystems[i])
        .context(
            "the runtime reports no image filesystem (CRI ImageFsInfo); --target-usage and \
             --high-usage cannot work",
        )?;
    if mounts.len() > 1 {
        session.settings.debug(format_args!(
            "CRI reports {} image filesystems ({}); using {} (snapshotter {})",
            mounts.len(),
            mounts.join(", "),
            fs.mountpoint,
            snapshotter.as_deref().unwrap_or("unknown")
        ));
    }
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
        crate::model::human_size(usage.used),
        crate::model::human_size(usage.capacity),
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
