//! Output: tables for people, JSON for scripts. JSON types live in `json` and are kept
//! apart from internal types so renaming internals cannot break scripts.

pub(crate) mod json;
pub(crate) mod metrics;

use std::io::{IsTerminal, Write};

use comfy_table::{ContentArrangement, Table, presets};

use crate::model::short_id;
use crate::plan::protect::Reason;

/// A borderless table like crictl's that wraps to the terminal width when stdout is one.
pub(crate) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_header(header.iter().copied())
        .set_content_arrangement(if std::io::stdout().is_terminal() {
            ContentArrangement::Dynamic
        } else {
            ContentArrangement::Disabled
        });
    // crictl-like columns: flush left, separated by spaces.
    for column in t.column_iter_mut() {
        column.set_padding((0, 3));
    }
    t
}

/// Prints a table followed by a newline; trims the trailing spaces comfy-table leaves.
pub(crate) fn print_table(t: &Table) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for line in t.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Prints one line per item (the `name` output format).
pub(crate) fn print_lines<I, S>(lines: I) -> std::io::Result<()>
where
    I: IntoIterator<Item = S>,
    S: std::fmt::Display,
{
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Writes a value as pretty JSON with a final newline to stdout.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)
}

/// Bytes in decimal units, as crictl prints them (`12.3MB`).
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else if value < 10.0 {
        format!("{value:.2}{}", UNITS[unit])
    } else if value < 100.0 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

/// A protection reason as tables show it: container and sandbox IDs shortened to 12 hex,
/// as every ID in a table is, unless `wide`.
pub(crate) fn reason(reason: &Reason, wide: bool) -> String {
    match reason {
        Reason::InUseContainer(id) if !wide => format!("in-use:container:{}", short_id(id)),
        Reason::InUseSandbox(id) if !wide => format!("in-use:sandbox:{}", short_id(id)),
        other => other.to_string(),
    }
}

/// RFC 3339 in UTC, seconds precision.
pub(crate) fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let cases = [
            (0, "0B"),
            (999, "999B"),
            (1000, "1.00kB"),
            (12_345_678, "12.3MB"),
            (123_456_789, "123MB"),
            (5_000_000_000, "5.00GB"),
        ];
        for (n, want) in cases {
            assert_eq!(human_size(n), want);
        }
    }
}
