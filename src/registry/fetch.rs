//! Fetching blobs and manifests by digest from a registry, through the node's mirrors,
//! streamed into containerd's content store and verified on the way.
//!
//! Endpoints are tried in the configured order (see [`super::config`]): a mirror that is
//! unreachable, lacks the blob, refuses us or sends bytes that do not match the digest
//! is passed over for the next, down to the registry's default endpoint. An endpoint that
//! cannot be connected to is not tried again for later blobs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use futures::TryStreamExt;
use sha2::{Digest as _, Sha256};

use super::Source;
use super::auth::{parse_www_authenticate, token_from_response, token_url};
use super::config::{Credentials, Endpoint, EndpointKind, RegistryConfig};
use crate::model::Descriptor;
use crate::runtime::containerd::Containerd;
use crate::runtime::content::sha256_digest;

/// The manifest media types a fetch accepts.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// What is fetched: registries serve manifests and indexes under `/manifests/`, every
/// other blob under `/blobs/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Manifest,
    Blob,
}

/// How a request authenticates at one registry host.
#[derive(Clone)]
enum Auth {
    Bearer(String),
    Basic(String, String),
}

type Log = Box<dyn Fn(&str) + Send + Sync>;

/// A registry client for one export: caches endpoints, HTTP clients and tokens.
pub struct Fetcher {
    config: RegistryConfig,
    endpoints: HashMap<String, Vec<Endpoint>>,
    clients: HashMap<(bool, Vec<PathBuf>), reqwest::Client>,
    auth: HashMap<(String, String), Auth>,
    dead: HashSet<String>,
    warn: Log,
    debug: Log,
}

/// One endpoint's failure, for the final error.
struct Failure {
    endpoint: String,
    problem: String,
}

enum Attempt {
    /// Try the next endpoint.
    Next(String),
    /// The endpoint is unreachable: skip it from now on, too.
    Dead(String),
}

impl Fetcher {
    pub fn new(config: RegistryConfig, warn: Log, debug: Log) -> Fetcher {
        Fetcher {
            config,
            endpoints: HashMap::new(),
            clients: HashMap::new(),
            auth: HashMap::new(),
            dead: HashSet::new(),
            warn,
            debug,
        }
    }

    fn endpoints_for(&mut self, host: &str) -> Result<Vec<Endpoint>> {
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

    fn client(&mut self, e: &Endpoint) -> Result<reqwest::Client> {
        let key = (e.skip_verify, e.ca.clone());
        if let Some(c) = self.clients.get(&key) {
            return Ok(c.clone());
        }
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("crimg/", env!("CARGO_PKG_VERSION")));
        if e.skip_verify {
            b = b.danger_accept_invalid_certs(true);
        }
        for path in &e.ca {
            let pem = std::fs::read(path).map_err(|err| {
                anyhow!(
                    "reading CA certificate {} ({}): {err}",
                    path.display(),
                    e.origin
                )
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|err| {
                anyhow!("CA certificate {} ({}): {err}", path.display(), e.origin)
            })?;
            b = b.add_root_certificate(cert);
        }
        let c = b
            .build()
            .map_err(|err| anyhow!("building an HTTP client: {err}"))?;
        self.clients.insert(key, c.clone());
        Ok(c)
    }

    /// Fetches a manifest or index into memory (they are small: the caller bounds the
    /// size), verified against its digest, and stores it in the content store with
    /// `labels`. Returns the bytes and where they came from.
    pub async fn fetch_manifest(
        &mut self,
        sources: &[Source],
        desc: &Descriptor,
        store: &Containerd,
        labels: &BTreeMap<String, String>,
    ) -> Result<(Vec<u8>, String)> {
        let mut failures = Vec::new();
        for (source, endpoint) in self.candidates(sources)? {
            let resp = match self.open(&endpoint, &source, desc, Kind::Manifest).await {
                Ok(r) => r,
                Err(a) => {
                    self.note_failure(&endpoint, a, &mut failures);
                    continue;
                }
            };
            let body = match read_bounded(resp, desc.size).await {
                Ok(b) => b,
                Err(e) => {
                    self.note_failure(&endpoint, Attempt::Next(e), &mut failures);
                    continue;
                }
            };
            let mut h = Sha256::new();
            h.update(&body);
            let actual = sha256_digest(h);
            if actual != desc.digest || body.len() as i64 != desc.size {
                let problem = format!("sent {} bytes with digest {actual}", body.len());
                self.note_failure(&endpoint, Attempt::Next(problem), &mut failures);
                continue;
            }
            store.write_blob(desc, labels, &body[..], |_| {}).await?;
            return Ok((body, format!("{}/{}", endpoint.base, source.repository)));
        }
        bail!(not_found(desc, sources, &failures))
    }

    /// Streams a blob from the first endpoint that has it into the content store
    /// (containerd's writer hashes and checks it while it streams). `on_bytes` sees each
    /// chunk. Returns where it came from.
    pub async fn fetch_blob(
        &mut self,
        sources: &[Source],
        desc: &Descriptor,
        store: &Containerd,
        labels: &BTreeMap<String, String>,
        on_bytes: &mut (dyn FnMut(u64) + Send),
    ) -> Result<String> {
        let mut failures = Vec::new();
        for (source, endpoint) in self.candidates(sources)? {
            let resp = match self.open(&endpoint, &source, desc, Kind::Blob).await {
                Ok(r) => r,
                Err(a) => {
                    self.note_failure(&endpoint, a, &mut failures);
                    continue;
                }
            };
            let reader = tokio_util::io::StreamReader::new(
                resp.bytes_stream().map_err(std::io::Error::other),
            );
            match store.write_blob(desc, labels, reader, &mut *on_bytes).await {
                Ok(_) => return Ok(format!("{}/{}", endpoint.base, source.repository)),
                // containerd gone: no other endpoint can help.
                Err(e) if crate::error::ConnectionLost::of(&e).is_some() => return Err(e),
                Err(e) => {
                    let problem = format!("{e:#}");
                    self.note_failure(&endpoint, Attempt::Next(problem), &mut failures);
                }
            }
        }
        bail!(not_found(desc, sources, &failures))
    }

    /// Every (source, endpoint) pair to try, in order, without endpoints known dead.
    fn candidates(&mut self, sources: &[Source]) -> Result<Vec<(Source, Endpoint)>> {
        let mut out = Vec::new();
        for s in sources {
            for e in self.endpoints_for(&s.host)? {
                out.push((s.clone(), e));
            }
        }
        Ok(out)
    }

    fn note_failure(&mut self, e: &Endpoint, a: Attempt, failures: &mut Vec<Failure>) {
        let (problem, dead) = match a {
            Attempt::Next(p) => (p, false),
            Attempt::Dead(p) => (p, true),
        };
        let msg = format!("{} ({}): {problem}", e.base, e.origin);
        if dead && self.dead.insert(e.base.clone()) {
            // A mirror that is down deserves a word; the HTTPS probe of a local
            // plain-HTTP registry does not.
            if e.kind == EndpointKind::Mirror {
                (self.warn)(&format!("{msg}; trying the next endpoint"));
            } else {
                (self.debug)(&msg);
            }
        } else {
            (self.debug)(&msg);
        }
        failures.push(Failure {
            endpoint: format!("{} ({})", e.base, e.origin),
            problem,
        });
    }

    /// Sends the GET, doing the authentication dance once when challenged.
    async fn open(
        &mut self,
        e: &Endpoint,
        source: &Source,
        desc: &Descriptor,
        kind: Kind,
    ) -> Result<reqwest::Response, Attempt> {
        if self.dead.contains(&e.base) {
            return Err(Attempt::Next("skipped: unreachable earlier".into()));
        }
        let client = self
            .client(e)
            .map_err(|err| Attempt::Next(format!("{err:#}")))?;
        let path = match kind {
            Kind::Manifest => "manifests",
            Kind::Blob => "blobs",
        };
        let mut url = format!("{}/{}/{path}/{}", e.base, source.repository, desc.digest);
        if e.kind == EndpointKind::Mirror {
            // containerd tells mirrors which registry a request is for.
            url.push_str(&format!("?ns={}", source.host));
        }
        let auth_key = (e.authority().to_string(), source.repository.clone());
        let mut tried_auth = false;
        loop {
            let mut req = client.get(&url);
            if kind == Kind::Manifest {
                req = req.header(
                    reqwest::header::ACCEPT,
                    format!("{}, {MANIFEST_ACCEPT}", desc.media_type),
                );
            }
            for (k, v) in &e.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            match self.auth.get(&auth_key) {
                Some(Auth::Bearer(t)) => req = req.bearer_auth(t),
                Some(Auth::Basic(u, p)) => req = req.basic_auth(u, Some(p)),
                None => {}
            }
            let resp = req.send().await.map_err(|err| classify(&err))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
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
                let auth = self.authenticate(&client, e, source, &challenge).await?;
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

    /// Answers a 401: Docker's Bearer token flow, or Basic with configured credentials.
    async fn authenticate(
        &self,
        client: &reqwest::Client,
        e: &Endpoint,
        source: &Source,
        challenges: &[super::auth::Challenge],
    ) -> Result<Auth, Attempt> {
        if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
            let url = token_url(c, &source.repository).ok_or_else(|| {
                Attempt::Next(format!(
                    "asks for a Bearer token without a usable realm ({:?})",
                    c.params.get("realm")
                ))
            })?;
            let req = match &e.credentials {
                Some(Credentials::Basic { username, password }) => {
                    client.get(url.clone()).basic_auth(username, Some(password))
                }
                Some(Credentials::IdentityToken(token)) => {
                    // OAuth2 refresh-token grant, as Docker does with an identity token.
                    let mut form = reqwest::Url::parse("http://form/").expect("static URL");
                    form.query_pairs_mut()
                        .append_pair("grant_type", "refresh_token")
                        .append_pair("refresh_token", token)
                        .append_pair("client_id", "crimg");
                    for (k, v) in url.query_pairs() {
                        form.query_pairs_mut().append_pair(&k, &v);
                    }
                    let mut bare = url.clone();
                    bare.set_query(None);
                    client
                        .post(bare)
                        .header(
                            reqwest::header::CONTENT_TYPE,
                            "application/x-www-form-urlencoded",
                        )
                        .body(form.query().unwrap_or_default().to_string())
                }
                None => client.get(url.clone()),
            };
            let resp = req
                .send()
                .await
                .map_err(|err| Attempt::Next(format!("token request to {url}: {err}")))?;
            let status = resp.status();
            let body = read_bounded(resp, 1 << 20).await.map_err(Attempt::Next)?;
            if !status.is_success() {
                return Err(Attempt::Next(format!(
                    "token endpoint {} answered {status}",
                    strip_query(url.as_str())
                )));
            }
            return token_from_response(&body).map(Auth::Bearer).ok_or_else(|| {
                Attempt::Next(format!(
                    "token endpoint {} sent no token",
                    strip_query(url.as_str())
                ))
            });
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            return match &e.credentials {
                Some(Credentials::Basic { username, password }) => {
                    Ok(Auth::Basic(username.clone(), password.clone()))
                }
                _ => Err(Attempt::Next(format!(
                    "needs credentials; configure them for {} in registries.yaml `configs`",
                    e.authority()
                ))),
            };
        }
        Err(Attempt::Next(
            "answered 401 without a challenge crimg understands".into(),
        ))
    }
}

fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn classify(err: &reqwest::Error) -> Attempt {
    // reqwest's own text repeats the URL; the innermost cause says what happened.
    let mut innermost: &dyn std::error::Error = err;
    while let Some(s) = innermost.source() {
        innermost = s;
    }
    if err.is_connect() {
        Attempt::Dead(format!("cannot connect: {innermost}"))
    } else if err.is_timeout() {
        Attempt::Dead(format!("timed out: {innermost}"))
    } else {
        Attempt::Next(innermost.to_string())
    }
}

/// Reads a whole (small) body, refusing more than `limit` bytes.
async fn read_bounded(resp: reqwest::Response, limit: i64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.try_next().await.map_err(|e| e.to_string())? {
        out.extend_from_slice(&chunk);
        if out.len() as i64 > limit.max(0) {
            return Err(format!("sent more than the expected {limit} bytes"));
        }
    }
    Ok(out)
}

fn not_found(desc: &Descriptor, sources: &[Source], failures: &[Failure]) -> String {
    let from = sources
        .iter()
        .map(|s| format!("{}/{}", s.host, s.repository))
        .collect::<Vec<_>>()
        .join(" or ");
    if failures.is_empty() {
        return format!(
            "cannot fetch {} from {from}: no endpoint to try",
            desc.digest
        );
    }
    format!(
        "cannot fetch {} from {from}; tried:\n{}",
        desc.digest,
        failures
            .iter()
            .map(|f| format!("    {}: {}", f.endpoint, f.problem))
            .collect::<Vec<_>>()
            .join("\n")
    )
}
