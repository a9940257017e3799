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
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest as _, Sha256};

use super::Source;
use reqwest::Url;

use super::auth::{parse_www_authenticate, token_from_response, token_url};
use super::config::{Credentials, Endpoint, EndpointKind, RegistryConfig, redact};
use super::policy::{self, Hop, RealmCredentials};
use crate::model::Descriptor;
use crate::oci::{MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_OCI_MANIFEST};
use crate::runtime::containerd::Containerd;
use crate::runtime::content::sha256_digest;

/// The manifest media types a fetch accepts.
const MANIFEST_ACCEPT: [&str; 4] = [
    MT_OCI_INDEX,
    MT_DOCKER_LIST,
    MT_OCI_MANIFEST,
    MT_DOCKER_MANIFEST,
];

/// The deadline of small requests: a token, a manifest.
const SMALL_DEADLINE: Duration = Duration::from_secs(60);

/// A blob download must bring at least `MIN_RATE` bytes a second, measured over each
/// `RATE_WINDOW`; a server that drips bytes slower is given up on (and the next endpoint
/// tried), so a fetch cannot hang forever. The fetch lease is sized from the same figures.
pub(crate) const MIN_RATE: u64 = 10 << 10;
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(30);

/// How long a lease must hold what a fetch of blobs of `sizes` bytes stores: the time the
/// slowest accepted download takes ([`MIN_RATE`]), plus five minutes a blob for
/// connecting, tokens, redirects and endpoints that fail, plus an hour to finish the
/// export.
pub(crate) fn lease_for(sizes: impl IntoIterator<Item = u64>) -> Duration {
    sizes
        .into_iter()
        .fold(Duration::from_secs(3600), |d, size| {
            d + Duration::from_secs(size / MIN_RATE + 300)
        })
}

/// What is fetched: registries serve manifests and indexes under `/manifests/`, every
/// other blob under `/blobs/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
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
pub(crate) struct Fetcher {
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
    pub(crate) fn new(config: RegistryConfig, warn: Log, debug: Log) -> Fetcher {
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

    /// The HTTP client for `e`'s own origin: its TLS settings.
    fn client(&mut self, e: &Endpoint) -> Result<reqwest::Client> {
        self.client_with(e.skip_verify, &e.ca, &e.origin)
    }

    /// The HTTP client for a URL that is not `e`'s own origin (a token realm or a redirect
    /// target): `e`'s TLS settings only on `e`'s own host and port, elsewhere that host's
    /// own `configs` entry, else the defaults. Verification is never relaxed for a host
    /// whose configuration does not relax it.
    fn client_for(&mut self, e: &Endpoint, url: &Url) -> Result<reqwest::Client> {
        let host = policy::authority(url);
        if host == e.authority() {
            return self.client(e);
        }
        let s = self.config.host_settings(&host);
        self.client_with(s.skip_verify, &s.ca, &format!("configs.{host:?}"))
    }

    fn client_with(
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

    /// Fetches a manifest or index into memory (they are small: the caller bounds the
    /// size), verified against its digest, and stores it in the content store with
    /// `labels`. Returns the bytes and where they came from.
    pub(crate) async fn fetch_manifest(
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
            let read = tokio::time::timeout(SMALL_DEADLINE, read_bounded(resp, desc.size));
            let body = match read.await.unwrap_or_else(|_| {
                Err(format!(
                    "did not send the manifest within {}s",
                    SMALL_DEADLINE.as_secs()
                ))
            }) {
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
    pub(crate) async fn fetch_blob(
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
            let reader = tokio_util::io::StreamReader::new(at_least_min_rate(resp));
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

    /// Sends the GET, doing the authentication dance once when the endpoint itself
    /// challenges; follows redirects through [`Fetcher::follow`].
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
    async fn follow(
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

    /// Answers the endpoint's 401: Docker's Bearer token flow, or Basic with configured
    /// credentials. The realm gets credentials only as [`policy::realm_credentials`] says.
    async fn authenticate(
        &mut self,
        e: &Endpoint,
        endpoint: &Url,
        source: &Source,
        challenges: &[super::auth::Challenge],
    ) -> Result<Auth, Attempt> {
        if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
            let url = token_url(c, &source.repository).ok_or_else(|| {
                Attempt::Next(format!(
                    "asks for a Bearer token without a usable realm ({:?})",
                    c.params.get("realm").map(|r| redact(r))
                ))
            })?;
            let shown = policy::printable(&url);
            let realm_host = self.config.host_settings(&policy::authority(&url));
            let credentials = match policy::realm_credentials(endpoint, &url, realm_host.configured)
                .map_err(Attempt::Next)?
            {
                RealmCredentials::Endpoint => e.credentials.clone(),
                RealmCredentials::OwnConfig => realm_host.credentials.clone(),
                RealmCredentials::Anonymous => None,
            };
            (self.debug)(&format!(
                "token request to {shown} ({})",
                if credentials.is_some() {
                    "with credentials"
                } else {
                    "anonymous"
                }
            ));
            let client = self
                .client_for(e, &url)
                .map_err(|err| Attempt::Next(format!("{err:#}")))?;
            let req = match &credentials {
                Some(Credentials::Basic { username, password }) => {
                    client.get(url.clone()).basic_auth(username, Some(password))
                }
                Some(Credentials::IdentityToken(token)) => {
                    // OAuth2 refresh-token grant, as Docker does with an identity token.
                    let mut form = Url::parse("http://form/").expect("static URL");
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
            let resp = req.timeout(SMALL_DEADLINE).send().await.map_err(|err| {
                Attempt::Next(format!("token request to {shown}: {}", cause(&err)))
            })?;
            let status = resp.status();
            let body = read_bounded(resp, 1 << 20).await.map_err(Attempt::Next)?;
            if !status.is_success() {
                return Err(Attempt::Next(format!(
                    "token endpoint {shown} answered {status}"
                )));
            }
            return token_from_response(&body)
                .map(Auth::Bearer)
                .ok_or_else(|| Attempt::Next(format!("token endpoint {shown} sent no token")));
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

/// What went wrong in a request, without reqwest's own text, which repeats the URL (and
/// with it any query secrets): the innermost cause.
fn cause(err: &reqwest::Error) -> String {
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

fn classify(err: &reqwest::Error) -> Attempt {
    let innermost = cause(err);
    if err.is_connect() {
        Attempt::Dead(format!("cannot connect: {innermost}"))
    } else if err.is_timeout() {
        Attempt::Dead(format!("timed out: {innermost}"))
    } else {
        Attempt::Next(innermost.to_string())
    }
}

/// Checks a download's pace: each `window` must bring at least `min_rate` bytes a
/// second. Time is passed in, so the rule is testable without waiting.
#[derive(Debug)]
pub(crate) struct Pace {
    min_rate: u64,
    window: Duration,
    window_end: Duration,
    in_window: u64,
}

impl Pace {
    pub(crate) fn new(min_rate: u64, window: Duration) -> Pace {
        Pace {
            min_rate,
            window,
            window_end: window,
            in_window: 0,
        }
    }

    /// When the current window ends, counted from the start of the download.
    pub(crate) fn window_end(&self) -> Duration {
        self.window_end
    }

    /// Records `bytes` arriving at `elapsed` (0 when a window ends with nothing new).
    pub(crate) fn record(&mut self, elapsed: Duration, bytes: u64) -> Result<(), String> {
        if elapsed >= self.window_end {
            let want = self.min_rate * self.window.as_secs().max(1);
            // Bytes arriving just now count for the window that ends; a whole window
            // after it without a check had nothing.
            if self.in_window + bytes < want || elapsed >= self.window_end + self.window {
                return Err(format!(
                    "too slow: {} bytes in {}s, below the minimum of {} KiB/s",
                    self.in_window + bytes,
                    self.window.as_secs(),
                    self.min_rate >> 10
                ));
            }
            while self.window_end <= elapsed {
                self.window_end += self.window;
            }
            self.in_window = 0;
            return Ok(());
        }
        self.in_window += bytes;
        Ok(())
    }
}

/// A response body as a byte stream that fails when the server is slower than
/// [`MIN_RATE`] over a [`RATE_WINDOW`].
fn at_least_min_rate(
    resp: reqwest::Response,
) -> std::pin::Pin<Box<dyn futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send>> {
    let start = tokio::time::Instant::now();
    let body = Box::pin(resp.bytes_stream());
    let state = (body, Pace::new(MIN_RATE, RATE_WINDOW), false);
    Box::pin(futures::stream::unfold(
        state,
        move |(mut body, mut pace, done)| async move {
            if done {
                return None;
            }
            loop {
                let deadline = start + pace.window_end();
                let next = tokio::time::timeout_at(deadline, body.next()).await;
                let (bytes, item) = match next {
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => {
                        let err = std::io::Error::other(cause(&e));
                        return Some((Err(err), (body, pace, true)));
                    }
                    Ok(Some(Ok(chunk))) => (chunk.len() as u64, Some(chunk)),
                    Err(_) => (0, None),
                };
                if let Err(e) = pace.record(start.elapsed(), bytes) {
                    let err = std::io::Error::new(std::io::ErrorKind::TimedOut, e);
                    return Some((Err(err), (body, pace, true)));
                }
                if let Some(chunk) = item {
                    return Some((Ok(chunk), (body, pace, false)));
                }
            }
        },
    ))
}

/// Reads a whole (small) body, refusing more than `limit` bytes.
async fn read_bounded(resp: reqwest::Response, limit: i64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.try_next().await.map_err(|e| cause(&e))? {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_sizes() {
        let h = Duration::from_secs(3600);
        assert_eq!(lease_for([]), h);
        assert_eq!(lease_for([0]), h + Duration::from_secs(300));
        // 1 GiB at 10 KiB/s: 104857 s, about 29 h.
        assert_eq!(
            lease_for([1 << 30, 10 << 10]),
            h + Duration::from_secs(104_857 + 300 + 1 + 300)
        );
    }

    #[test]
    fn pace() {
        let s = Duration::from_secs;
        // 10 KiB/s over 30 s windows: 300 KiB per window.
        let mut p = Pace::new(10 << 10, s(30));
        assert_eq!(p.window_end(), s(30));
        assert!(p.record(s(1), 200 << 10).is_ok());
        assert!(p.record(s(29), 100 << 10).is_ok());
        // The window closes with enough: the next one starts empty.
        assert!(p.record(s(30), 0).is_ok());
        assert_eq!(p.window_end(), s(60));
        assert!(p.record(s(40), 299 << 10).is_ok());
        let e = p.record(s(60), 0).unwrap_err();
        assert!(e.contains("below the minimum of 10 KiB/s"), "{e}");

        // A burst arriving as the window ends still counts for it.
        let mut p = Pace::new(10 << 10, s(30));
        assert!(p.record(s(31), 300 << 10).is_ok());
        assert_eq!(p.window_end(), s(60));
        // A long silence spanning windows fails at the first check after it.
        let mut p = Pace::new(10 << 10, s(30));
        assert!(p.record(s(5), 1 << 20).is_ok());
        assert!(p.record(s(95), 1).is_err());
        // A drip of one byte a second never passes a window.
        let mut p = Pace::new(10 << 10, s(30));
        let failed = (1..=30).map(|t| p.record(s(t), 1)).any(|r| r.is_err());
        assert!(failed);
    }
}
