//! Hostile input and rude interruptions: archives built to hurt an importer, signals in
//! the middle of an import or export, and the extremes an operator can hand crimg. Each
//! must end cleanly, saying what is wrong, with nothing left behind.
//!
//! - [`archives`]: archives built to hurt an importer (junk and deeply nested JSON, links
//!   out of the layout, duplicate members, descriptors that lie about sizes, a
//!   decompression bomb, sparse members, cut gzip trailers) and an image CRI refuses;
//! - [`signals`]: SIGINT and SIGTERM in the middle of an import, a streamed import, an
//!   export, a `--fetch-missing` fetch and a 10 000-layer import;
//! - [`operator`]: what an operator can hand crimg: a strict umask for its archives,
//!   extreme numbers and durations for every option.

use std::path::Path;

use crate::support::Node;

mod archives;
mod operator;
mod signals;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Everything an import could leave behind in containerd.
fn node_state(node: &Node) -> (String, String, String, String) {
    (
        node.ctr_ok(&["images", "ls", "-q"]),
        node.ctr_ok(&["content", "ls", "-q"]),
        node.ctr_ok(&["snapshots", "ls"]),
        node.ctr_ok(&["leases", "ls", "-q"]),
    )
}
