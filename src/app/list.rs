//! `crimg list`: one row per image with its tags, pins, users and protections.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::app::exclude;
use crate::app::{Outcome, Session, Settings, inventory};
use crate::cli::{ListArgs, OutputFormat};
use crate::error::CrimgError;
use crate::model::{Image, User, short_id};
use crate::plan::protect::{Protection, Reason};
use crate::reference::pattern::RefPattern;
use crate::reference::{no_match_message, repository_of, tag_of};
use crate::render::table::Grid;
use crate::render::{self, json};

/// One image with what `list` shows about it.
struct Row<'a> {
    image: &'a Image,
    reasons: Vec<Reason>,
}

pub(crate) async fn run(settings: Settings, args: ListArgs) -> Result<Outcome> {
    let patterns = args
        .patterns
        .iter()
        .map(|p| RefPattern::new(p).map_err(|e| CrimgError::Usage(format!("pattern {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut session = Session::connect(settings).await?;
    let inv = inventory::gather(&mut session).await?;
    let settings = &session.settings;
    for w in &inv.warnings {
        settings.debug(w);
    }
    if !inv.containerd {
        settings.debug("containerd API not reachable: pins come from CRI only");
    }
    // PROTECTED says what a default prune would keep: layers 1-3 plus the exclusion
    // directory. A broken exclusion file must not hide the list; prune will refuse it.
    let excludes = exclude::load(&[], None, &[]).unwrap_or_else(|e| {
        settings.warn(format_args!("{e}; PROTECTED ignores exclusion files"));
        Vec::new()
    });
    let protection = Protection::new(true, excludes);
    // A pattern that selects nothing says so, with the names nearest to it; the list is
    // still what the other patterns select.
    for p in &patterns {
        if !inv.images.iter().any(|i| p.matches(i)) {
            settings.warn(no_match_message("pattern", &inv.images, &p.text));
        }
    }
    let mut rows: Vec<Row> = inv
        .images
        .iter()
        .filter(|i| patterns.is_empty() || patterns.iter().any(|p| p.matches(i)))
        .map(|image| Row {
            image,
            reasons: protection.reasons(image),
        })
        .filter(|r| keep(&args, r))
        .collect();
    rows.sort_by(|a, b| a.image.display_name().cmp(b.image.display_name()));

    match settings.output {
        OutputFormat::Json => render::print_json(&json::ImageList {
            schema: json::SCHEMA,
            images: rows.iter().map(to_json).collect(),
        })?,
        OutputFormat::Name => render::print_lines(rows.iter().flat_map(|r| names(r.image)))?,
        OutputFormat::Table | OutputFormat::Wide => {
            let wide = settings.output == OutputFormat::Wide;
            let grid = table(&rows, wide, &inv.users);
            render::print_grid(&grid, render::fit_width(wide || args.no_trunc))?;
        }
    }
    Ok(Outcome::Done)
}

/// Every name of an image, one per line: each tag, else each digest reference, else the ID.
fn names(image: &Image) -> Vec<&str> {
    if !image.repo_tags.is_empty() {
        image.repo_tags.iter().map(String::as_str).collect()
    } else if !image.repo_digests.is_empty() {
        image.repo_digests.iter().map(String::as_str).collect()
    } else {
        vec![image.id.as_str()]
    }
}

fn keep(args: &ListArgs, row: &Row) -> bool {
    let pinned = !row.image.pinned_by().is_empty();
    let used = row.image.in_use();
    let protected = !row.reasons.is_empty();
    !(args.pinned && !pinned
        || args.unpinned && pinned
        || args.in_use && !used
        || args.unused && used
        || args.protected && !protected
        || args.unprotected && protected
        || args.dangling && !row.image.repo_tags.is_empty())
}

fn to_json(row: &Row) -> json::ListedImage {
    let i = row.image;
    let pinned_by: Vec<&'static str> = i.pinned_by().into_iter().map(|p| p.as_str()).collect();
    json::ListedImage {
        id: i.id.clone(),
        repo_tags: i.repo_tags.clone(),
        repo_digests: i.repo_digests.clone(),
        size: i.size,
        pinned: !pinned_by.is_empty(),
        pinned_by,
        in_use: json::InUse {
            containers: i.containers.clone(),
            sandboxes: i.sandboxes.clone(),
        },
        protected: row.reasons.iter().map(ToString::to_string).collect(),
        created_at: i.created_at().map(render::rfc3339),
    }
}

/// One line per tag (an untagged image: one line, tag `<none>`), so that every line is
/// whole and names its image; PROTECTED gives way when the terminal is narrow.
fn table(rows: &[Row], wide: bool, users: &BTreeMap<String, User>) -> Grid {
    let mut header = vec![
        "IMAGE",
        "TAG",
        "IMAGE ID",
        "SIZE",
        "PINNED",
        "IN USE",
        "PROTECTED",
    ];
    if wide {
        header.extend(["DIGEST", "CREATED"]);
    }
    // PINNED and IN USE are left out first on a narrow terminal: PROTECTED says both.
    let mut t = Grid::new(&header)
        .shrink_column(6)
        .drop_when_narrow(&[5, 4]);
    for r in rows {
        let i = r.image;
        let names: Vec<(&str, &str)> = if i.repo_tags.is_empty() {
            let repo = i
                .repo_digests
                .first()
                .map_or("<none>", |d| repository_of(d));
            vec![(repo, "<none>")]
        } else {
            i.repo_tags
                .iter()
                .map(|t| (repository_of(t), tag_of(t).unwrap_or("<none>")))
                .collect()
        };
        let pinned = i.pinned_by();
        let pinned = if pinned.is_empty() {
            "-".to_string()
        } else {
            pinned
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let in_use = match (i.containers.len(), i.sandboxes.len()) {
            (0, 0) => "-".to_string(),
            (c, 0) => format!("{c} ctr"),
            (0, s) => format!("{s} pod"),
            (c, s) => format!("{c} ctr, {s} pod"),
        };
        let protected = if r.reasons.is_empty() {
            "-".to_string()
        } else {
            r.reasons
                .iter()
                .map(|reason| render::reason(reason, wide, users))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut digests: Vec<&str> = i
            .repo_digests
            .iter()
            .map(|d| d.split_once('@').map_or(d.as_str(), |(_, h)| h))
            .collect();
        digests.sort_unstable();
        digests.dedup();
        for (repo, tag) in names {
            let mut cells = vec![
                repo.to_string(),
                tag.to_string(),
                short_id(&i.id).to_string(),
                crate::model::human_size(i.size),
                pinned.clone(),
                in_use.clone(),
                protected.clone(),
            ];
            if wide {
                cells.push(if digests.is_empty() {
                    "<none>".into()
                } else {
                    digests.join(",")
                });
                cells.push(i.created_at().map_or_else(|| "-".into(), render::rfc3339));
            }
            t.row(cells, render::compact_reasons(&r.reasons));
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `--dangling` keeps the images no tag names (a digest reference or nothing at all).
    #[test]
    fn dangling_selects_untagged_images() {
        let tagged = Image {
            id: "sha256:aa".into(),
            repo_tags: vec!["docker.io/library/a:1".into()],
            ..Image::default()
        };
        let by_digest = Image {
            id: "sha256:bb".into(),
            repo_digests: vec!["docker.io/library/a@sha256:cc".into()],
            ..Image::default()
        };
        let bare = Image {
            id: "sha256:dd".into(),
            ..Image::default()
        };
        let cli = crate::cli::Cli::try_parse_from(["crimg", "list", "--dangling"]).unwrap();
        let crate::cli::Command::List(args) = cli.command else {
            panic!("not list")
        };
        let kept: Vec<&str> = [&tagged, &by_digest, &bare]
            .into_iter()
            .filter(|image| {
                keep(
                    &args,
                    &Row {
                        image,
                        reasons: Vec::new(),
                    },
                )
            })
            .map(|i| i.id.as_str())
            .collect();
        assert_eq!(kept, ["sha256:bb", "sha256:dd"]);
    }
}
