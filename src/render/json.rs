//! The JSON shapes of the command-line contract.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::User;
use crate::plan::protect::Reason;

/// The version of every JSON document crimg prints (`"schema": 1`), raised when a field
/// changes meaning or goes away; new fields may appear within a version.
pub(crate) const SCHEMA: u32 = 1;

#[derive(Debug, Serialize)]
pub(crate) struct ImageList {
    pub schema: u32,
    pub images: Vec<ListedImage>,
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
    pub schema: u32,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
    pub not_found: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PruneResult {
    pub schema: u32,
    pub dry_run: bool,
    pub removed: Vec<PrunedImage>,
    pub kept: Vec<KeptImage>,
    pub failed: Vec<FailedImage>,
    pub reclaimed_bytes: u64,
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
    pub schema: u32,
    pub id: String,
    pub repo_tags: Vec<String>,
    pub action: &'static str,
    pub reasons: Vec<String>,
    /// The containers and sandboxes of the `in-use` reasons, in their order.
    pub users: Vec<UserJson>,
}

/// A container or sandbox that uses an image, as people know it.
#[derive(Debug, Serialize)]
pub(crate) struct UserJson {
    /// `container` or `sandbox`.
    pub kind: &'static str,
    pub id: String,
    /// `namespace/name`; null when the runtime no longer lists the pod.
    pub pod: Option<String>,
    /// The container's name; null for a sandbox.
    pub container: Option<String>,
    /// `running`, `exited`, `created`, `ready`, `notready`...; null when no longer listed.
    pub state: Option<String>,
}

/// The users behind the `in-use` reasons.
pub(crate) fn users(reasons: &[Reason], known: &BTreeMap<String, User>) -> Vec<UserJson> {
    reasons
        .iter()
        .filter_map(|r| match r {
            Reason::InUseContainer(id) => Some(("container", id)),
            Reason::InUseSandbox(id) => Some(("sandbox", id)),
            _ => None,
        })
        .map(|(kind, id)| {
            let user = known.get(id);
            UserJson {
                kind,
                id: id.clone(),
                pod: user.map(|u| u.pod.clone()).filter(|p| !p.is_empty()),
                container: user.and_then(|u| u.container.clone()),
                state: user.map(|u| u.state.clone()),
            }
        })
        .collect()
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
