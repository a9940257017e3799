//! The node's registry configuration, read the way containerd and K3s read it, and the
//! order of endpoints a blob is fetched from.
//!
//! Two sources, both optional:
//! - containerd's hosts directory (`/etc/containerd/certs.d`): `<dir>/<host>/hosts.toml`,
//!   else `<dir>/_default/hosts.toml`, with `server` and `[host."<url>"]` tables tried in
//!   file order (`capabilities`, `skip_verify`, `ca`, `override_path`, `header`);
//! - K3s's `registries.yaml`: `mirrors."<host>".endpoint` (or the `"*"` mirror when the
//!   host has no entry of its own), `configs."<endpoint host>".auth` and `.tls`.
//!
//! For one registry host the order is: its `registries.yaml` mirrors, then its
//! `hosts.toml` mirrors, then the default endpoint (`server`, else `https://<host>`, with
//! `docker.io` → `registry-1.docker.io`). A loopback registry (`localhost`, `127.0.0.0/8`,
//! `::1`) with no `server` is tried over HTTPS then plain HTTP, as Docker treats local
//! registries as insecure; anywhere else plain HTTP is used only where a configured URL
//! says `http://`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Deserialize;

use crate::error::CrimgError;

mod endpoints;
mod hosts_toml;
mod registries_yaml;

/// K3s's registries file, read unless another is named.
pub(crate) const DEFAULT_REGISTRIES_YAML: &str = "/etc/rancher/k3s/registries.yaml";

#[cfg(test)]
mod tests;

pub(crate) use endpoints::*;
pub(crate) use hosts_toml::*;
pub(crate) use registries_yaml::*;

/// Where an endpoint came from: mirrors get containerd's `ns=<host>` query parameter and
/// are expected to lack blobs sometimes; the default endpoint is the registry itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndpointKind {
    Mirror,
    Default,
}

/// Credentials for an endpoint (from `registries.yaml`).
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Credentials {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (Docker's `identitytoken`).
    IdentityToken(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::IdentityToken(_) => write!(f, "IdentityToken(***)"),
        }
    }
}

/// One place to fetch from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The API root, `/v2` included: `https://mirror.local:5000/v2`.
    pub(crate) base: String,
    pub(crate) kind: EndpointKind,
    pub(crate) skip_verify: bool,
    /// Extra CA certificates (PEM files) to trust.
    pub(crate) ca: Vec<PathBuf>,
    pub(crate) credentials: Option<Credentials>,
    /// Extra request headers (hosts.toml `[host."…".header]`).
    pub(crate) headers: Vec<(String, String)>,
    /// For messages: `registries.yaml mirrors."*"`, `/etc/containerd/certs.d/x/hosts.toml`.
    pub(crate) origin: String,
}

impl Endpoint {
    /// `host[:port]` of the endpoint.
    pub(crate) fn authority(&self) -> &str {
        authority_of(&self.base)
    }
}

/// A host's own `registries.yaml` `configs` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HostSettings {
    /// Whether the host has an entry at all.
    pub(crate) configured: bool,
    pub(crate) credentials: Option<Credentials>,
    pub(crate) skip_verify: bool,
    pub(crate) ca: Vec<PathBuf>,
}

/// A registry configuration file's text, `None` when it does not exist; one that is not a
/// regular file of sane size (a FIFO, `/dev/zero`) is a usage error naming it, never read.
fn read_config(path: &Path) -> Result<Option<String>> {
    crate::files::read_text(path, crate::files::MAX_CONFIG_SIZE)
        .map_err(|e| CrimgError::Usage(format!("{e:#}")).into())
}

/// The registry configuration of the node.
#[derive(Debug, Clone, Default)]
pub(crate) struct RegistryConfig {
    pub(crate) hosts_dir: Option<PathBuf>,
    pub(crate) k3s: Option<(PathBuf, RegistriesYaml)>,
}

impl RegistryConfig {
    /// Reads `registries.yaml` (if it exists) and remembers the hosts directory (whose
    /// files are read per registry). A file that exists but cannot be read or parsed is a
    /// usage error naming it.
    pub(crate) fn load(hosts_dir: &Path, registries_yaml: &Path) -> Result<RegistryConfig> {
        let k3s = match read_config(registries_yaml)? {
            Some(text) => Some((
                registries_yaml.to_path_buf(),
                parse_registries_yaml(&text, registries_yaml)
                    .map_err(|e| CrimgError::Usage(format!("{e:#}")))?,
            )),
            None => None,
        };
        Ok(RegistryConfig {
            hosts_dir: hosts_dir.is_dir().then(|| hosts_dir.to_path_buf()),
            k3s,
        })
    }

    /// The hosts file that applies to `host`: its own, else `_default`.
    pub(crate) fn hosts_file(&self, host: &str) -> Result<Option<HostsFile>> {
        let Some(dir) = &self.hosts_dir else {
            return Ok(None);
        };
        for name in [host_dir_name(host), "_default".to_string()] {
            let path = dir.join(name).join("hosts.toml");
            if let Some(text) = read_config(&path)? {
                return parse_hosts_toml(&text, &path)
                    .map(Some)
                    .map_err(|e| CrimgError::Usage(format!("{e:#}")).into());
            }
        }
        Ok(None)
    }

    /// What `registries.yaml` `configs` says about a host that is not an endpoint (a
    /// token realm or a redirect target): its own credentials and TLS settings, if any.
    pub(crate) fn host_settings(&self, authority: &str) -> HostSettings {
        let c = self
            .k3s
            .as_ref()
            .and_then(|(_, y)| y.configs.get(authority));
        let tls = c.and_then(|c| c.tls.as_ref());
        HostSettings {
            configured: c.is_some(),
            credentials: k3s_credentials(c),
            skip_verify: tls.is_some_and(|t| t.insecure_skip_verify),
            ca: tls.and_then(|t| t.ca_file.clone()).into_iter().collect(),
        }
    }

    /// Every endpoint to try for `host`, in order.
    pub(crate) fn endpoints(&self, host: &str) -> Result<Vec<Endpoint>> {
        let hosts = self.hosts_file(host)?;
        Ok(plan_endpoints(
            host,
            self.k3s.as_ref().map(|(p, y)| (p.as_path(), y)),
            hosts.as_ref(),
        ))
    }
}

/// containerd names a host's directory after the host, port included (`host:port`).
fn host_dir_name(host: &str) -> String {
    host.to_string()
}
