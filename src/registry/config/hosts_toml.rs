//! containerd's hosts directory: one `hosts.toml` parsed into its `server` and its
//! `[host."<url>"]` tables, in file order.

use super::*;

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
pub(super) struct HostsToml {
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
pub(super) struct HostToml {
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
pub(super) enum OneOrMany {
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

pub(super) fn headers(t: Option<toml::Table>) -> Vec<(String, String)> {
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
