//! The JSON shapes of the contract, strict: an unknown or missing field fails the test,
//! so these structs are the schema under test.
#![allow(dead_code)]

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageList {
    /// The JSON schema version, 1.
    pub schema: u32,
    pub images: Vec<ListedImage>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListedImage {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub size: u64,
    pub pinned: bool,
    pub pinned_by: Vec<String>,
    pub in_use: InUse,
    pub protected: Vec<String>,
    /// Null when the runtime does not know it, but always there.
    #[serde(deserialize_with = "present_or_null")]
    pub created_at: Option<String>,
}

/// An `Option` field that must be present (`null` or a value): with `deserialize_with`,
/// serde no longer treats a missing `Option` field as `None`.
fn present_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InUse {
    pub containers: Vec<String>,
    pub sandboxes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinResult {
    /// The JSON schema version, 1.
    pub schema: u32,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
    pub not_found: Vec<String>,
}

impl ImageList {
    /// The image with this tag; panics listing what there is when it is absent.
    pub fn by_tag(&self, tag: &str) -> &ListedImage {
        self.images
            .iter()
            .find(|i| i.repo_tags.iter().any(|t| t == tag))
            .unwrap_or_else(|| panic!("no image tagged {tag} in {:#?}", self.images))
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.images
            .iter()
            .any(|i| i.repo_tags.iter().any(|t| t == tag))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneResult {
    /// The JSON schema version, 1.
    pub schema: u32,
    pub dry_run: bool,
    pub removed: Vec<PrunedImage>,
    pub kept: Vec<KeptImage>,
    pub failed: Vec<FailedImage>,
    pub reclaimed_bytes: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrunedImage {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub size: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeptImage {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub reasons: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedImage {
    pub id: String,
    pub error: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneWhy {
    pub schema: u32,
    pub id: String,
    pub repo_tags: Vec<String>,
    pub action: String,
    pub reasons: Vec<String>,
    pub users: Vec<User>,
}

/// A container or sandbox behind an `in-use` reason.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub kind: String,
    pub id: String,
    #[serde(deserialize_with = "present_or_null")]
    pub pod: Option<String>,
    #[serde(deserialize_with = "present_or_null")]
    pub container: Option<String>,
    #[serde(deserialize_with = "present_or_null")]
    pub state: Option<String>,
}

impl PruneResult {
    pub fn removed_tags(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .removed
            .iter()
            .flat_map(|i| i.repo_tags.clone())
            .collect();
        v.sort();
        v
    }

    pub fn reasons_of(&self, tag: &str) -> Vec<String> {
        self.kept
            .iter()
            .find(|k| k.repo_tags.iter().any(|t| t == tag))
            .unwrap_or_else(|| panic!("{tag} not kept: {self:#?}"))
            .reasons
            .clone()
    }
}

/// `import -o json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportResult {
    /// The JSON schema version, 1.
    pub schema: u32,
    pub imported: Vec<ImportedFile>,
    pub failed: Vec<FailedFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportedFile {
    pub file: String,
    pub images: Vec<ImportedImage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportedImage {
    pub name: String,
    pub id: String,
    pub digest: String,
    /// `imported`, `replaced`, `pulled` or `present`.
    pub status: String,
    /// Only with `replaced`: the image the name named before.
    #[serde(default)]
    pub was: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedFile {
    pub file: String,
    pub error: String,
}

impl ImportResult {
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .imported
            .iter()
            .flat_map(|f| f.images.iter().map(|i| i.name.clone()))
            .collect();
        v.sort();
        v
    }
}

/// `-o json` of an export to a file, strict.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportResult {
    pub schema: u32,
    pub file: String,
    pub images: Vec<String>,
    pub blobs: usize,
    pub bytes: u64,
    pub fetched: Vec<String>,
}

/// `-o json` of a check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checked {
    pub runtime: CheckedRuntime,
    pub images: Vec<CheckedImage>,
    pub not_found: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckedRuntime {
    pub name: String,
    pub version: String,
    pub api_version: String,
    pub config: Option<String>,
    pub sandbox_image: Option<String>,
    pub snapshotter: String,
    pub discard_unpacked_layers: Option<bool>,
    pub registry_hosts_dir: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckedImage {
    pub names: Vec<String>,
    pub digest: String,
    pub complete: bool,
    pub snapshotter: String,
    pub platforms: Vec<CheckedPlatform>,
    pub absent_platforms: Vec<String>,
    pub missing: Vec<CheckedMissing>,
    pub fetch_from: Vec<CheckedEndpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckedPlatform {
    pub platform: String,
    pub manifest: String,
    pub config: String,
    pub complete: bool,
    pub unpacked: bool,
    pub unpacked_in: Vec<String>,
    pub layers: usize,
    pub missing_layers: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckedMissing {
    pub digest: String,
    pub what: String,
    pub size: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckedEndpoint {
    pub repository: String,
    pub endpoint: String,
    pub origin: String,
}

/// crimg's `import --watch` state file (`import-watch.json`), strict.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchState {
    pub version: u32,
    /// Absolute path → what was imported from it.
    pub files: std::collections::BTreeMap<String, WatchedFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchedFile {
    pub size: u64,
    pub mtime_ns: u64,
    pub digest: String,
    pub images: Vec<BroughtRecord>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BroughtRecord {
    pub name: String,
    pub target: String,
    pub pinned_by_crimg: bool,
}

/// An OCI image index as crimg's export writes it (`index.json`), strict.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OciIndex {
    pub schema_version: u32,
    pub media_type: String,
    pub manifests: Vec<OciDescriptor>,
}

/// An OCI content descriptor; only the fields the tests read are required.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciDescriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// An OCI image manifest (written by other tools too: unknown fields are allowed).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciManifest {
    pub config: OciDescriptor,
    pub layers: Vec<OciDescriptor>,
}

/// The part of an OCI image config the tests read.
#[derive(Debug, Deserialize)]
pub struct OciConfig {
    pub rootfs: RootFs,
}

#[derive(Debug, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}
