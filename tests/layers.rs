//! crimg's modules in layers: every `crate::` path in `src/` goes down (or, where a layer
//! allows it, sideways), never up. The order, bottom first:
//!
//! 1. vocabulary: the words every other layer speaks. `files` (opening the files an
//!    operator names), `error` (the typed errors and the failed call), `exit` (exit
//!    statuses and the one classification of a result), `model` (domain types), `oci`
//!    (image formats: digests, platforms, compression, documents, GC labels),
//!    `reference` (references and the patterns that select images), `proto` (the
//!    generated API types). Inside the vocabulary a module imports only those listed
//!    before it, so it has no cycle either.
//! 2. `plan`: pure decisions, data in and plan out; no I/O, no clap.
//! 3. I/O: `archive`, `runtime`, `registry`, which may use one another.
//! 4. `render`: tables and JSON for what the layers below hold.
//! 5. the command line: `cli`, `complete`, `help`, `docs` (tests only: the committed
//!    generated files), which may use one another.
//! 6. `app`: one module per command, gathering, planning, applying and rendering.
//! 7. the top: `lib.rs`, `main.rs` (which names `crimg::`, not `crate::`) and `fuzzing`
//!    (the fuzz targets' bodies).
//!
//! A module missing from the table fails the check until it is given a layer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each top-level module and its layer, bottom first; the vocabulary in its own order.
const LAYERS: &[(&str, u8)] = &[
    ("files", 1),
    ("error", 1),
    ("exit", 1),
    ("model", 1),
    ("oci", 1),
    ("reference", 1),
    ("proto", 1),
    ("plan", 2),
    ("archive", 3),
    ("runtime", 3),
    ("registry", 3),
    ("render", 4),
    ("cli", 5),
    ("complete", 5),
    ("help", 5),
    ("docs", 5),
    ("app", 6),
    ("lib", 7),
    ("main", 7),
    ("fuzzing", 7),
];

/// The layers whose modules may import one another. In the vocabulary only modules
/// listed earlier in [`LAYERS`] may be imported.
const SIDEWAYS: &[u8] = &[3, 5, 7];

fn layer_name(layer: u8) -> &'static str {
    match layer {
        1 => "vocabulary",
        2 => "plan",
        3 => "I/O",
        4 => "render",
        5 => "command line",
        6 => "app",
        _ => "top",
    }
}

/// Where a module stands: its layer and its place in the table.
fn place(module: &str) -> Option<(u8, usize)> {
    LAYERS
        .iter()
        .position(|(m, _)| *m == module)
        .map(|i| (LAYERS[i].1, i))
}

/// Whether `from` may import `to`.
fn allowed(from: &str, to: &str) -> Result<(), String> {
    if from == to {
        return Ok(());
    }
    let (Some((fl, fi)), Some((tl, ti))) = (place(from), place(to)) else {
        return Err(format!(
            "{} is not in the layer table",
            if place(from).is_none() { from } else { to }
        ));
    };
    let ok = tl < fl || (tl == fl && (SIDEWAYS.contains(&fl) || (fl == 1 && ti < fi)));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "imports crate::{to} (layer {tl}, {}) from layer {fl} ({})",
            layer_name(tl),
            layer_name(fl)
        ))
    }
}

/// The top-level module a file under `src/` belongs to: `src/foo.rs` and `src/foo/...`
/// are `foo`; `src/lib.rs` is `lib`, `src/main.rs` is `main`.
fn module_of(relative: &Path) -> String {
    let first = relative.components().next().unwrap();
    let first = first.as_os_str().to_str().unwrap();
    first.strip_suffix(".rs").unwrap_or(first).to_string()
}

/// The code of a Rust file with comments and the contents of string and character
/// literals blanked out (newlines kept), so that only real paths remain.
fn code_only(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !(b[i - 1].is_alphanumeric() || b[i - 1] == '_'))
        {
            // A raw string: r"...", r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (1..=hashes).all(|k| b.get(j + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                blank(&mut out, b[j]);
                j += 1;
            }
            i = j;
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                if i < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{1}'), or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The first path segment after every `crate::` in the code: `crate::a::b` gives `a`,
/// `use crate::{a::x, b::{y, z}}` gives `a` and `b`.
fn crate_paths(code: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        let after = &rest[at + "crate::".len()..];
        rest = after;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `mycrate::`
        }
        let after = after.trim_start();
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            found.push(ident(&item));
        } else {
            found.push(ident(after));
        }
    }
    found.retain(|m| !m.is_empty() && m != "self");
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every import that breaks the layers, as `file: what`.
fn violations(files: &[(String, String, String)]) -> Vec<String> {
    let mut found = BTreeMap::new();
    for (file, module, src) in files {
        for to in crate_paths(&code_only(src)) {
            if let Err(why) = allowed(module, &to) {
                found.insert(format!("{file}: {why}"), ());
            }
        }
    }
    found.into_keys().collect()
}

#[test]
fn imports_go_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths.sort();
    assert!(paths.len() > 20, "no sources under {}", src.display());
    let files: Vec<(String, String, String)> = paths
        .iter()
        .map(|p| {
            let relative = p.strip_prefix(&src).unwrap();
            (
                format!("src/{}", relative.display()),
                module_of(relative),
                std::fs::read_to_string(p).unwrap(),
            )
        })
        .collect();
    let bad = violations(&files);
    assert!(
        bad.is_empty(),
        "imports against the layers (see tests/layers.rs):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_sees_what_it_must() {
    let file = |name: &str, module: &str, src: &str| {
        (name.to_string(), module.to_string(), src.to_string())
    };
    let bad = violations(&[
        file(
            "src/oci/doc.rs",
            "oci",
            "use crate::plan::platform::Platform;",
        ),
        file(
            "src/render/metrics.rs",
            "render",
            "use crate::{model::Image, app::{Outcome, Settings}};",
        ),
        file(
            "src/plan/export.rs",
            "plan",
            "fn f() { let _ = crate::render::human_size(1); }",
        ),
        file("src/error.rs", "error", "use crate::exit::ExitStatus;"),
        file("src/new.rs", "new", "use crate::model::Image;"),
        // Comments and literals are not imports; same-module and downward paths are fine.
        file(
            "src/runtime/mod.rs",
            "runtime",
            "//! see [`crate::app`]\n/* crate::cli */ const S: &str = \"crate::app\";\n\
             const R: &str = r#\"crate::render \"x\"\"#; const C: char = '\"';\n\
             use crate::runtime::x; use crate::{error::E, oci::{self, gc}};\n\
             fn f<'a>(x: &'a str) { crate::archive::read::f(x); }",
        ),
    ]);
    assert_eq!(
        bad,
        [
            "src/error.rs: imports crate::exit (layer 1, vocabulary) from layer 1 (vocabulary)",
            "src/new.rs: new is not in the layer table",
            "src/oci/doc.rs: imports crate::plan (layer 2, plan) from layer 1 (vocabulary)",
            "src/plan/export.rs: imports crate::render (layer 4, render) from layer 2 (plan)",
            "src/render/metrics.rs: imports crate::app (layer 6, app) from layer 4 (render)",
        ]
    );
}
