//! Joins what CRI and containerd report into one model of the node's images.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::model::{ContainerInfo, CriImage, Image, ImageRecord, SandboxInfo};
use crate::reference::normalize;

/// The raw facts gathered from the runtime, before joining.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    pub(crate) images: Vec<CriImage>,
    /// containerd's records in the namespace, when its API was reachable.
    pub(crate) records: Option<Vec<ImageRecord>>,
    pub(crate) containers: Vec<ContainerInfo>,
    pub(crate) sandboxes: Vec<SandboxInfo>,
    /// The runtime's configured sandbox image.
    pub(crate) sandbox_image: Option<String>,
    /// Image IDs the runtime gave (through `ImageStatus`) for references that name no
    /// listed tag or digest.
    pub(crate) aliases: HashMap<String, String>,
}

/// Joins the facts: one `Image` per CRI image, with its records and users.
/// Returns the images (in CRI's order) and warnings about users whose image is unknown.
pub(crate) fn join(facts: &Facts) -> (Vec<Image>, Vec<String>) {
    let mut images: Vec<Image> = facts
        .images
        .iter()
        .map(|c| Image {
            id: c.id.clone(),
            repo_tags: c.repo_tags.clone(),
            repo_digests: c.repo_digests.clone(),
            size: c.size,
            pinned_cri: c.pinned,
            ..Image::default()
        })
        .collect();
    let index = NameIndex::new(&facts.images, &facts.aliases);
    let mut warnings = Vec::new();

    if let Some(records) = &facts.records {
        for r in records {
            if let Some(i) = index.find(&r.name) {
                images[i].records.push(r.clone());
            }
        }
    }

    let mut container_users: Vec<BTreeSet<String>> = vec![BTreeSet::new(); images.len()];
    for c in &facts.containers {
        let hit = index.find(&c.image_ref).or_else(|| index.find(&c.image));
        match hit {
            Some(i) => {
                container_users[i].insert(c.id.clone());
            }
            None => warnings.push(format!(
                "container {} ({}) uses image {:?} which the runtime does not list",
                crate::model::short_id(&c.id),
                c.name,
                if c.image_ref.is_empty() {
                    &c.image
                } else {
                    &c.image_ref
                }
            )),
        }
        // An image mounted as a volume is used by the container as much as its own.
        for volume in &c.image_volumes {
            match index.find(volume) {
                Some(i) => {
                    container_users[i].insert(c.id.clone());
                }
                None => warnings.push(format!(
                    "container {} ({}) mounts image {volume:?} which the runtime does not list",
                    crate::model::short_id(&c.id),
                    c.name,
                )),
            }
        }
    }
    let mut sandbox_users: Vec<BTreeSet<String>> = vec![BTreeSet::new(); images.len()];
    for s in &facts.sandboxes {
        // The images its root filesystem was made from, when known: a name may have moved
        // to another build since the sandbox was made.
        let by_root: Vec<usize> = s.image_ids.iter().filter_map(|id| index.find(id)).collect();
        if !by_root.is_empty() {
            for i in by_root {
                sandbox_users[i].insert(s.id.clone());
            }
            continue;
        }
        // Runtimes that do not say which image a sandbox runs run the configured one.
        let image = s.image.as_deref().or(facts.sandbox_image.as_deref());
        match image.and_then(|name| index.find(name)) {
            Some(i) => {
                sandbox_users[i].insert(s.id.clone());
            }
            None => warnings.push(format!(
                "pod sandbox {} ({}/{}) runs image {:?} which the runtime does not list",
                crate::model::short_id(&s.id),
                s.namespace,
                s.name,
                image.unwrap_or("<unknown>")
            )),
        }
    }
    for (i, image) in images.iter_mut().enumerate() {
        image.sandbox_image = facts
            .sandbox_image
            .as_deref()
            .is_some_and(|s| names(image, s));
        image.containers = std::mem::take(&mut container_users[i])
            .into_iter()
            .collect();
        image.sandboxes = std::mem::take(&mut sandbox_users[i]).into_iter().collect();
    }
    (images, warnings)
}

/// Whether `reference` names `image`: its ID, a tag or a digest reference, compared in
/// normalised form.
fn names(image: &Image, reference: &str) -> bool {
    let reference = normalize(reference).unwrap_or_else(|_| reference.to_string());
    image.id == reference
        || image
            .references()
            .any(|r| r == reference || normalize(r).is_ok_and(|n| n == reference))
}

/// The names CRI keeps for records whose own name is not in normalised form (`app/x:1.0`,
/// which CRI lists as `docker.io/app/x:1.0`), paired with the record; names that another
/// record already has are left out. ID and digest records are kept by CRI as they are.
pub(crate) fn cri_aliases(records: &[ImageRecord]) -> Vec<(String, &ImageRecord)> {
    let mut out: Vec<(String, &ImageRecord)> = Vec::new();
    for r in records {
        if r.name.starts_with("sha256:") {
            continue;
        }
        let Ok(n) = normalize(&r.name) else { continue };
        if n != r.name && !records.iter().any(|o| o.name == n) && !out.iter().any(|(a, _)| *a == n)
        {
            out.push((n, r));
        }
    }
    out
}

/// The image names of containers that no listed ID, tag or digest matches: the ones to
/// ask the runtime about (`ImageStatus`) before joining.
pub(crate) fn unresolved_container_refs(facts: &Facts) -> Vec<String> {
    let no_aliases = HashMap::new();
    let index = NameIndex::new(&facts.images, &no_aliases);
    facts
        .containers
        .iter()
        .flat_map(|c| {
            let own = index
                .find(&c.image_ref)
                .or_else(|| index.find(&c.image))
                .is_none()
                .then(|| [c.image_ref.clone(), c.image.clone()]);
            let volumes = c
                .image_volumes
                .iter()
                .filter(|v| index.find(v).is_none())
                .cloned();
            own.into_iter().flatten().chain(volumes)
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// Maps every name of an image (ID, bare ID hex, tags, digest references, and their
/// normalised forms) to its position.
struct NameIndex<'a> {
    by_name: HashMap<String, usize>,
    aliases: &'a HashMap<String, String>,
}

impl<'a> NameIndex<'a> {
    fn new(images: &[CriImage], aliases: &'a HashMap<String, String>) -> Self {
        let mut by_name = HashMap::new();
        for (i, image) in images.iter().enumerate() {
            by_name.insert(image.id.clone(), i);
            if let Some(hex) = image.id.strip_prefix("sha256:") {
                by_name.insert(hex.to_string(), i);
            }
            for r in image.repo_tags.iter().chain(&image.repo_digests) {
                by_name.insert(r.to_string(), i);
                if let Ok(n) = normalize(r) {
                    by_name.insert(n, i);
                }
            }
        }
        NameIndex { by_name, aliases }
    }

    fn find(&self, name: &str) -> Option<usize> {
        if name.is_empty() {
            return None;
        }
        let direct = |n: &str| {
            self.by_name.get(n).copied().or_else(|| {
                normalize(n)
                    .ok()
                    .and_then(|norm| self.by_name.get(&norm).copied())
            })
        };
        direct(name).or_else(|| self.aliases.get(name).and_then(|id| direct(id)))
    }
}

/// Names of containerd's image records that CRI does not list. CRI learns of records from
/// containerd's events, so it lists a bulk import's records late (2.1: seconds for a few
/// hundred); a record whose content it cannot read (missing, no manifest for this
/// platform) it never lists. ID records count by image ID; a name CRI would not take as a
/// reference is not counted.
pub(crate) fn not_listed(images: &[CriImage], records: &[ImageRecord]) -> Vec<String> {
    let known: HashSet<&str> = images
        .iter()
        .flat_map(|i| {
            std::iter::once(i.id.as_str())
                .chain(i.repo_tags.iter().map(String::as_str))
                .chain(i.repo_digests.iter().map(String::as_str))
        })
        .collect();
    let mut out: Vec<String> = records
        .iter()
        .filter(|r| {
            if r.is_id_record() {
                return !known.contains(r.name.as_str());
            }
            normalize(&r.name).is_ok_and(|n| !known.contains(n.as_str()))
        })
        .map(|r| r.name.clone())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Descriptor;

    fn cri(id: &str, tags: &[&str]) -> CriImage {
        CriImage {
            id: id.into(),
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            size: 10,
            ..CriImage::default()
        }
    }

    fn record(name: &str) -> ImageRecord {
        ImageRecord {
            name: name.into(),
            target: Descriptor::default(),
            ..ImageRecord::default()
        }
    }

    fn container(id: &str, image: &str, image_ref: &str) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            image: image.into(),
            image_ref: image_ref.into(),
            ..ContainerInfo::default()
        }
    }

    fn sandbox(id: &str, image: Option<&str>) -> SandboxInfo {
        SandboxInfo {
            id: id.into(),
            image: image.map(str::to_string),
            ..SandboxInfo::default()
        }
    }

    #[test]
    fn users_and_records_join() {
        let facts = Facts {
            images: vec![
                cri("sha256:aaa", &["docker.io/library/nginx:1.25"]),
                cri("sha256:bbb", &["registry.k8s.io/pause:3.9"]),
                cri("sha256:ccc", &["docker.io/library/redis:7"]),
                cri("sha256:ddd", &[]),
            ],
            records: Some(vec![
                record("docker.io/library/nginx:1.25"),
                record("sha256:aaa"),
                record("docker.io/library/unrelated:1"),
            ]),
            containers: vec![
                container("c1", "docker.io/library/nginx:1.25", "sha256:aaa"),
                container("c2", "nginx:1.25", ""),
                container("c3", "", "sha256:ddd"),
                container("c4", "redis-by-digest", "docker.io/library/redis@sha256:x"),
                container("c5", "gone:1", "sha256:zzz"),
            ],
            sandboxes: vec![
                sandbox("s1", Some("registry.k8s.io/pause:3.9")),
                sandbox("s2", None),
                // Made from redis's layers under a name that now means another image.
                SandboxInfo {
                    image_ids: vec!["sha256:ccc".into()],
                    ..sandbox("s3", Some("registry.k8s.io/pause:3.9"))
                },
            ],
            sandbox_image: Some("registry.k8s.io/pause:3.9".into()),
            aliases: HashMap::from([(
                "docker.io/library/redis@sha256:x".to_string(),
                "sha256:ccc".to_string(),
            )]),
        };
        let mut facts = facts;
        // c2 also mounts redis (by tag) and an image the runtime does not list.
        facts.containers[1].image_volumes =
            vec!["docker.io/library/redis:7".into(), "sha256:yyy".into()];
        let (images, warnings) = join(&facts);
        let by_id = |id: &str| images.iter().find(|i| i.id == id).unwrap();
        assert_eq!(by_id("sha256:aaa").containers, ["c1", "c2"]);
        assert!(by_id("sha256:bbb").sandbox_image);
        assert!(!by_id("sha256:aaa").sandbox_image);
        assert_eq!(by_id("sha256:aaa").records.len(), 2);
        assert_eq!(by_id("sha256:bbb").sandboxes, ["s1", "s2"]);
        assert_eq!(by_id("sha256:ccc").sandboxes, ["s3"]);
        assert!(by_id("sha256:bbb").containers.is_empty());
        assert_eq!(by_id("sha256:ccc").containers, ["c2", "c4"]);
        assert_eq!(by_id("sha256:ddd").containers, ["c3"]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("mounts image \"sha256:yyy\""));
        assert!(warnings[1].contains("sha256:zzz"));
    }

    #[test]
    fn cri_aliases_are_the_normalised_names_no_record_has() {
        let records = [
            record("app/x:1.0"),
            record("nginx"),
            record("docker.io/library/nginx:latest"),
            record("docker.io/library/redis:7"),
            record("sha256:aaa"),
            record(
                "reg.local:5000/team/app@sha256:0123456789012345678901234567890123456789012345678901234567890123",
            ),
            record("Not A Reference"),
        ];
        let got: Vec<(String, String)> = cri_aliases(&records)
            .into_iter()
            .map(|(a, r)| (a, r.name.clone()))
            .collect();
        assert_eq!(
            got,
            [("docker.io/app/x:1.0".to_string(), "app/x:1.0".to_string())]
        );
    }

    #[test]
    fn unresolved_refs_are_only_the_unknown_ones() {
        let facts = Facts {
            images: vec![cri("sha256:aaa", &["docker.io/library/nginx:1.25"])],
            containers: vec![
                container("c1", "nginx:1.25", ""),
                container("c2", "redis-by-digest", "docker.io/library/redis@sha256:x"),
                container("c3", "", "sha256:aaa"),
            ],
            ..Facts::default()
        };
        assert_eq!(
            unresolved_container_refs(&facts),
            ["docker.io/library/redis@sha256:x", "redis-by-digest"]
        );
    }

    #[test]
    fn records_cri_does_not_list() {
        let record = |name: &str| ImageRecord {
            name: name.into(),
            labels: Default::default(),
            target: Default::default(),
            created_at: None,
            updated_at: None,
        };
        let id = format!("sha256:{}", "a".repeat(64));
        let images = [CriImage {
            id: id.clone(),
            repo_tags: vec!["docker.io/app/x:1.0".into()],
            repo_digests: vec![format!("docker.io/app/x@sha256:{}", "b".repeat(64))],
            size: 1,
            pinned: false,
        }];
        let records = [
            record(&id),
            record("app/x:1.0"),
            record(&format!("docker.io/app/x@sha256:{}", "b".repeat(64))),
            record("docker.io/library/late:1"),
            record(&format!("sha256:{}", "c".repeat(64))),
            record("Not A Reference"),
        ];
        assert_eq!(
            not_listed(&images, &records),
            [
                "docker.io/library/late:1".to_string(),
                format!("sha256:{}", "c".repeat(64)),
            ]
        );
    }

    #[test]
    fn sandbox_without_known_image_is_warned() {
        let facts = Facts {
            images: vec![cri("sha256:aaa", &["docker.io/library/nginx:1.25"])],
            sandboxes: vec![sandbox("s1", None)],
            ..Facts::default()
        };
        let (images, warnings) = join(&facts);
        assert!(images[0].sandboxes.is_empty());
        assert_eq!(warnings.len(), 1);
    }
}
