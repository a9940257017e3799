//! The JSON shapes of the command-line contract.

use serde::Serialize;

#[derive(Debug, Serialize)]
pub(crate) struct ImageList {
    pub(crate) images: Vec<ListedImage>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ListedImage {
    pub(crate) id: String,
    pub(crate) repo_tags: Vec<String>,
    pub(crate) repo_digests: Vec<String>,
    pub(crate) size: u64,
    pub(crate) pinned: bool,
    pub(crate) pinned_by: Vec<&'static str>,
    pub(crate) in_use: InUse,
    pub(crate) protected: Vec<String>,
    pub(crate) created_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct InUse {
    pub(crate) containers: Vec<String>,
    pub(crate) sandboxes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PinResult {
    pub(crate) changed: Vec<String>,
    pub(crate) unchanged: Vec<String>,
    pub(crate) not_found: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PruneResult {
    pub(crate) dry_run: bool,
    pub(crate) removed: Vec<PrunedImage>,
    pub(crate) kept: Vec<KeptImage>,
    pub(crate) failed: Vec<FailedImage>,
    pub(crate) reclaimed_bytes: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct PrunedImage {
    pub(crate) id: String,
    pub(crate) repo_tags: Vec<String>,
    pub(crate) size: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct KeptImage {
    pub(crate) id: String,
    pub(crate) repo_tags: Vec<String>,
    pub(crate) reasons: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct FailedImage {
    pub(crate) id: String,
    pub(crate) error: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct PruneWhy {
    pub(crate) id: String,
    pub(crate) repo_tags: Vec<String>,
    pub(crate) action: &'static str,
    pub(crate) reasons: Vec<String>,
}

/// One line per run of `prune --every`, on stderr.
#[derive(Debug, Serialize)]
pub(crate) struct PruneRun {
    pub(crate) run: u64,
    /// `done`, `partial`, `below-high` or `failed`.
    pub(crate) result: &'static str,
    pub(crate) dry_run: bool,
    pub(crate) removed: u64,
    pub(crate) reclaimed_bytes: u64,
    pub(crate) kept: u64,
    pub(crate) failed: u64,
    pub(crate) duration_seconds: f64,
    pub(crate) image_fs_used_bytes: Option<u64>,
    pub(crate) image_fs_size_bytes: Option<u64>,
    pub(crate) error: Option<String>,
    /// Seconds until the next run starts; null when the loop stops.
    pub(crate) next_run_seconds: Option<f64>,
}
