//! `crimg pin` / `crimg unpin`: label edits on every containerd record of each image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use futures::stream::{self, StreamExt};

use crate::app::{Outcome, Session, Settings, inventory, status_text};
use crate::cli::{OutputFormat, PinArgs};
use crate::model::short_id;
use crate::plan::pin::{LabelEdit, PinAction, PinItem, PinOutcome, plan};
use crate::render::{self, json};

pub(crate) async fn run(settings: Settings, args: PinArgs, action: PinAction) -> Result<Outcome> {
    let refs = crate::app::refs::gather(&args.refs, args.from_file.as_deref())?;
    let mut session = Session::connect(settings).await?;
    let containerd = session.containerd().await?.clone();
    let inv = inventory::gather(&mut session).await?;
    let settings = &session.settings;
    let items = plan(&inv.images, &refs, action)?;

    // The same record may be named by several arguments; edit it once.
    let mut edits: BTreeMap<&str, &LabelEdit> = BTreeMap::new();
    for item in &items {
        if let PinOutcome::Changed { edits: e, .. } = &item.outcome {
            for edit in e {
                edits.insert(edit.record.as_str(), edit);
            }
        }
    }
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    if !args.dry_run {
        let results: Vec<(String, Result<()>)> = stream::iter(edits.values())
            .map(|e| {
                let c = &containerd;
                async move {
                    (
                        e.record.clone(),
                        c.update_labels(&e.record, &e.set, &e.remove).await,
                    )
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        for (record, r) in results {
            if let Err(e) = r {
                failed.insert(record, status_text(&e));
            }
        }
    }

    let mut out = json::PinResult {
        schema: json::SCHEMA,
        changed: vec![],
        unchanged: vec![],
        not_found: vec![],
    };
    let mut lines = Vec::new();
    let mut partial = false;
    let verb = match (action, args.dry_run) {
        (PinAction::Pin, false) => "pinned",
        (PinAction::Pin, true) => "would pin",
        (PinAction::Unpin, false) => "unpinned",
        (PinAction::Unpin, true) => "would unpin",
    };
    for PinItem { input, outcome } in &items {
        match outcome {
            PinOutcome::Changed {
                image_id,
                edits,
                had_k3s_pin,
            } => {
                let errors: Vec<String> = edits
                    .iter()
                    .filter_map(|e| failed.get(&e.record).map(|m| format!("{}: {m}", e.record)))
                    .collect();
                if errors.is_empty() {
                    out.changed.push(input.clone());
                    lines.push(format!(
                        "{verb}\t{input}\t{} ({} record{})",
                        short_id(image_id),
                        edits.len(),
                        if edits.len() == 1 { "" } else { "s" }
                    ));
                    if action == PinAction::Unpin && *had_k3s_pin {
                        warn_k3s_repin(settings, input);
                    }
                } else {
                    partial = true;
                    crate::exit::print_error(format_args!("{input}: {}", errors.join("; ")));
                }
            }
            PinOutcome::Unchanged { image_id } => {
                out.unchanged.push(input.clone());
                let state = if action == PinAction::Pin {
                    "already pinned"
                } else {
                    "not pinned"
                };
                lines.push(format!(
                    "unchanged\t{input}\t{} ({state})",
                    short_id(image_id)
                ));
            }
            PinOutcome::NotFound { error } => {
                partial = true;
                out.not_found.push(input.clone());
                crate::exit::print_error(error);
            }
        }
    }

    match settings.output {
        OutputFormat::Json => render::print_json(&out)?,
        OutputFormat::Name => render::print_lines(&out.changed)?,
        OutputFormat::Table | OutputFormat::Wide => {
            let mut t = render::table(&["ACTION", "REFERENCE", "IMAGE"]);
            for l in &lines {
                t.add_row(l.split('\t'));
            }
            render::print_table(&t)?;
        }
    }
    if partial {
        return Ok(Outcome::Partial);
    }
    Ok(Outcome::Done)
}

/// K3s re-pins, at its next start, every image its air-gap directory still holds.
fn warn_k3s_repin(settings: &Settings, input: &str) {
    let dir = std::env::var_os(crate::files::ENV_K3S_IMAGES_DIR)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(crate::files::K3S_IMAGES_DIR));
    if has_archives(&dir) {
        settings.warn(format_args!(
            "{input} was pinned by K3s; if an archive in {} still holds it, K3s will pin it again at its next start (remove it from that directory to keep it unpinned)",
            dir.display()
        ));
    }
}

fn has_archives(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            [
                ".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst", ".tar.bz2", ".tbz", ".tar.lz4",
                ".txt",
            ]
            .iter()
            .any(|ext| name.ends_with(ext))
        })
    })
}
