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

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::error::CrimgError;

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

/// `registries.yaml`, as K3s and RKE2 read it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub(crate) struct RegistriesYaml {
    #[serde(default)]
    pub(crate) mirrors: BTreeMap<String, K3sMirror>,
    #[serde(default)]
    pub(crate) configs: BTreeMap<String, K3sConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub(crate) struct K3sMirror {
    #[serde(default)]
    pub(crate) endpoint: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub(crate) struct K3sConfig {
    #[serde(default)]
    pub(crate) auth: Option<K3sAuth>,
    #[serde(default)]
    pub(crate) tls: Option<K3sTls>,
}

#[derive(Clone, Default, Deserialize, PartialEq)]
pub(crate) struct K3sAuth {
    #[serde(default)]
    pub(crate) username: Option<String>,
    #[serde(default)]
    pub(crate) password: Option<String>,
    /// base64 of `username:password`.
    #[serde(default)]
    pub(crate) auth: Option<String>,
    #[serde(default)]
    pub(crate) identity_token: Option<String>,
}

impl std::fmt::Debug for K3sAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "K3sAuth({:?}, ***)", self.username)
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub(crate) struct K3sTls {
    #[serde(default)]
    pub(crate) ca_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) insecure_skip_verify: bool,
}

/// One `hosts.toml`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HostsFile {
    pub(crate) path: PathBuf,
    pub(crate) server: Option<String>,
    pub(crate) server_skip_verify: bool,
    pub(crate) server_ca: Vec<PathBuf>,
    pub(crate) server_headers: Vec<(String, String)>,
    /// In file order.
    pub(crate) hosts: Vec<HostEntry>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HostEntry {
    pub(crate) url: String,
    pub(crate) capabilities: Vec<String>,
    pub(crate) skip_verify: bool,
    pub(crate) ca: Vec<PathBuf>,
    pub(crate) override_path: bool,
    pub(crate) headers: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct HostsToml {
    server: Option<String>,
    #[serde(default)]
    skip_verify: bool,
    #[serde(default)]
    ca: Option<OneOrMany>,
    #[serde(default)]
    header: Option<toml::Table>,
    // Parsed as a table so that its keys keep file order (toml's preserve_order).
    #[serde(default)]
    host: Option<toml::Table>,
}

#[derive(Deserialize)]
struct HostToml {
    #[serde(default)]
    capabilities: Option<Vec<String>>,
    #[serde(default)]
    skip_verify: bool,
    #[serde(default)]
    ca: Option<OneOrMany>,
    #[serde(default)]
    override_path: bool,
    #[serde(default)]
    header: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn paths(self) -> Vec<PathBuf> {
        match self {
            OneOrMany::One(s) => vec![PathBuf::from(s)],
            OneOrMany::Many(v) => v.into_iter().map(PathBuf::from).collect(),
        }
    }
}

fn headers(t: Option<toml::Table>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in t.unwrap_or_default() {
        match v {
            toml::Value::String(s) => out.push((k, s)),
            toml::Value::Array(a) => {
                for s in a.into_iter().filter_map(|v| v.as_str().map(str::to_string)) {
                    out.push((k.clone(), s));
                }
            }
            _ => {}
        }
    }
    out
}

/// Parses a `hosts.toml`.
pub(crate) fn parse_hosts_toml(text: &str, path: &Path) -> Result<HostsFile> {
    let doc: HostsToml = toml::from_str(text)
        .map_err(|e| anyhow::anyhow!("{}: not a valid hosts.toml: {e}", path.display()))?;
    let mut hosts = Vec::new();
    for (url, value) in doc.host.unwrap_or_default() {
        let h: HostToml = value
            .try_into()
            .map_err(|e| anyhow::anyhow!("{}: host {url:?} is not valid: {e}", path.display()))?;
        hosts.push(HostEntry {
            url,
            // containerd's default for a host entry: pull and resolve.
            capabilities: h
                .capabilities
                .unwrap_or_else(|| vec!["pull".into(), "resolve".into()]),
            skip_verify: h.skip_verify,
            ca: h.ca.map(OneOrMany::paths).unwrap_or_default(),
            override_path: h.override_path,
            headers: headers(h.header),
        });
    }
    Ok(HostsFile {
        path: path.to_path_buf(),
        server: doc.server,
        server_skip_verify: doc.skip_verify,
        server_ca: doc.ca.map(OneOrMany::paths).unwrap_or_default(),
        server_headers: headers(doc.header),
        hosts,
    })
}

/// Parses a `registries.yaml`.
pub(crate) fn parse_registries_yaml(text: &str, path: &Path) -> Result<RegistriesYaml> {
    if text.trim().is_empty() {
        return Ok(RegistriesYaml::default());
    }
    serde_yaml_ng::from_str(text)
        .map_err(|e| anyhow::anyhow!("{}: not a valid registries.yaml: {e}", path.display()))
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
        let k3s = match std::fs::read_to_string(registries_yaml) {
            Ok(text) => Some((
                registries_yaml.to_path_buf(),
                parse_registries_yaml(&text, registries_yaml)
                    .map_err(|e| CrimgError::Usage(format!("{e:#}")))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(CrimgError::Usage(format!(
                    "cannot read {}: {e}",
                    registries_yaml.display()
                ))
                .into());
            }
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
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    return parse_hosts_toml(&text, &path)
                        .map(Some)
                        .map_err(|e| CrimgError::Usage(format!("{e:#}")).into());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("reading {}", path.display()));
                }
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

/// The registry's own endpoint: `docker.io` is served by `registry-1.docker.io`.
pub(crate) fn default_server(host: &str) -> String {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            "https://registry-1.docker.io".into()
        }
        _ => format!("https://{host}"),
    }
}

/// Whether `host` (`name[:port]`) is this machine.
pub(crate) fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    };
    // containerd's list: not `*.localhost`, which DNS may send anywhere.
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
        || name
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A URL as it may be printed: without a `user:password@` part.
pub(crate) fn redact(url: &str) -> String {
    split_userinfo(url).0
}

/// Splits `scheme://user:password@rest` into the URL without its user part and the
/// (percent-decoded) user and password, if any.
pub(crate) fn split_userinfo(url: &str) -> (String, Option<(String, String)>) {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..auth_end].rfind('@') else {
        return (url.to_string(), None);
    };
    let (user, pass) = rest[..at].split_once(':').unwrap_or((&rest[..at], ""));
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let clean = match scheme {
        Some(s) => format!("{s}://{}", &rest[at + 1..]),
        None => rest[at + 1..].to_string(),
    };
    (clean, Some((decode(user), decode(pass))))
}

/// `scheme://authority/path` → `authority`.
fn authority_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// Adds `https://` when a configured endpoint has no scheme, and the API path: `/v2` is
/// appended unless the path already ends with it or `override_path` says the path is the
/// API root as written.
pub(crate) fn api_base(url: &str, override_path: bool) -> String {
    let with_scheme = if url.contains("://") {
        url.to_string()
    } else {
        format!("https://{url}")
    };
    let trimmed = with_scheme.trim_end_matches('/');
    let (scheme, rest) = trimmed.split_once("://").unwrap_or(("https", trimmed));
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    if override_path || path.ends_with("/v2") {
        format!("{scheme}://{rest}")
    } else {
        format!("{scheme}://{rest}/v2")
    }
}

/// K3s's endpoint paths: an endpoint with a path uses it as the API root (as K3s sets
/// `override_path` for it); one without gets `/v2`.
fn k3s_base(url: &str) -> String {
    let with_scheme = if url.contains("://") {
        url.to_string()
    } else {
        format!("https://{url}")
    };
    let trimmed = with_scheme.trim_end_matches('/');
    let rest = trimmed.split_once("://").map_or(trimmed, |(_, r)| r);
    api_base(trimmed, rest.contains('/'))
}

fn basic((username, password): (String, String)) -> Credentials {
    Credentials::Basic { username, password }
}

fn k3s_credentials(c: Option<&K3sConfig>) -> Option<Credentials> {
    let auth = c?.auth.as_ref()?;
    if let Some(t) = auth.identity_token.as_ref().filter(|t| !t.is_empty()) {
        return Some(Credentials::IdentityToken(t.clone()));
    }
    if let (Some(u), Some(p)) = (&auth.username, &auth.password) {
        return Some(Credentials::Basic {
            username: u.clone(),
            password: p.clone(),
        });
    }
    let decoded = base64_decode(auth.auth.as_deref()?)?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some(Credentials::Basic {
        username: u.to_string(),
        password: p.to_string(),
    })
}

/// Standard base64 with or without padding; `None` when it is not base64.
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in s.trim().bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The endpoints for `host`, in the order they are tried (see the module docs).
pub(crate) fn plan_endpoints(
    host: &str,
    k3s: Option<(&Path, &RegistriesYaml)>,
    hosts: Option<&HostsFile>,
) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = Vec::new();
    let configs = k3s.map(|(_, y)| &y.configs);
    let config_for = |authority: &str| configs.and_then(|c| c.get(authority));
    let tls_of = |c: Option<&K3sConfig>| {
        let tls = c.and_then(|c| c.tls.as_ref());
        (
            tls.is_some_and(|t| t.insecure_skip_verify),
            tls.and_then(|t| t.ca_file.clone()).into_iter().collect(),
        )
    };

    if let Some((path, yaml)) = k3s {
        // The wildcard applies only to registries without a mirror entry of their own.
        let (key, mirror) = match yaml.mirrors.get(host) {
            Some(m) => (host, Some(m)),
            None => ("*", yaml.mirrors.get("*")),
        };
        for url in mirror.map(|m| m.endpoint.as_slice()).unwrap_or_default() {
            let (url, in_url) = split_userinfo(url);
            let base = k3s_base(&url);
            let c = config_for(authority_of(&base));
            let (skip_verify, ca) = tls_of(c);
            out.push(Endpoint {
                kind: EndpointKind::Mirror,
                skip_verify,
                ca,
                credentials: k3s_credentials(c).or(in_url.map(basic)),
                headers: vec![],
                origin: format!("{} mirrors.{key:?}", path.display()),
                base,
            });
        }
    }
    if let Some(h) = hosts {
        for e in &h.hosts {
            if !e.capabilities.iter().any(|c| c == "pull") {
                continue;
            }
            let (url, in_url) = split_userinfo(&e.url);
            let base = api_base(&url, e.override_path);
            let c = config_for(authority_of(&base));
            out.push(Endpoint {
                kind: EndpointKind::Mirror,
                skip_verify: e.skip_verify,
                ca: e.ca.clone(),
                credentials: k3s_credentials(c).or(in_url.map(basic)),
                headers: e.headers.clone(),
                origin: format!("{} host {:?}", h.path.display(), url),
                base,
            });
        }
    }
    let server = hosts.and_then(|h| h.server.as_deref()).map(split_userinfo);
    let defaults: Vec<String> = match &server {
        Some((s, _)) => vec![api_base(s, false)],
        None if is_loopback(host) => vec![
            api_base(&format!("https://{host}"), false),
            api_base(&format!("http://{host}"), false),
        ],
        None => vec![api_base(&default_server(host), false)],
    };
    for base in defaults {
        let c = config_for(authority_of(&base)).or_else(|| config_for(host));
        let (mut skip_verify, mut ca) = tls_of(c);
        let mut headers = vec![];
        let origin = match hosts.filter(|h| h.server.is_some()) {
            Some(h) => {
                skip_verify |= h.server_skip_verify;
                ca.extend(h.server_ca.iter().cloned());
                headers = h.server_headers.clone();
                format!("{} server", h.path.display())
            }
            None => "the registry's default endpoint".to_string(),
        };
        out.push(Endpoint {
            kind: EndpointKind::Default,
            skip_verify,
            ca,
            credentials: k3s_credentials(c)
                .or_else(|| server.as_ref().and_then(|(_, u)| u.clone()).map(basic)),
            headers,
            origin,
            base,
        });
    }
    // The same URL configured twice is tried once, where it first appears; a mirror
    // entry naming the registry itself counts as its default endpoint.
    let mut seen = std::collections::HashSet::new();
    out.retain(|e| seen.insert(e.base.clone()));
    let default_bases: Vec<String> = out
        .iter()
        .filter(|e| e.kind == EndpointKind::Default)
        .map(|e| e.base.clone())
        .collect();
    for e in &mut out {
        if default_bases.contains(&e.base) {
            e.kind = EndpointKind::Default;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bases(e: &[Endpoint]) -> Vec<(&str, EndpointKind)> {
        e.iter().map(|e| (e.base.as_str(), e.kind)).collect()
    }

    use EndpointKind::{Default as D, Mirror as M};

    const YAML: &str = r#"
mirrors:
  docker.io:
    endpoint:
      - "https://mirror.corp:5000"
      - "http://plain.corp"
  "*":
    endpoint:
      - "http://127.0.0.1:1"
      - "cache.corp/proxy/path"
  reg.local:
    endpoint: []
configs:
  "mirror.corp:5000":
    auth:
      username: alice
      password: secret
    tls:
      insecure_skip_verify: true
  "cache.corp":
    auth:
      auth: Ym9iOmh1bnRlcjI=
  "quay.io":
    auth:
      identity_token: tok
"#;

    #[test]
    fn registries_yaml_order_wildcard_and_fallback() {
        let y = parse_registries_yaml(YAML, Path::new("r.yaml")).unwrap();
        let k3s = Some((Path::new("r.yaml"), &y));
        let cases: Vec<(&str, Vec<(&str, EndpointKind)>)> = vec![
            (
                "docker.io",
                vec![
                    ("https://mirror.corp:5000/v2", M),
                    ("http://plain.corp/v2", M),
                    ("https://registry-1.docker.io/v2", D),
                ],
            ),
            (
                "quay.io",
                vec![
                    ("http://127.0.0.1:1/v2", M),
                    ("https://cache.corp/proxy/path", M),
                    ("https://quay.io/v2", D),
                ],
            ),
            // An entry of its own (even empty) means the wildcard does not apply.
            ("reg.local", vec![("https://reg.local/v2", D)]),
            // Loopback registries: HTTPS, then plain HTTP.
            (
                "127.0.0.1:5000",
                vec![
                    ("http://127.0.0.1:1/v2", M),
                    ("https://cache.corp/proxy/path", M),
                    ("https://127.0.0.1:5000/v2", D),
                    ("http://127.0.0.1:5000/v2", D),
                ],
            ),
        ];
        for (host, want) in cases {
            assert_eq!(bases(&plan_endpoints(host, k3s, None)), want, "{host}");
        }
        let e = plan_endpoints("docker.io", k3s, None);
        assert_eq!(
            e[0].credentials,
            Some(Credentials::Basic {
                username: "alice".into(),
                password: "secret".into()
            })
        );
        assert!(e[0].skip_verify);
        assert!(!e[1].skip_verify && e[1].credentials.is_none());
        assert!(
            e[0].origin.contains("mirrors.\"docker.io\""),
            "{}",
            e[0].origin
        );
        let q = plan_endpoints("quay.io", k3s, None);
        assert_eq!(
            q[1].credentials,
            Some(Credentials::Basic {
                username: "bob".into(),
                password: "hunter2".into()
            })
        );
        assert!(q[0].origin.contains("mirrors.\"*\""));
        assert_eq!(
            q[2].credentials,
            Some(Credentials::IdentityToken("tok".into()))
        );
    }

    #[test]
    fn credentials_in_urls_leave_the_url() {
        let y = parse_registries_yaml(
            "mirrors:\n  a.io:\n    endpoint: [\"http://bob:pw1@m.corp:5000\", \"https://eve:pw2@c.corp\"]\n\
             configs:\n  c.corp:\n    auth:\n      username: carol\n      password: pw3\n",
            Path::new("r.yaml"),
        )
        .unwrap();
        let h = parse_hosts_toml(
            "server = \"https://srv:pw4@s.corp\"\n[host.\"https://dan:pw5@h.corp\"]\n",
            Path::new("h.toml"),
        )
        .unwrap();
        let e = plan_endpoints("a.io", Some((Path::new("r.yaml"), &y)), Some(&h));
        let basic = |u: &str, p: &str| {
            Some(Credentials::Basic {
                username: u.into(),
                password: p.into(),
            })
        };
        assert_eq!(
            bases(&e),
            vec![
                ("http://m.corp:5000/v2", M),
                ("https://c.corp/v2", M),
                ("https://h.corp/v2", M),
                ("https://s.corp/v2", D),
            ]
        );
        assert_eq!(e[0].credentials, basic("bob", "pw1"));
        // The host's configs entry wins over a user part in the URL.
        assert_eq!(e[1].credentials, basic("carol", "pw3"));
        assert_eq!(e[2].credentials, basic("dan", "pw5"));
        assert_eq!(e[3].credentials, basic("srv", "pw4"));
        for e in &e {
            assert!(!format!("{e:?}").contains("pw"), "{e:?}");
        }
        let c = RegistryConfig {
            hosts_dir: None,
            k3s: Some((PathBuf::from("r.yaml"), y)),
        };
        assert_eq!(
            c.host_settings("c.corp"),
            HostSettings {
                configured: true,
                credentials: basic("carol", "pw3"),
                skip_verify: false,
                ca: vec![],
            }
        );
        assert_eq!(c.host_settings("m.corp:5000"), HostSettings::default());
    }

    #[test]
    fn no_configuration_at_all() {
        let cases = [
            ("docker.io", vec![("https://registry-1.docker.io/v2", D)]),
            ("ghcr.io", vec![("https://ghcr.io/v2", D)]),
            (
                "localhost:5000",
                vec![
                    ("https://localhost:5000/v2", D),
                    ("http://localhost:5000/v2", D),
                ],
            ),
            (
                "[::1]:5000",
                vec![("https://[::1]:5000/v2", D), ("http://[::1]:5000/v2", D)],
            ),
            ("10.0.0.1:5000", vec![("https://10.0.0.1:5000/v2", D)]),
        ];
        for (host, want) in cases {
            assert_eq!(bases(&plan_endpoints(host, None, None)), want, "{host}");
        }
    }

    const HOSTS: &str = r#"
server = "https://registry-1.docker.io"

[host."http://127.0.0.1:1"]
  capabilities = ["pull", "resolve"]

[host."https://push-only.corp"]
  capabilities = ["push"]

[host."https://mirror.corp/v2/proxy"]
  override_path = true
  skip_verify = true
  ca = ["/etc/ca1.pem", "/etc/ca2.pem"]
  [host."https://mirror.corp/v2/proxy".header]
    x-token = "abc"

[host."https://a.corp"]
"#;

    #[test]
    fn hosts_toml_order_capabilities_and_paths() {
        let h = parse_hosts_toml(HOSTS, Path::new("/certs.d/docker.io/hosts.toml")).unwrap();
        assert_eq!(h.hosts.len(), 4);
        let e = plan_endpoints("docker.io", None, Some(&h));
        assert_eq!(
            bases(&e),
            vec![
                ("http://127.0.0.1:1/v2", M),
                ("https://mirror.corp/v2/proxy", M),
                ("https://a.corp/v2", M),
                ("https://registry-1.docker.io/v2", D),
            ]
        );
        assert!(e[1].skip_verify);
        assert_eq!(
            e[1].ca,
            vec![PathBuf::from("/etc/ca1.pem"), PathBuf::from("/etc/ca2.pem")]
        );
        assert_eq!(e[1].headers, vec![("x-token".into(), "abc".into())]);
        assert!(
            e[3].origin.ends_with("hosts.toml server"),
            "{}",
            e[3].origin
        );

        // A plain-HTTP server for a local registry, with a dead mirror first.
        let local = parse_hosts_toml(
            "server = \"http://127.0.0.1:5000\"\n[host.\"http://127.0.0.1:1\"]\n",
            Path::new("h.toml"),
        )
        .unwrap();
        assert_eq!(
            bases(&plan_endpoints("127.0.0.1:5000", None, Some(&local))),
            vec![
                ("http://127.0.0.1:1/v2", M),
                ("http://127.0.0.1:5000/v2", D)
            ]
        );

        // Both files: registries.yaml mirrors, hosts.toml mirrors, then the server; a
        // URL listed twice is tried once.
        let y = parse_registries_yaml(
            "mirrors:\n  docker.io:\n    endpoint: [\"http://127.0.0.1:1\", \"https://z.corp\"]\n",
            Path::new("r.yaml"),
        )
        .unwrap();
        let both = plan_endpoints("docker.io", Some((Path::new("r.yaml"), &y)), Some(&h));
        assert_eq!(
            bases(&both),
            vec![
                ("http://127.0.0.1:1/v2", M),
                ("https://z.corp/v2", M),
                ("https://mirror.corp/v2/proxy", M),
                ("https://a.corp/v2", M),
                ("https://registry-1.docker.io/v2", D),
            ]
        );
    }

    #[test]
    fn bad_files_are_errors_naming_them() {
        let e = parse_hosts_toml("server = [", Path::new("/x/hosts.toml")).unwrap_err();
        assert!(e.to_string().contains("/x/hosts.toml"), "{e}");
        let e = parse_hosts_toml(
            "[host.\"h\"]\nskip_verify = \"yes\"",
            Path::new("/x/h.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"h\""), "{e}");
        let e = parse_registries_yaml("mirrors: [1, 2]", Path::new("/y/r.yaml")).unwrap_err();
        assert!(e.to_string().contains("/y/r.yaml"), "{e}");
        assert_eq!(
            parse_registries_yaml("  \n", Path::new("r")).unwrap(),
            RegistriesYaml::default()
        );
    }

    #[test]
    fn helpers() {
        for (url, ov, want) in [
            ("https://m.corp", false, "https://m.corp/v2"),
            ("https://m.corp/", false, "https://m.corp/v2"),
            ("https://m.corp/v2", false, "https://m.corp/v2"),
            ("https://m.corp/v2/", false, "https://m.corp/v2"),
            ("https://m.corp/prefix", false, "https://m.corp/prefix/v2"),
            ("https://m.corp/prefix", true, "https://m.corp/prefix"),
            ("m.corp:5000", false, "https://m.corp:5000/v2"),
            ("http://127.0.0.1:5000", false, "http://127.0.0.1:5000/v2"),
        ] {
            assert_eq!(api_base(url, ov), want, "{url} {ov}");
        }
        for (host, want) in [
            ("localhost", true),
            ("localhost:5000", true),
            ("127.0.0.1:5000", true),
            ("127.1.2.3", true),
            ("[::1]:5000", true),
            ("LocalHost", true),
            ("[::1]", true),
            ("127.255.0.1:80", true),
            ("reg.localhost:80", false),
            ("localhost.localdomain", false),
            ("128.0.0.1", false),
            ("[::2]:5000", false),
            ("10.0.0.1:5000", false),
            ("docker.io", false),
            ("localhost.corp", false),
        ] {
            assert_eq!(is_loopback(host), want, "{host}");
        }
        for (url, clean, creds) in [
            (
                "http://bob:pw@m.corp:5000/v2",
                "http://m.corp:5000/v2",
                Some(("bob", "pw")),
            ),
            ("https://bob@m.corp", "https://m.corp", Some(("bob", ""))),
            ("bob:p%40ss@m.corp/x", "m.corp/x", Some(("bob", "p@ss"))),
            ("https://m.corp/a@b", "https://m.corp/a@b", None),
            ("https://m.corp?x=a@b", "https://m.corp?x=a@b", None),
            ("https://a:b@c@m.corp", "https://m.corp", Some(("a", "b@c"))),
        ] {
            let (got, got_creds) = split_userinfo(url);
            assert_eq!(got, clean, "{url}");
            assert_eq!(redact(url), clean, "{url}");
            assert_eq!(
                got_creds,
                creds.map(|(u, p)| (u.to_string(), p.to_string())),
                "{url}"
            );
        }
        assert_eq!(base64_decode("Ym9iOmh1bnRlcjI=").unwrap(), b"bob:hunter2");
        assert_eq!(base64_decode("YQ").unwrap(), b"a");
        assert!(base64_decode("not base64!").is_none());
    }
}
