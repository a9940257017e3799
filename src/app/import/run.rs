//! The command: every item in turn, then the report and the exit status.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Result, anyhow};

use super::importer::Importer;
use super::inputs::{Item, expand};
use super::many::import_many;
use super::report::Report;
use crate::app::{Outcome, Session, Settings};
use crate::archive::read::Input;
use crate::cli::ImportArgs;

pub(crate) async fn run(settings: Settings, args: ImportArgs) -> Result<Outcome> {
    if args.watch {
        return super::watch::run(settings, args).await;
    }
    // The walk runs on its own thread and checks `stop` at every entry: a signal ends it.
    let stop = Arc::new(AtomicBool::new(false));
    let walking = tokio::task::spawn_blocking({
        let (paths, stop) = (args.paths.clone(), stop.clone());
        move || expand(&paths, &stop)
    });
    let expanded = tokio::select! {
        r = walking => r.map_err(|e| anyhow!("walking the directories: {e}"))?,
        signal = crate::error::interrupted() => {
            stop.store(true, Ordering::Relaxed);
            return Err(crate::error::CrimgError::Interrupted {
                signal,
                what: "nothing was imported".into(),
            }
            .into());
        }
    };
    let Ok(expanded) = expanded else {
        // Only a signal stops the walk, and that is handled above.
        return Err(anyhow!("the directory walk was stopped"));
    };
    for w in &expanded.warnings {
        settings.warn(w);
    }
    let items = expanded.items;
    if items.is_empty() {
        return Err(crate::error::CrimgError::Usage(
            "no archive to import in the given directories".into(),
        )
        .into());
    }
    if items
        .iter()
        .filter(|i| **i == Item::Archive(Input::Stdin))
        .count()
        > 1
    {
        return Err(crate::error::CrimgError::Usage(
            "`-` (standard input) may be given once".into(),
        )
        .into());
    }
    let start = Instant::now();
    let mut session = Session::connect(settings).await?;
    let importer = Importer::new(&mut session, &args).await?;
    let single = items.len() == 1;
    let mut report = Report::default();
    let work = import_all(&importer, &session, &items, single, &mut report);
    let lost = tokio::select! {
        lost = work => lost,
        // Dropping `work` stops the import in progress; its lease goes now, and with
        // it whatever it had written. Archives imported before the signal stay.
        signal = crate::error::interrupted() => {
            importer.abandon().await;
            return Err(crate::error::CrimgError::Interrupted {
                signal,
                what: "the import in progress was undone".into(),
            }
            .into());
        }
    };
    report.render(&importer.settings, start.elapsed())?;
    let images: usize = report.imported.iter().map(|(_, i)| i.len()).sum();
    // A lost runtime is no partial success: it is unreachable (exit 3), whatever was
    // imported before.
    if let Some(lost) = lost {
        if report.failed.len() == 1 && images == 0 {
            return Err(report.failed.remove(0).1);
        }
        return Err(crate::error::CrimgError::Lost {
            shown: format!(
                "{} of {} item(s) failed or were not attempted, {lost}",
                report.failed.len(),
                items.len()
            ),
            lost,
        }
        .into());
    }
    match (report.failed.len(), images) {
        (0, _) => Ok(Outcome::Done),
        (_, n) if n > 0 => Ok(Outcome::Partial),
        // The item's own error, so its kind decides the exit code.
        (1, _) => Err(report.failed.remove(0).1),
        (n, _) => Err(anyhow!("all {n} imports failed")),
    }
}

/// Imports every item (several at once, see [`import_many`]), recording what happened in
/// `report` in input order. Once the connection to the runtime is lost, the items left
/// are not attempted (each would fail the same way) but recorded as failed for that
/// reason; returns the socket and why.
async fn import_all(
    importer: &Importer,
    session: &Session,
    items: &[Item],
    single: bool,
    report: &mut Report,
) -> Option<crate::error::ConnectionLost> {
    import_many(importer, session, items, |i, r| {
        let file = items[i].file();
        match r {
            Ok(res) => {
                // A lone failure is the command's error, printed once at the end.
                let lone = single && res.images.is_empty() && res.failures.len() == 1;
                for f in res.failures {
                    let e = f.context(file.clone());
                    if !lone {
                        crate::exit::print_error(format_args!("{e:#}"));
                    }
                    report.failed.push((file.clone(), e));
                }
                report.written += res.written;
                if !res.images.is_empty() {
                    report.imported.push((file, res.images));
                }
            }
            Err(e) => {
                let e = e.context(file.clone());
                if !single {
                    crate::exit::print_error(format_args!("{e:#}"));
                }
                report.failed.push((file, e));
            }
        }
    })
    .await
}
