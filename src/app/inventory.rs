//! Gathers the node's facts from CRI and containerd, concurrently, and joins them.

use std::collections::HashMap;

use anyhow::Result;
use futures::stream::{self, StreamExt};

use crate::app::Session;
use crate::model::{Inventory, SandboxInfo, User};
use crate::oci::gc;
use crate::plan::inventory::{Facts, join, unresolved_container_refs};
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
