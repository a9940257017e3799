//! What `crimg prune` prints: the plan as a table or JSON, and `--why`.

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;

use crate::app::Settings;
use crate::cli::OutputFormat;
use crate::model::{Image, User};
use crate::plan::prune::{Action, Decision, Plan};
use crate::render::table::Grid;
use crate::render::{self, json};

/// Decisions in the documented order of every prune output: by first name, then ID.
pub(super) fn by_name<'a>(decisions: impl Iterator<Item = &'a Decision>) -> Vec<&'a Decision> {
    let mut v: Vec<&Decision> = decisions.collect();
    v.sort_by(|a, b| {
        (a.image.display_name(), &a.image.id).cmp(&(b.image.display_name(), &b.image.id))
    });
    v
}

pub(super) fn render_why(
    settings: &Settings,
    d: &Decision,
    users: &BTreeMap<String, User>,
) -> Result<()> {
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

pub(super) fn render_plan(
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
                // An untagged image by its short ID, as `list` shows it, unless wide.
                let name = match d.image.display_name() {
                    id if id == d.image.id && !(wide || no_trunc) => {
                        format!("sha256:{}", crate::model::short_id(id))
                    }
                    other => other.to_string(),
                };
                t.row(
                    vec![
                        name,
                        action.to_string(),
                        crate::model::human_size(d.image.size),
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
