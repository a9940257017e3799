//! The JSON shapes of the command-line contract.

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct ImageList {
    pub images: Vec<ListedImage>,
}

#[derive(Debug, Serialize)]
pub struct ListedImage {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub size: u64,
    pub pinned: bool,
    pub pinned_by: Vec<&'static str>,
    pub in_use: InUse,
    pub protected: Vec<String>,
    pub created_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct InUse {
    pub containers: Vec<String>,
    pub sandboxes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PinResult {
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
    pub not_found: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PruneResult {
    pub dry_run: bool,
    pub removed: Vec<PrunedImage>,
    pub kept: Vec<KeptImage>,
    pub failed: Vec<FailedImage>,
    pub reclaimed_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct PrunedImage {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub size: u64,
}

#[derive(Debug, Serialize)]
pub struct KeptImage {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub reasons: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct FailedImage {
    pub id: String,
    pub error: String,
}

#[derive(Debug, Serialize)]
pub struct PruneWhy {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub action: &'static str,
    pub reasons: Vec<String>,
}

/// One line per run of `prune --every`, on stderr.
#[derive(Debug, Serialize)]
pub struct PruneRun {
    pub run: u64,
    /// `done`, `partial`, `below-high` or `failed`.
    pub result: &'static str,
    pub dry_run: bool,
    pub removed: u64,
    pub reclaimed_bytes: u64,
    pub kept: u64,
    pub failed: u64,
    pub duration_seconds: f64,
    pub image_fs_used_bytes: Option<u64>,
    pub image_fs_size_bytes: Option<u64>,
    pub error: Option<String>,
    /// Seconds until the next run starts; null when the loop stops.
    pub next_run_seconds: Option<f64>,
}
