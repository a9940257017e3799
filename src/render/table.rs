//! Tables that fit: on a terminal no word, reference or ID is ever broken; one column
//! (the least important) gives way by summarising itself. Piped, every row is one
//! complete line, so `grep` and `awk '{print $1}'` work.

use comfy_table::{ContentArrangement, Table, presets};

/// Spaces after every column, as crictl separates them.
const GAP: usize = 3;

/// A table whose rows are one line each, with at most one column that may be shortened
/// to fit a width.
pub(crate) struct Grid {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    /// The column that gives way, and per row its items in their compact form.
    shrink: Option<(usize, Vec<Vec<String>>)>,
    /// Columns left out, in this order, while the table is still too wide: those whose
    /// content the shrinking column repeats.
    droppable: Vec<usize>,
}

impl Grid {
    pub(crate) fn new(header: &[&str]) -> Grid {
        Grid {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            shrink: None,
            droppable: Vec::new(),
        }
    }

    /// Columns to leave out, first to last, when the table does not fit even with the
    /// shrinking column at its shortest.
    pub(crate) fn drop_when_narrow(mut self, columns: &[usize]) -> Grid {
        self.droppable = columns.to_vec();
        self
    }

    /// Makes column `index` the one that gives way when the table is too wide.
    pub(crate) fn shrink_column(mut self, index: usize) -> Grid {
        self.shrink = Some((index, Vec::new()));
        self
    }

    /// Adds a row. `compact` is the shrinking column's content as a list of items, shortest
    /// form first come first kept, used when its full text does not fit.
    pub(crate) fn row(&mut self, cells: Vec<String>, compact: Vec<String>) {
        let cells = cells.into_iter().map(|c| one_line(&c)).collect();
        self.rows.push(cells);
        if let Some((_, items)) = &mut self.shrink {
            items.push(compact);
        }
    }

    /// The table's lines. With `width` (a terminal's), the shrinking column is shortened
    /// so lines fit when the other columns leave room; no other cell is ever cut.
    pub(crate) fn lines(&self, width: Option<usize>) -> Vec<String> {
        let mut rows = self.rows.clone();
        let mut shown: Vec<usize> = (0..self.header.len()).collect();
        if let (Some(width), Some((col, compact))) = (width, &self.shrink) {
            let col = *col;
            let shortest = rows
                .iter()
                .zip(compact)
                .filter_map(|(row, items)| {
                    row.get(col).map(|c| {
                        chars(if items.is_empty() { c } else { &items[0] }) + rest_width(items)
                    })
                })
                .chain(self.header.get(col).map(|h| chars(h)))
                .max()
                .unwrap_or(0);
            let others = |shown: &[usize]| -> usize {
                shown
                    .iter()
                    .filter(|&&i| i != col)
                    .map(|&i| self.column_width(i) + GAP)
                    .sum()
            };
            for &d in &self.droppable {
                if others(&shown) + shortest <= width {
                    break;
                }
                shown.retain(|&i| i != d);
            }
            let budget = width
                .saturating_sub(others(&shown))
                .max(self.header.get(col).map_or(0, |h| chars(h)));
            for (row, items) in rows.iter_mut().zip(compact) {
                if let Some(cell) = row.get_mut(col) {
                    *cell = fit(cell, items, budget);
                }
            }
        }
        let pick = |cells: &[String]| -> Vec<String> {
            shown
                .iter()
                .filter_map(|&i| cells.get(i).cloned())
                .collect()
        };
        let mut t = Table::new();
        t.load_style(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(pick(&self.header));
        for row in rows {
            t.add_row(pick(&row));
        }
        for column in t.column_iter_mut() {
            column.set_padding((0, GAP as u16));
        }
        t.lines().map(|l| l.trim_end().to_string()).collect()
    }

    fn column_width(&self, i: usize) -> usize {
        self.rows
            .iter()
            .filter_map(|r| r.get(i))
            .chain(self.header.get(i))
            .map(|c| chars(c))
            .max()
            .unwrap_or(0)
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// A cell never spans lines: a row is one line however it is printed.
fn one_line(cell: &str) -> String {
    if cell.contains('\n') {
        cell.split('\n').collect::<Vec<_>>().join(", ")
    } else {
        cell.to_string()
    }
}

/// The width of `, +N` after the first of `items`.
fn rest_width(items: &[String]) -> usize {
    if items.len() > 1 {
        format!(", +{}", items.len() - 1).len()
    } else {
        0
    }
}

/// `full` when it fits in `budget` characters, else as many compact items as fit followed
/// by how many were left out (`in-use:sandbox ×3, +2`); when not even one fits, the kind
/// of the first (`in-use, +2`). Words are never cut, even when nothing fits.
pub(crate) fn fit(full: &str, compact: &[String], budget: usize) -> String {
    if chars(full) <= budget || compact.is_empty() {
        return full.to_string();
    }
    let with_rest = |k: usize| {
        let mut s = compact[..k].join(", ");
        if k < compact.len() {
            s.push_str(&format!(", +{}", compact.len() - k));
        }
        s
    };
    if let Some(s) = (1..=compact.len())
        .rev()
        .map(with_rest)
        .find(|s| chars(s) <= budget)
    {
        return s;
    }
    // Not even one item with the count: its kind alone (`in-use, +2`).
    let kind = compact[0].split([':', ' ']).next().unwrap_or_default();
    if compact.len() == 1 {
        kind.to_string()
    } else {
        format!("{kind}, +{}", compact.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node's list as a table: long references, an image with two tags, a pause image
    /// used by many pods and protected for several reasons.
    fn node() -> Grid {
        let mut g = Grid::new(&[
            "IMAGE",
            "TAG",
            "IMAGE ID",
            "SIZE",
            "PINNED",
            "IN USE",
            "PROTECTED",
        ])
        .shrink_column(6)
        .drop_when_narrow(&[5, 4]);
        let rows: [[&str; 7]; 4] = [
            [
                "docker.io/library/nginx",
                "1.25",
                "7ec7b00f7259",
                "72.0MB",
                "-",
                "-",
                "-",
            ],
            [
                "docker.io/library/nginx",
                "latest",
                "7ec7b00f7259",
                "72.0MB",
                "-",
                "-",
                "-",
            ],
            [
                "registry.k8s.io/pause",
                "3.9",
                "e6f181688397",
                "314kB",
                "cri",
                "3 pod",
                "in-use:sandbox:0a1b2c3d4e5f, in-use:sandbox:1a1b2c3d4e5f, \
                 in-use:sandbox:2a1b2c3d4e5f, pinned:cri, allowlist:sandbox-image",
            ],
            [
                "reg.local/team/app",
                "v2.1.0",
                "0123456789ab",
                "1.20GB",
                "-",
                "1 ctr",
                "in-use:container:abcdefabcdef",
            ],
        ];
        let compact: [&[&str]; 4] = [
            &[],
            &[],
            &["in-use:sandbox ×3", "pinned:cri", "allowlist:sandbox-image"],
            &["in-use:container"],
        ];
        for (cells, compact) in rows.into_iter().zip(compact) {
            g.row(
                cells.into_iter().map(String::from).collect(),
                compact.iter().map(|s| s.to_string()).collect(),
            );
        }
        g
    }

    const WHOLE: [&str; 9] = [
        "docker.io/library/nginx",
        "registry.k8s.io/pause",
        "reg.local/team/app",
        "v2.1.0",
        "latest",
        "7ec7b00f7259",
        "e6f181688397",
        "0123456789ab",
        "1.20GB",
    ];

    #[test]
    fn fits_80_120_200_columns_without_breaking_anything() {
        for width in [80, 120, 200] {
            let lines = node().lines(Some(width));
            assert_eq!(
                lines.len(),
                5,
                "header + one line per tag at {width}: {lines:#?}"
            );
            for line in &lines {
                assert!(
                    chars(line) <= width,
                    "{} > {width} columns: {line:?}",
                    chars(line)
                );
            }
            let text = lines.join("\n");
            for word in WHOLE {
                assert!(text.contains(word), "{word} broken at {width}:\n{text}");
            }
            // Every line of a tag starts with its whole repository and tag.
            assert!(
                lines[2].starts_with("docker.io/library/nginx"),
                "{lines:#?}"
            );
            assert!(lines[2].contains(" latest "), "{lines:#?}");
        }
    }

    #[test]
    fn the_least_important_column_summarises_itself() {
        let at_80 = node().lines(Some(80));
        assert!(at_80[0].ends_with("SIZE     PROTECTED"), "{at_80:#?}");
        assert!(
            at_80[3].ends_with("314kB    in-use:sandbox ×3, +2"),
            "{at_80:#?}"
        );
        let at_120 = node().lines(Some(120));
        assert!(
            at_120[0].contains("PINNED   IN USE   PROTECTED"),
            "{at_120:#?}"
        );
        assert!(
            at_120[3].ends_with("3 pod    in-use:sandbox ×3, pinned:cri, +1"),
            "{at_120:#?}"
        );
        let at_200 = node().lines(Some(200));
        assert!(
            at_200[3].ends_with("in-use:sandbox:2a1b2c3d4e5f, pinned:cri, allowlist:sandbox-image"),
            "{at_200:#?}"
        );
    }

    #[test]
    fn piped_rows_are_whole_and_greppable() {
        let lines = node().lines(None);
        assert_eq!(lines.len(), 5);
        let first: Vec<&str> = lines
            .iter()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap_or_default())
            .collect();
        assert_eq!(
            first,
            [
                "docker.io/library/nginx",
                "docker.io/library/nginx",
                "registry.k8s.io/pause",
                "reg.local/team/app"
            ]
        );
        assert!(lines[3].contains("in-use:sandbox:2a1b2c3d4e5f, pinned:cri"));
    }

    #[test]
    fn multi_line_cells_become_one_line() {
        let mut g = Grid::new(&["A", "B"]);
        g.row(vec!["x\ny".into(), "z".into()], vec![]);
        assert_eq!(g.lines(None), ["A      B", "x, y   z"]);
    }

    #[test]
    fn fit_cases() {
        let items: Vec<String> = ["aaaa", "bbbb", "cccc"].map(String::from).into();
        let full = "aaaa:1, bbbb:2, cccc:3";
        assert_eq!(fit(full, &items, 100), full);
        assert_eq!(fit(full, &items, 16), "aaaa, bbbb, cccc");
        assert_eq!(fit(full, &items, 15), "aaaa, bbbb, +1");
        assert_eq!(fit(full, &items, 9), "aaaa, +2");
        assert_eq!(fit(full, &items, 3), "aaaa, +2", "never cut a word");
        let pause: Vec<String> = ["in-use:sandbox", "allowlist:sandbox-image", "pinned:cri"]
            .map(String::from)
            .into();
        assert_eq!(fit(full, &pause, 16), "in-use, +2", "the kind alone");
        assert_eq!(fit(full, &[], 3), full);
    }
}
