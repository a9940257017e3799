//! Registries: where an image's blobs came from, the node's mirror configuration, and
//! fetching blobs back (for `crimg export --fetch-missing`).

pub(crate) mod auth;
pub(crate) mod config;
pub(crate) mod fetch;
pub(crate) mod policy;

use std::collections::BTreeMap;

use crate::oci::gc::DISTRIBUTION_SOURCE;

/// A registry host and repository to fetch from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Source {
    /// `docker.io`, `127.0.0.1:5000`.
    pub(crate) host: String,
    /// `library/nginx`.
    pub(crate) repository: String,
}

impl Source {
    /// The host and repository of a normalised image name.
    pub(crate) fn from_name(name: &str) -> Option<Source> {
        if name.starts_with("sha256:") {
            return None;
        }
        let repo = crate::reference::repository_of(name);
        let (host, repository) = repo.split_once('/')?;
        (!host.is_empty() && !repository.is_empty()).then(|| Source {
            host: host.to_string(),
            repository: repository.to_string(),
        })
    }

    /// The `distribution.source` label for this source.
    pub(crate) fn label(&self) -> (String, String) {
        (
            format!("{DISTRIBUTION_SOURCE}{}", self.host),
            self.repository.clone(),
        )
    }
}

/// Where to fetch an image's blobs from, best first: the `distribution.source` labels of
/// its content (those of the names' own hosts first), then the image names themselves.
pub(crate) fn sources(labels: &[&BTreeMap<String, String>], names: &[String]) -> Vec<Source> {
    let from_names: Vec<Source> = names.iter().filter_map(|n| Source::from_name(n)).collect();
    let mut labelled = Vec::new();
    for l in labels {
        for (k, v) in l.iter() {
            let Some(host) = k.strip_prefix(DISTRIBUTION_SOURCE) else {
                continue;
            };
            // containerd 1.6 writes the host without its port (`…source.127.0.0.1`);
            // a name on that host with a port says which port.
            let host = from_names
                .iter()
                .find(|n| n.host.rsplit_once(':').is_some_and(|(h, _)| h == host))
                .map_or(host, |n| n.host.as_str());
            for repo in v.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                labelled.push(Source {
                    host: host.to_string(),
                    repository: repo.to_string(),
                });
            }
        }
    }
    // Labels from the names' own hosts first: the image was pulled from there.
    labelled.sort_by_key(|s| !from_names.iter().any(|n| n.host == s.host));
    let mut out: Vec<Source> = Vec::new();
    for s in labelled.into_iter().chain(from_names) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(host: &str, repo: &str) -> Source {
        Source {
            host: host.into(),
            repository: repo.into(),
        }
    }

    #[test]
    fn sources_from_labels_and_names() {
        let manifest = BTreeMap::from([
            (
                "containerd.io/distribution.source.mirror.corp".to_string(),
                "proxy/app".to_string(),
            ),
            (
                "containerd.io/distribution.source.127.0.0.1:5000".to_string(),
                "team/app,team/app2".to_string(),
            ),
            (
                "containerd.io/gc.ref.content.config".to_string(),
                "sha256:x".to_string(),
            ),
        ]);
        let config = BTreeMap::from([(
            "containerd.io/distribution.source.127.0.0.1:5000".to_string(),
            "team/app".to_string(),
        )]);
        let got = sources(
            &[&manifest, &config],
            &["127.0.0.1:5000/team/app:v1".to_string()],
        );
        assert_eq!(
            got,
            vec![
                s("127.0.0.1:5000", "team/app"),
                s("127.0.0.1:5000", "team/app2"),
                s("mirror.corp", "proxy/app"),
            ]
        );
        // containerd 1.6 drops the port from the label key; the name has it.
        let portless = BTreeMap::from([(
            "containerd.io/distribution.source.127.0.0.1".to_string(),
            "team/app".to_string(),
        )]);
        assert_eq!(
            sources(&[&portless], &["127.0.0.1:5000/team/app:v1".to_string()]),
            vec![s("127.0.0.1:5000", "team/app")]
        );
        // No labels: the names say where.
        let got = sources(
            &[],
            &[
                "docker.io/library/nginx:1.25".to_string(),
                "docker.io/library/nginx@sha256:abc".to_string(),
                "sha256:0123".to_string(),
                "reg.local:5000/a/b/c:1".to_string(),
            ],
        );
        assert_eq!(
            got,
            vec![
                s("docker.io", "library/nginx"),
                s("reg.local:5000", "a/b/c")
            ]
        );
    }
}
