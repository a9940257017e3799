//! Gathers the node's facts from CRI and containerd, concurrently, and joins them.

use std::collections::HashMap;

use anyhow::Result;
use futures::stream::{self, StreamExt};

use crate::app::Session;
use crate::model::CriImage;
use crate::model::{Inventory, SandboxInfo, User};
use crate::oci::gc;
use crate::plan::inventory::{Facts, join, not_listed, unresolved_container_refs};
use crate::runtime::containerd::Containerd;

/// Lists images, containers, sandboxes, the sandbox image and (when reachable) containerd's
/// records at once, then joins them.
pub(crate) async fn gather(session: &mut Session) -> Result<Inventory> {
    let containerd = session.containerd_optional().await?;
    let cri = &session.cri;
    let records = async {
        match &containerd {
            Some(c) => c.list_images().await.map(Some),
            None => Ok(None),
        }
    };
    let settings = &session.settings;
    let (images, containers, sandboxes, sandbox_image, records) = tokio::try_join!(
        timed(settings, "CRI ListImages", cri.list_images()),
        timed(settings, "CRI ListContainers", cri.list_containers()),
        timed(
            settings,
            "CRI ListPodSandbox + statuses",
            cri.list_sandboxes()
        ),
        timed(settings, "CRI Status", async {
            Ok(cri.configured_sandbox_image().await.unwrap_or(None))
        }),
        timed(settings, "containerd Images.List", records),
    )?;
    let images = match &records {
        Some(records) => catch_up(session, images, records).await?,
        None => images,
    };
    let mut sandboxes = sandboxes;
    if let Some(c) = &containerd {
        timed(
            settings,
            "sandbox root snapshots",
            sandbox_images(c, &mut sandboxes),
        )
        .await;
    }
    let sandbox_image = match sandbox_image {
        Some(s) => Some(s),
        None => configured_sandbox_image(session)?,
    };
    let mut facts = Facts {
        images,
        records,
        containers,
        sandboxes,
        sandbox_image,
        aliases: HashMap::new(),
    };
    facts.aliases = resolve_unknown_refs(session, &facts).await;
    let (images, warnings) = join(&facts);
    Ok(Inventory {
        users: User::index(&facts.containers, &facts.sandboxes),
        images,
        sandbox_image: facts.sandbox_image,
        containerd: facts.records.is_some(),
        warnings,
    })
}

/// How long CRI is given to list containerd's records, and how long it may list no more of
/// them before crimg goes on without those it has not listed.
const CATCH_UP_MAX: std::time::Duration = std::time::Duration::from_secs(10);
const CATCH_UP_STALL: std::time::Duration = std::time::Duration::from_millis(600);

/// CRI lists containerd's records after its event monitor has seen them: right after a
/// bulk import it lists only part of them. While the part it has not listed shrinks, lists
/// again; then names what it still does not list (those records are left alone: nothing
/// is decided about an image CRI does not show).
async fn catch_up(
    session: &Session,
    mut images: Vec<CriImage>,
    records: &[crate::model::ImageRecord],
) -> Result<Vec<CriImage>> {
    let mut missing = not_listed(&images, records);
    let start = std::time::Instant::now();
    let mut progress = start;
    while !missing.is_empty()
        && start.elapsed() < CATCH_UP_MAX
        && progress.elapsed() < CATCH_UP_STALL
    {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        images = session.cri.list_images().await?;
        let now = not_listed(&images, records);
        if now.len() < missing.len() {
            progress = std::time::Instant::now();
        }
        missing = now;
    }
    if !missing.is_empty() {
        const SHOWN: usize = 5;
        let mut names = missing[..missing.len().min(SHOWN)].join(", ");
        if missing.len() > SHOWN {
            names.push_str(&format!(" and {} more", missing.len() - SHOWN));
        }
        session.settings.warn(format_args!(
            "containerd holds {} image record(s) that the runtime's CRI does not list \
             (yet): {names}; they were left alone (CRI lists a bulk import's records \
             late; one it never lists has content it cannot read)",
            missing.len()
        ));
    } else if start.elapsed() > CATCH_UP_STALL {
        session.settings.debug(format_args!(
            "CRI listed every containerd record after {:.1}s",
            start.elapsed().as_secs_f64()
        ));
    }
    Ok(images)
}

/// The images each sandbox's root filesystem was made from, found through its snapshot:
/// the snapshot's parent is the chain ID of the image's top layer, and the image's config
/// blob carries it in its snapshot GC label. By content, not by name, so a sandbox keeps
/// its image when the tag it was made from moves to another build.
async fn sandbox_images(c: &Containerd, sandboxes: &mut [SandboxInfo]) {
    let found = crate::runtime::per_item(sandboxes.iter().map(|s| async move {
        let Some(root) = &s.root else {
            return Vec::new();
        };
        let Ok(Some(parent)) = c.snapshot_parent(&root.snapshotter, &root.key).await else {
            return Vec::new();
        };
        c.content_labelled(&gc::snapshot_ref(&root.snapshotter), &parent)
            .await
            .unwrap_or_default()
    }))
    .await;
    for (s, ids) in sandboxes.iter_mut().zip(found) {
        s.image_ids = ids;
    }
}

/// The sandbox image where CRI `Status` does not name it (containerd 2.x): containerd's
/// configuration (`pinned_images.sandbox`), else that version's built-in default.
fn configured_sandbox_image(session: &Session) -> Result<Option<String>> {
    if let Some(image) = session.containerd_config()?.and_then(|c| c.sandbox_image) {
        return Ok(Some(image));
    }
    if session.runtime.runtime_name != "containerd" {
        return Ok(None);
    }
    Ok(default_sandbox_image(&session.runtime.runtime_version).map(str::to_string))
}

/// The sandbox image containerd uses when its configuration names none, for the versions
/// whose CRI `Status` no longer reports it.
fn default_sandbox_image(version: &str) -> Option<&'static str> {
    let mut parts = version.trim_start_matches('v').split(['.', '-', '~', '+']);
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    match (major, minor) {
        (0..=1, _) => None,
        (2, 0..=1) => Some("registry.k8s.io/pause:3.10"),
        (2, 2) => Some("registry.k8s.io/pause:3.10.1"),
        _ => Some("registry.k8s.io/pause:3.10.2"),
    }
}

/// Runs a call and, with --verbose, says how long it took.
async fn timed<T>(settings: &crate::app::Settings, what: &str, fut: impl Future<Output = T>) -> T {
    let start = std::time::Instant::now();
    let out = fut.await;
    settings.debug(format_args!(
        "{what}: {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    ));
    out
}

/// Container images named in a way no listed tag, digest or ID matches (a digest
/// reference, a short name) are resolved through `ImageStatus`, as the runtime would.
async fn resolve_unknown_refs(session: &Session, facts: &Facts) -> HashMap<String, String> {
    let cri = &session.cri;
    stream::iter(unresolved_container_refs(facts))
        .map(|r| async move { cri.image_id(&r).await.ok().flatten().map(|id| (r, id)) })
        .buffer_unordered(16)
        .filter_map(|x| async move { x })
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_sandbox_image_by_version() {
        let cases = [
            ("1.6.20~ds1", None),
            ("v1.7.24", None),
            ("2.0.0", Some("registry.k8s.io/pause:3.10")),
            ("2.1.9+unknown", Some("registry.k8s.io/pause:3.10")),
            ("v2.2.0", Some("registry.k8s.io/pause:3.10.1")),
            ("2.2.7", Some("registry.k8s.io/pause:3.10.1")),
            ("v2.3.4", Some("registry.k8s.io/pause:3.10.2")),
            ("garbage", None),
        ];
        for (version, want) in cases {
            assert_eq!(super::default_sandbox_image(version), want, "{version}");
        }
    }
}
