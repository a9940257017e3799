//! Why an image must be kept: the protection layers of the contract, each a reason.

use std::fmt;

use crate::model::{Image, PinSource};
use crate::plan::exclude::ExcludeRule;
use crate::reference::pattern::RefPattern;

/// Pause and Kubernetes/K3s system images kept unless `--no-builtin-allowlist`.
/// Patterns without a tag cover every tag and digest of the repository.
pub(crate) const BUILTIN_ALLOWLIST: &[&str] = &[
    // Pause images of every common registry (registry.k8s.io, k8s.gcr.io, gcr.io, ECR,
    // MCR, Rancher's mirrored-pause, OpenShift's pod image).
    "**/pause",
    "**/mirrored-pause",
    "**/eks/pause",
    "**/pause-*",
    // Kubernetes control plane and node components.
    "**/kube-apiserver",
    "**/kube-controller-manager",
    "**/kube-scheduler",
    "**/kube-proxy",
    "**/etcd",
    "**/coredns",
    // K3s system images.
    "docker.io/rancher/mirrored-coredns-coredns",
    "docker.io/rancher/local-path-provisioner",
    "docker.io/rancher/mirrored-metrics-server",
    "docker.io/rancher/klipper-helm",
    "docker.io/rancher/klipper-lb",
    "docker.io/rancher/mirrored-library-traefik",
    "docker.io/rancher/mirrored-library-busybox",
];

/// One reason to keep an image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Reason {
    InUseContainer(String),
    InUseSandbox(String),
    Pinned(PinSource),
    SandboxImage,
    Builtin(String),
    Excluded {
        file: String,
        line: usize,
    },
    ExcludedCli,
    NewerThan(String),
    KeepLast,
    /// `--target-usage`: the image filesystem is at or below the target without it.
    BelowTarget(String),
    /// `--high-usage`: the image filesystem is not above the high mark, so no run prunes.
    BelowHigh(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::InUseContainer(id) => write!(f, "in-use:container:{id}"),
            Reason::InUseSandbox(id) => write!(f, "in-use:sandbox:{id}"),
            Reason::Pinned(by) => write!(f, "pinned:{by}"),
            Reason::SandboxImage => f.write_str("allowlist:sandbox-image"),
            Reason::Builtin(p) => write!(f, "allowlist:builtin:{p}"),
            Reason::Excluded { file, line } => write!(f, "excluded:{file}:{line}"),
            Reason::ExcludedCli => f.write_str("excluded:cli"),
            Reason::NewerThan(d) => write!(f, "newer-than:{d}"),
            Reason::KeepLast => f.write_str("keep-last"),
            Reason::BelowTarget(p) => write!(f, "target-usage:{p}"),
            Reason::BelowHigh(p) => write!(f, "high-usage:{p}"),
        }
    }
}

/// The protections that hold for every image whichever command asks (`list`'s PROTECTED,
/// prune and `--why`): use, pins, the sandbox image (as the inventory's join marked it),
/// the built-in allowlist and the operator's exclusions.
#[derive(Debug, Clone)]
pub(crate) struct Protection {
    builtin: Vec<RefPattern>,
    excludes: Vec<ExcludeRule>,
}

impl Protection {
    pub(crate) fn new(builtin_allowlist: bool, excludes: Vec<ExcludeRule>) -> Protection {
        let builtin = if builtin_allowlist {
            BUILTIN_ALLOWLIST
                .iter()
                .map(|p| RefPattern::new(p).expect("built-in patterns are valid"))
                .collect()
        } else {
            Vec::new()
        };
        Protection { builtin, excludes }
    }

    /// Every reason of layers 1 to 4 that holds for `image`, in the contract's order.
    pub(crate) fn reasons(&self, image: &Image) -> Vec<Reason> {
        let mut reasons: Vec<Reason> = image
            .containers
            .iter()
            .map(|c| Reason::InUseContainer(c.clone()))
            .chain(
                image
                    .sandboxes
                    .iter()
                    .map(|s| Reason::InUseSandbox(s.clone())),
            )
            .chain(image.pinned_by().into_iter().map(Reason::Pinned))
            .collect();
        if image.sandbox_image {
            reasons.push(Reason::SandboxImage);
        }
        reasons.extend(
            self.builtin
                .iter()
                .filter(|p| p.matches(image))
                .map(|p| Reason::Builtin(p.text.clone())),
        );
        reasons.extend(
            self.excludes
                .iter()
                .filter(|r| r.matches(image))
                .map(ExcludeRule::reason),
        );
        reasons
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ImageRecord, LABEL_CRI_PINNED, LABEL_K3S_PINNED};

    fn image(tags: &[&str]) -> Image {
        Image {
            id: "sha256:1111".into(),
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            ..Image::default()
        }
    }

    /// The runtime's configured sandbox image, as the inventory's join marks it.
    fn sandbox_image() -> Image {
        Image {
            sandbox_image: true,
            ..image(&["registry.k8s.io/pause:3.9"])
        }
    }

    fn labelled(tags: &[&str], labels: &[(&str, &str)]) -> Image {
        let mut i = image(tags);
        i.records.push(ImageRecord {
            name: tags[0].into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ImageRecord::default()
        });
        i
    }

    #[test]
    fn reasons_table() {
        let mut used = image(&["docker.io/library/app:1"]);
        used.containers = vec!["c1".into()];
        used.sandboxes = vec!["s1".into()];
        let mut cri_pinned = image(&["docker.io/library/app:2"]);
        cri_pinned.pinned_cri = true;
        // containerd 1.7 and later report the user's label through CRI as well.
        let mut user_pin_cri_reports = labelled(
            &["docker.io/library/app:1"],
            &[(LABEL_CRI_PINNED, "pinned")],
        );
        user_pin_cri_reports.pinned_cri = true;
        let mut k3s_pin_cri_reports = labelled(
            &["docker.io/library/app:1"],
            &[(LABEL_CRI_PINNED, "pinned"), (LABEL_K3S_PINNED, "pinned")],
        );
        k3s_pin_cri_reports.pinned_cri = true;
        // The label CRI puts on the sandbox image it pulls.
        let mut runtime_pinned_sandbox = labelled(
            &["registry.k8s.io/pause:3.9"],
            &[(LABEL_CRI_PINNED, "pinned")],
        );
        runtime_pinned_sandbox.sandbox_image = true;
        runtime_pinned_sandbox.pinned_cri = true;

        let cases: Vec<(&str, Image, bool, Vec<&str>)> = vec![
            ("plain", image(&["docker.io/library/app:1"]), true, vec![]),
            (
                "used",
                used,
                true,
                vec!["in-use:container:c1", "in-use:sandbox:s1"],
            ),
            ("cri pin", cri_pinned, true, vec!["pinned:cri"]),
            (
                "user pin",
                labelled(
                    &["docker.io/library/app:1"],
                    &[(LABEL_CRI_PINNED, "pinned")],
                ),
                true,
                vec!["pinned:user"],
            ),
            (
                "user pin CRI reports",
                user_pin_cri_reports,
                true,
                vec!["pinned:user"],
            ),
            (
                "k3s pin CRI reports",
                k3s_pin_cri_reports,
                true,
                vec!["pinned:k3s"],
            ),
            (
                "runtime's pin on its sandbox image",
                runtime_pinned_sandbox,
                false,
                vec!["pinned:cri", "allowlist:sandbox-image"],
            ),
            (
                "k3s pin",
                labelled(
                    &["docker.io/library/app:1"],
                    &[(LABEL_CRI_PINNED, "pinned"), (LABEL_K3S_PINNED, "pinned")],
                ),
                true,
                vec!["pinned:k3s"],
            ),
            (
                "label with another value is no pin",
                labelled(&["docker.io/library/app:1"], &[(LABEL_CRI_PINNED, "no")]),
                true,
                vec![],
            ),
            (
                "sandbox image",
                sandbox_image(),
                true,
                vec!["allowlist:sandbox-image", "allowlist:builtin:**/pause"],
            ),
            (
                "sandbox image without builtins",
                sandbox_image(),
                false,
                vec!["allowlist:sandbox-image"],
            ),
            (
                "other pause",
                image(&["docker.io/rancher/mirrored-pause:3.6"]),
                true,
                vec!["allowlist:builtin:**/mirrored-pause"],
            ),
            (
                "apiserver",
                image(&["registry.k8s.io/kube-apiserver:v1.30.0"]),
                true,
                vec!["allowlist:builtin:**/kube-apiserver"],
            ),
            (
                "coredns nested",
                image(&["registry.k8s.io/coredns/coredns:v1.11.1"]),
                true,
                vec!["allowlist:builtin:**/coredns"],
            ),
            (
                "k3s system",
                image(&["docker.io/rancher/klipper-helm:v0.8"]),
                true,
                vec!["allowlist:builtin:docker.io/rancher/klipper-helm"],
            ),
            (
                "not a system image",
                image(&["docker.io/library/etcd-operator:1"]),
                true,
                vec![],
            ),
        ];
        for (name, img, builtin, want) in cases {
            let p = Protection::new(builtin, Vec::new());
            let got: Vec<String> = p.reasons(&img).iter().map(ToString::to_string).collect();
            assert_eq!(got, want, "{name}");
        }
    }
}
