//! crimg's benchmark: starts a private containerd (the e2e harness), generates its own
//! data, and times crimg against the reference way of doing the same job on identical
//! data. Prints median, min and max of each row and the ratio to its reference.
//!
//! `cargo bench --bench bench -- [prune] [list] [import] [export] [memory] [inspect] [bundle]
//!  [bundle-raw] [bundle-dir] [--runs N] [--images N] [--mib N] [--json FILE]`
//!
//! `cargo bench --bench bench -- bundle-files --out DIR [--raw]` only writes the bundle scenario's
//! archives (`bundle-MIB.tar`, `bundle-MIB.tar.zst`) for other tools, such as
//! `scripts/profile-containerd.sh`.
//!
//! Run as root on the same kind of machine as the tests (it starts containerd).

#[path = "../../tests/e2e/support/mod.rs"]
#[allow(dead_code, unused_imports, clippy::all)]
mod support;

mod bundle;
mod data;
mod import_export;
mod measure;
mod prune_list;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use support::Node;

use bundle::{bundle, bundle_dir_scenario, bundle_scenario};
use import_export::{export, import, inspect, memory};
use prune_list::{list, prune};

/// The benchmark's options (`cargo bench --bench bench -- [SCENARIO…] [OPTIONS]`).
#[derive(clap::Parser)]
#[command(
    name = "bench",
    about = "times crimg beside the reference way on identical data"
)]
struct Options {
    /// Scenarios to run [default: import export list prune memory inspect bundle bundle-raw]
    #[arg(value_parser = [
        "import", "export", "list", "prune", "memory", "inspect", "bundle", "bundle-raw",
        "bundle-dir", "bundle-files",
    ])]
    scenarios: Vec<String>,
    /// Runs of each row: the median is shown, with min and max
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Images for list and prune
    #[arg(long, default_value_t = 500)]
    images: usize,
    /// Layer size for import and export, and the bundle's size, MiB
    #[arg(long, default_value_t = 256)]
    mib: u64,
    /// Also write the rows to this JSON file
    #[arg(long)]
    json: Option<String>,
    /// Where `bundle-files` writes the bundle
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// `bundle-files` writes `bundle-raw`'s uncompressed layers
    #[arg(long)]
    raw: bool,
    /// What `cargo bench` passes
    #[arg(long = "bench", hide = true)]
    _bench: bool,
}

fn options() -> Options {
    let mut o = <Options as clap::Parser>::parse();
    if o.scenarios.is_empty() {
        o.scenarios = [
            "import",
            "export",
            "list",
            "prune",
            "memory",
            "inspect",
            "bundle",
            "bundle-raw",
        ]
        .map(String::from)
        .to_vec();
    }
    o
}

/// One row of results: a name, its samples, and the row it is compared with.
struct Row {
    name: String,
    samples: Vec<Duration>,
    reference: Option<String>,
    /// A quantity that is not a time (peak memory), printed instead of seconds.
    value: Option<String>,
}

impl Row {
    fn new(name: impl Into<String>, reference: Option<String>) -> Row {
        Row {
            name: name.into(),
            samples: vec![],
            reference,
            value: None,
        }
    }
}

impl Row {
    fn median(&self) -> Duration {
        let mut s = self.samples.clone();
        s.sort();
        s[s.len() / 2]
    }
}

fn main() {
    let opts = options();
    let mut rows: Vec<Row> = Vec::new();
    for scenario in &opts.scenarios {
        match scenario.as_str() {
            "prune" => prune(&opts, &mut rows),
            "list" => list(&opts, &mut rows),
            "import" => import(&opts, &mut rows),
            "export" => export(&opts, &mut rows),
            "memory" => memory(&opts, &mut rows),
            "inspect" => inspect(&opts, &mut rows),
            "bundle" => bundle_scenario(&opts, &mut rows, true),
            "bundle-raw" => bundle_scenario(&opts, &mut rows, false),
            "bundle-dir" => bundle_dir_scenario(&opts, &mut rows),
            // Not timed: the bundle scenario's data for other tools, e.g.
            // `scripts/profile-containerd.sh 0 DIR/bundle-256.tar`.
            "bundle-files" => {
                let dir = opts.out.as_deref().expect("bundle-files needs --out DIR");
                std::fs::create_dir_all(dir).expect("create --out DIR");
                let b = bundle(dir, opts.mib, true, !opts.raw);
                let split = b.split.as_deref().unwrap_or(dir);
                println!(
                    "{}\n{}\n{}",
                    b.tar.display(),
                    b.zst.display(),
                    split.display()
                );
            }
            other => {
                eprintln!(
                    "bench: unknown scenario {other:?} (import, export, list, prune, memory, inspect, bundle, bundle-raw, bundle-dir, bundle-files)"
                )
            }
        }
    }
    print_rows(&rows);
    if let Some(path) = &opts.json {
        let doc: Vec<_> = rows
            .iter()
            .map(|r| {
                if let Some(v) = &r.value {
                    return json!({ "name": r.name, "value": v });
                }
                json!({
                    "name": r.name,
                    "median_s": r.median().as_secs_f64(),
                    "samples_s": r.samples.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
                    "reference": r.reference,
                })
            })
            .collect();
        std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap()).expect("write JSON");
    }
}

fn print_rows(rows: &[Row]) {
    println!(
        "\n{:<58} {:>9} {:>9} {:>9} {:>7}",
        "benchmark", "median", "min", "max", "ratio"
    );
    for r in rows {
        if let Some(v) = &r.value {
            println!("{:<58} {v:>9}", r.name);
            continue;
        }
        let min = r.samples.iter().min().unwrap();
        let max = r.samples.iter().max().unwrap();
        let ratio = r
            .reference
            .as_ref()
            .and_then(|name| rows.iter().find(|o| &o.name == name))
            .map(|o| {
                format!(
                    "{:.2}x",
                    r.median().as_secs_f64() / o.median().as_secs_f64()
                )
            })
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<58} {:>8.3}s {:>8.3}s {:>8.3}s {:>7}",
            r.name,
            r.median().as_secs_f64(),
            min.as_secs_f64(),
            max.as_secs_f64(),
            ratio
        );
    }
    let _ = std::io::stdout().flush();
}

fn crimg(node: &Node, args: &[&str]) -> Duration {
    timed_crimg(node.crimg(), args)
}

/// Runs crimg to success with its standard output discarded; how long it took.
pub fn timed_crimg(mut cmd: Command, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = cmd
        .args(args)
        .stdout(Stdio::null())
        .output()
        .expect("run crimg");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "crimg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}
