//! K3s's `registries.yaml`: its `mirrors` and `configs` (auth, TLS), and the credentials
//! a `configs` entry gives.

use super::*;

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

/// Parses a `registries.yaml`.
pub(crate) fn parse_registries_yaml(text: &str, path: &Path) -> Result<RegistriesYaml> {
    if text.trim().is_empty() {
        return Ok(RegistriesYaml::default());
    }
    serde_yaml_ng::from_str(text)
        .map_err(|e| anyhow::anyhow!("{}: not a valid registries.yaml: {e}", path.display()))
}

/// K3s's endpoint paths: an endpoint with a path uses it as the API root (as K3s sets
/// `override_path` for it); one without gets `/v2`.
pub(super) fn k3s_base(url: &str) -> String {
    let with_scheme = if url.contains("://") {
        url.to_string()
    } else {
        format!("https://{url}")
    };
    let trimmed = with_scheme.trim_end_matches('/');
    let rest = trimmed.split_once("://").map_or(trimmed, |(_, r)| r);
    api_base(trimmed, rest.contains('/'))
}

pub(super) fn basic((username, password): (String, String)) -> Credentials {
    Credentials::Basic { username, password }
}

pub(super) fn k3s_credentials(c: Option<&K3sConfig>) -> Option<Credentials> {
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
