//! The HTTP side of a fetch: endpoints and clients per host, the GET with its one
//! authentication round, and redirects followed hop by hop.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow};

use crate::registry::Source;
use reqwest::Url;

use crate::model::Descriptor;
use crate::registry::auth::parse_www_authenticate;
use crate::registry::config::{Endpoint, EndpointKind};
use crate::registry::policy::{self, Hop};

use super::{Attempt, Auth, Fetcher, Kind, MANIFEST_ACCEPT};

impl Fetcher {
    pub(super) fn endpoints_for(&mut self, host: &str) -> Result<Vec<Endpoint>> {
        if let Some(e) = self.endpoints.get(host) {
            return Ok(e.clone());
        }
        let e = self.config.endpoints(host)?;
        (self.debug)(&format!(
            "endpoints for {host}: {}",
            e.iter()
                .map(|e| format!("{} ({})", e.base, e.origin))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        self.endpoints.insert(host.to_string(), e.clone());
        Ok(e)
    }

    /// The HTTP client for `e`'s own origin: its TLS settings.
    pub(super) fn client(&mut self, e: &Endpoint) -> Result<reqwest::Client> {
        self.client_with(e.skip_verify, &e.ca, &e.origin)
    }

    /// The HTTP client for a URL that is not `e`'s own origin (a token realm or a redirect
    /// target): `e`'s TLS settings only on `e`'s own host and port, elsewhere that host's
    /// own `configs` entry, else the defaults. Verification is never relaxed for a host
    /// whose configuration does not relax it.
    pub(super) fn client_for(&mut self, e: &Endpoint, url: &Url) -> Result<reqwest::Client> {
        let host = policy::authority(url);
        if host == e.authority() {
            return self.client(e);
        }
        let s = self.config.host_settings(&host);
        self.client_with(s.skip_verify, &s.ca, &format!("configs.{host:?}"))
    }

    pub(super) fn client_with(
        &mut self,
        skip_verify: bool,
        ca: &[PathBuf],
        origin: &str,
    ) -> Result<reqwest::Client> {
        let key = (skip_verify, ca.to_vec());
        if let Some(c) = self.clients.get(&key) {
            return Ok(c.clone());
        }
        // Redirects are followed by `follow`, which decides what each hop may carry.
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .user_agent(concat!("crimg/", env!("CARGO_PKG_VERSION")));
        if skip_verify {
            b = b.danger_accept_invalid_certs(true);
        }
        for path in ca {
            let pem = std::fs::read(path).map_err(|err| {
                anyhow!(
                    "reading CA certificate {} ({origin}): {err}",
                    path.display()
                )
            })?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|err| anyhow!("CA certificate {} ({origin}): {err}", path.display()))?;
            b = b.add_root_certificate(cert);
        }
        let c = b
            .build()
            .map_err(|err| anyhow!("building an HTTP client: {err}"))?;
        self.clients.insert(key, c.clone());
        Ok(c)
    }

    /// Sends the GET, doing the authentication dance once when the endpoint itself
    /// challenges; follows redirects through [`Fetcher::follow`].
    pub(super) async fn open(
        &mut self,
        e: &Endpoint,
        source: &Source,
        desc: &Descriptor,
        kind: Kind,
    ) -> Result<reqwest::Response, Attempt> {
        if self.dead.contains(&e.base) {
            return Err(Attempt::Next("skipped: unreachable earlier".into()));
        }
        let path = match kind {
            Kind::Manifest => "manifests",
            Kind::Blob => "blobs",
        };
        let mut url = format!("{}/{}/{path}/{}", e.base, source.repository, desc.digest);
        if e.kind == EndpointKind::Mirror {
            // containerd tells mirrors which registry a request is for.
            url.push_str(&format!("?ns={}", source.host));
        }
        let endpoint =
            Url::parse(&e.base).map_err(|err| Attempt::Next(format!("not a usable URL: {err}")))?;
        let start =
            Url::parse(&url).map_err(|err| Attempt::Next(format!("not a usable URL: {err}")))?;
        let auth_key = (
            endpoint.origin().ascii_serialization(),
            source.repository.clone(),
        );
        let accept = (kind == Kind::Manifest)
            .then(|| format!("{}, {}", desc.media_type, MANIFEST_ACCEPT.join(", ")));
        let mut tried_auth = false;
        loop {
            let auth = self.auth.get(&auth_key).cloned();
            let (resp, at, hops) = self
                .follow(
                    e,
                    &endpoint,
                    start.clone(),
                    accept.as_deref(),
                    auth.as_ref(),
                )
                .await?;
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            if hops > 0 {
                // Only the endpoint's own answers start a login: a redirect target that
                // wants one is that hop failing.
                return Err(Attempt::Next(format!(
                    "redirect target {} answered {status}{}",
                    policy::printable(&at),
                    if status == reqwest::StatusCode::UNAUTHORIZED {
                        "; crimg sends credentials only to the endpoint itself"
                    } else {
                        ""
                    }
                )));
            }
            if status == reqwest::StatusCode::UNAUTHORIZED && !tried_auth {
                tried_auth = true;
                let challenge = resp
                    .headers()
                    .get_all(reqwest::header::WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(parse_www_authenticate)
                    .collect::<Vec<_>>();
                let auth = self.authenticate(e, &endpoint, source, &challenge).await?;
                self.auth.insert(auth_key.clone(), auth);
                continue;
            }
            return Err(Attempt::Next(match status {
                reqwest::StatusCode::NOT_FOUND => format!("does not have {}", desc.digest),
                reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN => format!(
                    "refused access ({status}); configure credentials for {} in registries.yaml `configs`",
                    e.authority()
                ),
                _ => format!("answered {status}"),
            }));
        }
    }

    /// GETs `url`, following redirects here rather than in reqwest, so that each hop's
    /// request carries only what [`policy::redirect`] allows: credentials, token and
    /// configured headers on the endpoint's own origin, nothing elsewhere. Returns the
    /// final answer, its URL and how many redirects led there.
    pub(super) async fn follow(
        &mut self,
        e: &Endpoint,
        endpoint: &Url,
        mut url: Url,
        accept: Option<&str>,
        auth: Option<&Auth>,
    ) -> Result<(reqwest::Response, Url, usize), Attempt> {
        let mut hop = Hop::Endpoint;
        let mut left = false;
        let mut hops = 0;
        loop {
            let client = match hop {
                Hop::Endpoint => self.client(e),
                Hop::Bare => self.client_for(e, &url),
            }
            .map_err(|err| Attempt::Next(format!("{err:#}")))?;
            let mut req = client.get(url.clone());
            if hop == Hop::Endpoint {
                if let Some(a) = accept {
                    req = req.header(reqwest::header::ACCEPT, a);
                }
                for (k, v) in &e.headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                match auth {
                    Some(Auth::Bearer(t)) => req = req.bearer_auth(t),
                    Some(Auth::Basic(u, p)) => req = req.basic_auth(u, Some(p)),
                    None => {}
                }
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(err) if hops == 0 => return Err(classify(&err)),
                Err(err) => {
                    return Err(Attempt::Next(format!(
                        "redirect target {}: {}",
                        policy::printable(&url),
                        cause(&err)
                    )));
                }
            };
            let status = resp.status();
            if !status.is_redirection() || status == reqwest::StatusCode::NOT_MODIFIED {
                return Ok((resp, url, hops));
            }
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| Attempt::Next(format!("answered {status} without a Location")))?;
            let mut to = url.join(location).map_err(|err| {
                Attempt::Next(format!(
                    "answered {status} with an unusable Location: {err}"
                ))
            })?;
            // A redirect never brings credentials of its own (reqwest would send a URL's
            // user part as Basic credentials).
            let _ = to.set_username("");
            let _ = to.set_password(None);
            hop = policy::redirect(endpoint, &url, &to, left, hops).map_err(Attempt::Next)?;
            left |= hop == Hop::Bare;
            hops += 1;
            (self.debug)(&format!(
                "{} redirected to {} ({})",
                policy::printable(&url),
                policy::printable(&to),
                match hop {
                    Hop::Endpoint => "same origin",
                    Hop::Bare => "another origin: a bare GET",
                }
            ));
            url = to;
        }
    }
}

/// What went wrong in a request, without reqwest's own text, which repeats the URL (and
/// with it any query secrets): the innermost cause.
pub(super) fn cause(err: &reqwest::Error) -> String {
    let mut innermost: &dyn std::error::Error = err;
    while let Some(s) = innermost.source() {
        innermost = s;
    }
    if std::ptr::addr_eq(innermost, err as &dyn std::error::Error) {
        if err.is_timeout() {
            return "timed out".into();
        }
        return "request failed".into();
    }
    innermost.to_string()
}

pub(super) fn classify(err: &reqwest::Error) -> Attempt {
    let innermost = cause(err);
    if err.is_connect() {
        Attempt::Dead(format!("cannot connect: {innermost}"))
    } else if err.is_timeout() {
        Attempt::Dead(format!("timed out: {innermost}"))
    } else {
        Attempt::Next(innermost.to_string())
    }
}
