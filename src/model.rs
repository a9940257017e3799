//! Domain types shared by the runtime clients, the planners and the renderers.
//! No generated protobuf type appears here.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

/// containerd label CRI reads (1.6.22+) to report an image as pinned.
pub(crate) const LABEL_CRI_PINNED: &str = "io.cri-containerd.pinned";
/// containerd label K3s puts on its air-gap images, and strips again at every start.
pub(crate) const LABEL_K3S_PINNED: &str = "io.cattle.k3s.pinned";
/// The value both pin labels carry.
pub(crate) const PINNED_VALUE: &str = "pinned";
/// containerd label CRI sets on images it manages.
pub(crate) const LABEL_CRI_MANAGED: &str = "io.cri-containerd.image";

/// What the runtime says about itself (CRI `Version`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RuntimeVersion {
    pub(crate) runtime_name: String,
    pub(crate) runtime_version: String,
    pub(crate) runtime_api_version: String,
}

/// An image as CRI lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CriImage {
    pub(crate) id: String,
    pub(crate) repo_tags: Vec<String>,
    pub(crate) repo_digests: Vec<String>,
    pub(crate) size: u64,
    pub(crate) pinned: bool,
}

/// A content descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
}

/// One containerd image record (a name pointing at a target).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ImageRecord {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) target: Descriptor,
    pub(crate) created_at: Option<SystemTime>,
    pub(crate) updated_at: Option<SystemTime>,
}

impl ImageRecord {
    /// The record CRI keeps named by the image ID (`sha256:<config digest>`).
    pub(crate) fn is_id_record(&self) -> bool {
        self.name.starts_with("sha256:")
    }

    /// A record named by a tag: neither the ID record nor a digest reference (`…@sha256:…`).
    pub(crate) fn is_tag(&self) -> bool {
        !self.is_id_record() && !self.name.contains('@')
    }
}

/// A container as CRI lists it, any state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ContainerInfo {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) pod_sandbox_id: String,
    /// The image as the runtime names it for this container (`Container.image.image`).
    pub(crate) image: String,
    /// The image ID or digest reference (`Container.image_ref`).
    pub(crate) image_ref: String,
    pub(crate) state: String,
    /// Images mounted into it as volumes (`ContainerStatus` mounts' `image`, Kubernetes'
    /// ImageVolume), as the runtime names them.
    pub(crate) image_volumes: Vec<String>,
}

/// A pod sandbox as CRI lists it, any state, with the image its sandbox runs when the
/// runtime says (`PodSandboxStatus` verbose info).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SandboxInfo {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) namespace: String,
    pub(crate) state: String,
    /// The image by the name the sandbox was made from; the name may have moved since.
    pub(crate) image: Option<String>,
    /// The sandbox's root filesystem snapshot (containerd: `info.snapshotter` and
    /// `info.snapshotKey`), whose parent is the image's top layer.
    pub(crate) root: Option<SnapshotRef>,
    /// The image IDs whose unpacked layers that snapshot was made from, whatever they are
    /// named now; empty when not known.
    pub(crate) image_ids: Vec<String>,
}

/// A snapshot, by snapshotter and key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SnapshotRef {
    pub(crate) snapshotter: String,
    pub(crate) key: String,
}

/// Who pinned an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum PinSource {
    /// The runtime reports `pinned` through CRI.
    Cri,
    /// `io.cri-containerd.pinned=pinned` without the K3s label.
    User,
    /// `io.cattle.k3s.pinned=pinned`.
    K3s,
}

impl PinSource {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PinSource::Cri => "cri",
            PinSource::User => "user",
            PinSource::K3s => "k3s",
        }
    }
}

impl fmt::Display for PinSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One image of the node: the CRI view joined with containerd's records and labels and
/// with the containers and sandboxes that use it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Image {
    /// CRI image ID (`sha256:<config digest>` on containerd).
    pub(crate) id: String,
    pub(crate) repo_tags: Vec<String>,
    pub(crate) repo_digests: Vec<String>,
    pub(crate) size: u64,
    pub(crate) pinned_cri: bool,
    /// The containerd records naming this image (tags, digests and the ID record).
    pub(crate) records: Vec<ImageRecord>,
    /// Containers (any state) using it.
    pub(crate) containers: Vec<String>,
    /// Pod sandboxes (any state) running it.
    pub(crate) sandboxes: Vec<String>,
    /// The runtime's configured sandbox image names it.
    pub(crate) sandbox_image: bool,
}

impl Image {
    /// Who pins this image: the labels of any of its records, else CRI's own flag.
    ///
    /// containerd 1.7 and later report `pinned` through CRI for the very label a user's or
    /// K3s's pin sets, so a flag that a label explains is that label's pin, not the
    /// runtime's: the same image reads the same on every version. The runtime's own pin
    /// on its sandbox image (containerd 1.7 and 2.x label it when CRI pulls it) is the
    /// runtime's, never the user's.
    pub(crate) fn pinned_by(&self) -> Vec<PinSource> {
        let has = |key: &str| {
            self.records
                .iter()
                .any(|r| r.labels.get(key).is_some_and(|v| v == PINNED_VALUE))
        };
        let k3s = has(LABEL_K3S_PINNED);
        // K3s sets both labels; the CRI label alone is a user's pin that K3s will not strip.
        let cri_label = self.records.iter().any(|r| {
            r.labels
                .get(LABEL_CRI_PINNED)
                .is_some_and(|v| v == PINNED_VALUE)
                && !r.labels.contains_key(LABEL_K3S_PINNED)
        });
        let runtime = cri_label && self.sandbox_image;
        let user = cri_label && !self.sandbox_image;
        let mut by = Vec::new();
        if runtime || (self.pinned_cri && !user && !k3s) {
            by.push(PinSource::Cri);
        }
        if user {
            by.push(PinSource::User);
        }
        if k3s {
            by.push(PinSource::K3s);
        }
        by
    }

    pub(crate) fn in_use(&self) -> bool {
        !self.containers.is_empty() || !self.sandboxes.is_empty()
    }

    /// The earliest creation time of its containerd records.
    pub(crate) fn created_at(&self) -> Option<SystemTime> {
        self.records.iter().filter_map(|r| r.created_at).min()
    }

    /// Every name a user might know it by: tags, digest references.
    pub(crate) fn references(&self) -> impl Iterator<Item = &str> {
        self.repo_tags
            .iter()
            .chain(self.repo_digests.iter())
            .map(String::as_str)
    }

    /// The one name to show for it: the first tag, else the first digest reference, else the ID.
    pub(crate) fn display_name(&self) -> &str {
        self.repo_tags
            .first()
            .or_else(|| self.repo_digests.first())
            .map_or(self.id.as_str(), String::as_str)
    }
}

/// Everything crimg knows about the node's images at one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Inventory {
    pub(crate) images: Vec<Image>,
    /// The runtime's configured sandbox (pause) image, when it says.
    pub(crate) sandbox_image: Option<String>,
    /// Whether containerd's own API was reachable (labels and records are known).
    pub(crate) containerd: bool,
    /// Things noticed while joining that an operator may want to know.
    pub warnings: Vec<String>,
    /// The containers and sandboxes that use images, by ID, in people's terms.
    pub users: BTreeMap<String, User>,
}

/// A container or pod sandbox as people know it: its pod, its name and its state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    /// `namespace/name` of the pod; empty when the runtime no longer lists it.
    pub pod: String,
    /// The container's name; `None` for a pod sandbox.
    pub container: Option<String>,
    /// `running`, `exited`, `created`, `ready`, `notready`, ...
    pub state: String,
}

impl User {
    /// Users keyed by container and sandbox ID.
    pub(crate) fn index(
        containers: &[ContainerInfo],
        sandboxes: &[SandboxInfo],
    ) -> BTreeMap<String, User> {
        let pod_of = |sandbox: &SandboxInfo| format!("{}/{}", sandbox.namespace, sandbox.name);
        let mut users: BTreeMap<String, User> = sandboxes
            .iter()
            .map(|s| {
                let user = User {
                    pod: pod_of(s),
                    container: None,
                    state: state_word(&s.state, "SANDBOX_"),
                };
                (s.id.clone(), user)
            })
            .collect();
        for c in containers {
            let pod = sandboxes
                .iter()
                .find(|s| s.id == c.pod_sandbox_id)
                .map(pod_of)
                .unwrap_or_default();
            let user = User {
                pod,
                container: Some(c.name.clone()),
                state: state_word(&c.state, "CONTAINER_"),
            };
            users.insert(c.id.clone(), user);
        }
        users
    }
}

impl fmt::Display for User {
    /// `pod default/web, container nginx, running`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pod.is_empty() {
            f.write_str("pod unknown")?;
        } else {
            write!(f, "pod {}", self.pod)?;
        }
        if let Some(c) = &self.container {
            write!(f, ", container {c}")?;
        }
        write!(f, ", {}", self.state)
    }
}

/// `CONTAINER_RUNNING` → `running`, `SANDBOX_NOTREADY` → `notready`.
fn state_word(state: &str, prefix: &str) -> String {
    state
        .strip_prefix(prefix)
        .unwrap_or(state)
        .to_ascii_lowercase()
}

/// The 12-hex short form of an image ID, as tables show it.
pub(crate) fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    // By characters: an ID is the runtime's word, and a malformed one must not panic.
    hex.char_indices()
        .nth(12)
        .map_or(hex, |(end, _)| &hex[..end])
}

#[cfg(test)]
mod tests {
    use super::short_id;

    #[test]
    fn short_ids_are_twelve_characters_of_any_id() {
        assert_eq!(short_id("sha256:7ec7b00f7259aaaa"), "7ec7b00f7259");
        assert_eq!(short_id("abc"), "abc");
        // Not hex at all, as a broken runtime might answer: shortened, never a panic.
        assert_eq!(short_id("sha256:ééééééééééééé"), "éééééééééééé");
    }
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

/// Parses `10s`, `2m`, `500ms`, `7d`: every duration crimg takes needs its unit, so
/// `--older-than 30` is not read as 30 seconds when 30 days were meant.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} has no unit: write {s}s, {s}m, {s}h or {s}d"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 10s or 2m ({e})"))
}

/// A duration for people: humantime's units, with the long ones spaced as words (`1 day`,
/// `2 weeks`, `100 years`, `1 day 2h 3m`); `30s`, `5m`, `2h` stay as an operator writes
/// them.
pub(crate) fn human_duration(d: std::time::Duration) -> String {
    let text = humantime::format_duration(d).to_string();
    text.split(' ')
        .map(|part| {
            let unit_at = part
                .find(|c: char| c.is_ascii_alphabetic())
                .unwrap_or(part.len());
            let (n, unit) = part.split_at(unit_at);
            if unit.len() > 2 {
                format!("{n} {unit}")
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod human_tests {
    use std::time::Duration;

    #[test]
    fn durations_read_as_words() {
        let cases = [
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(86_400), "1 day"),
            (Duration::from_secs(93_780), "1 day 2h 3m"),
            (Duration::from_secs(14 * 86_400), "14 days"),
            (Duration::from_millis(100), "100ms"),
            (
                Duration::from_secs(100 * 365 * 86_400 + 25 * 86_400),
                "100 years",
            ),
        ];
        for (d, want) in cases {
            assert_eq!(super::human_duration(d), want, "{d:?}");
        }
    }

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
            assert_eq!(super::human_size(n), want);
        }
    }

    #[test]
    fn durations() {
        assert_eq!(super::parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(
            super::parse_duration("1m").unwrap(),
            Duration::from_secs(60)
        );
        let e = super::parse_duration("30").unwrap_err();
        assert!(
            e.contains("\"30\" has no unit: write 30s, 30m, 30h or 30d"),
            "{e}"
        );
        assert!(super::parse_duration("soon").is_err());
        assert!(super::parse_duration("").is_err());
    }
}
