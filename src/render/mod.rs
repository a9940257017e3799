//! Output: tables for people, JSON for scripts. JSON types live in `json` and are kept
//! apart from internal types so renaming internals cannot break scripts.

pub(crate) mod json;
pub(crate) mod progress;
pub(crate) mod summary;
pub(crate) mod table;

use std::io::{IsTerminal, Write};

use comfy_table::{ContentArrangement, Table, presets};

use std::collections::BTreeMap;

use crate::model::{User, short_id};
use crate::plan::protect::Reason;

/// A borderless table like crictl's. Cells are never wrapped: a wrapped cell breaks
/// words and IDs on a terminal and rows in a pipe.
pub(crate) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_header(header.iter().copied())
        .set_content_arrangement(ContentArrangement::Disabled);
    // crictl-like columns: flush left, separated by spaces.
    for column in t.column_iter_mut() {
        column.set_padding((0, 3));
    }
    t
}

/// Set once from `-q`: the result printers then print nothing on stdout.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `-q`: nothing on stdout on success, for every command. Errors still go to stderr.
pub(crate) fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// Prints a table followed by a newline; trims the trailing spaces comfy-table leaves.
pub(crate) fn print_table(t: &Table) -> std::io::Result<()> {
    if quiet() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for line in t.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// The width tables fit on: the terminal's when stdout is one and the full text was not
/// asked for (`-o wide`, `--no-trunc`); `None` prints every cell whole.
pub(crate) fn fit_width(full: bool) -> Option<usize> {
    if full || !std::io::stdout().is_terminal() {
        return None;
    }
    Table::new().width().map(usize::from)
}

/// Prints a fitted table.
pub(crate) fn print_grid(grid: &table::Grid, width: Option<usize>) -> std::io::Result<()> {
    print_lines(grid.lines(width))
}

/// Prints one line per item (the `name` output format).
pub(crate) fn print_lines<I, S>(lines: I) -> std::io::Result<()>
where
    I: IntoIterator<Item = S>,
    S: std::fmt::Display,
{
    if quiet() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Writes a value as pretty JSON with a final newline to stdout.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> std::io::Result<()> {
    if quiet() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)
}

/// A protection reason as tables show it: container and sandbox IDs shortened to 12 hex,
/// as every ID in a table is; `full` keeps the whole ID and names the pod, the container
/// and its state (`-o wide`, `prune --why`).
pub(crate) fn reason(reason: &Reason, full: bool, users: &BTreeMap<String, User>) -> String {
    let who = |id: &str| {
        users
            .get(id)
            .map_or_else(|| " (no longer listed)".to_string(), |u| format!(" ({u})"))
    };
    match reason {
        Reason::InUseContainer(id) if !full => format!("in-use:container:{}", short_id(id)),
        Reason::InUseSandbox(id) if !full => format!("in-use:sandbox:{}", short_id(id)),
        Reason::InUseContainer(id) | Reason::InUseSandbox(id) => format!("{reason}{}", who(id)),
        other => other.to_string(),
    }
}

/// Reasons in their shortest form, for a table that must fit: every container (sandbox)
/// counted in one item, `in-use:sandbox ×3`; the others as they are.
pub(crate) fn compact_reasons(reasons: &[Reason]) -> Vec<String> {
    let mut items: Vec<(String, usize)> = Vec::new();
    for r in reasons {
        let key = match r {
            Reason::InUseContainer(_) => "in-use:container".to_string(),
            Reason::InUseSandbox(_) => "in-use:sandbox".to_string(),
            other => other.to_string(),
        };
        match items.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => items.push((key, 1)),
        }
    }
    items
        .into_iter()
        .map(|(k, n)| if n > 1 { format!("{k} ×{n}") } else { k })
        .collect()
}

/// RFC 3339 in UTC, seconds precision.
pub(crate) fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_compact_and_in_full() {
        let id = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
        let reasons = [
            Reason::InUseSandbox(id.into()),
            Reason::InUseSandbox("b".into()),
            Reason::InUseContainer("c".into()),
            Reason::Pinned(crate::model::PinSource::User),
            Reason::InUseSandbox("d".into()),
        ];
        assert_eq!(
            compact_reasons(&reasons),
            ["in-use:sandbox ×3", "in-use:container", "pinned:user"]
        );
        let users = BTreeMap::from([(
            id.to_string(),
            User {
                pod: "kube-system/coredns-1".into(),
                container: None,
                state: "ready".into(),
            },
        )]);
        assert_eq!(
            reason(&reasons[0], false, &users),
            "in-use:sandbox:0a1b2c3d4e5f"
        );
        assert_eq!(
            reason(&reasons[0], true, &users),
            format!("in-use:sandbox:{id} (pod kube-system/coredns-1, ready)")
        );
        assert_eq!(
            reason(&reasons[1], true, &users),
            "in-use:sandbox:b (no longer listed)"
        );
    }
}
