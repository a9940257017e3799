//! Fetching blobs and manifests by digest from a registry, through the node's mirrors,
//! streamed into containerd's content store and verified on the way.
//!
//! Endpoints are tried in the configured order (see [`super::config`]): a mirror that is
//! unreachable, lacks the blob, refuses us or sends bytes that do not match the digest
//! is passed over for the next, down to the registry's default endpoint. An endpoint that
//! cannot be connected to is not tried again for later blobs.

mod pace;
mod token;
mod transport;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use sha2::{Digest as _, Sha256};

use super::Source;

use super::config::{Endpoint, EndpointKind, RegistryConfig};
use crate::model::Descriptor;
use crate::oci::sha256_digest;
use crate::oci::{MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_OCI_MANIFEST};
use crate::runtime::containerd::Containerd;

pub(crate) use pace::lease_for;
use pace::{at_least_min_rate, read_bounded};

/// The manifest media types a fetch accepts.
const MANIFEST_ACCEPT: [&str; 4] = [
    MT_OCI_INDEX,
    MT_DOCKER_LIST,
    MT_OCI_MANIFEST,
    MT_DOCKER_MANIFEST,
];

/// The deadline of small requests: a token, a manifest.
const SMALL_DEADLINE: Duration = Duration::from_secs(60);

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
