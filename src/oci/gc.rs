//! containerd's garbage-collection labels: which references keep a blob, a snapshot or
//! a lease's content alive; the layer label containerd's unpacker reads; the label naming
//! where a blob was pulled from.

use crate::oci::Role;

/// A content label that keeps a referenced blob alive while its parent lives.
pub(crate) const GC_REF_CONTENT: &str = "containerd.io/gc.ref.content";
/// A content label that keeps a snapshot alive (suffixed by the snapshotter's name).
pub(crate) const GC_REF_SNAPSHOT: &str = "containerd.io/gc.ref.snapshot";
/// The lease label after which containerd may collect an abandoned lease.
pub(crate) const GC_EXPIRE: &str = "containerd.io/gc.expire";
/// A layer's label naming its uncompressed digest (diff ID).
pub(crate) const LABEL_UNCOMPRESSED: &str = "containerd.io/uncompressed";
/// The content label prefix containerd's pull sets: `…source.<host>=<repo>[,<repo>…]`.
pub(crate) const DISTRIBUTION_SOURCE: &str = "containerd.io/distribution.source.";

/// The label a parent carries for a child at `position` of its list, as containerd's own
/// pull sets them: index → `…content.m.<i>`, manifest → `…content.config` and
/// `…content.l.<i>`. An index is nobody's child here.
pub(crate) fn content_ref(child: Role, position: usize) -> Option<String> {
    match child {
        Role::Index => None,
        Role::Manifest => Some(format!("{GC_REF_CONTENT}.m.{position}")),
        Role::Config => Some(format!("{GC_REF_CONTENT}.config")),
        Role::Layer => Some(format!("{GC_REF_CONTENT}.l.{position}")),
    }
}

/// The content label pointing a config at its unpacked top snapshot.
pub(crate) fn snapshot_ref(snapshotter: &str) -> String {
    format!("{GC_REF_SNAPSHOT}.{snapshotter}")
}

/// The snapshotters a config's labels say it is unpacked into, sorted.
pub(crate) fn unpacked_in<'a>(labels: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let prefix = format!("{GC_REF_SNAPSHOT}.");
    let mut out: Vec<String> = labels
        .into_iter()
        .filter_map(|k| k.strip_prefix(&prefix))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let cases = [
            (Role::Index, 0, None),
            (Role::Manifest, 2, Some("containerd.io/gc.ref.content.m.2")),
            (Role::Config, 0, Some("containerd.io/gc.ref.content.config")),
            (Role::Layer, 1, Some("containerd.io/gc.ref.content.l.1")),
        ];
        for (role, pos, want) in cases {
            assert_eq!(content_ref(role, pos).as_deref(), want, "{role:?}");
        }
        assert_eq!(
            snapshot_ref("overlayfs"),
            "containerd.io/gc.ref.snapshot.overlayfs"
        );
    }
}
