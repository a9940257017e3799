//! Fuzz targets: the archive readers, the reference parser and the exclusion-file parser
//! over arbitrary bytes. `fuzz/` runs them under libFuzzer (`cargo +nightly fuzz run
//! <target>`); `tests/fuzz_smoke.rs` replays the corpora and a short deterministic
//! mutation pass on stable.
//!
//! A target only checks that crimg does not panic: every input either parses or fails
//! with an error that says something. Work per input is bounded: decompression stops at
//! [`MAX_DECOMPRESSED`] bytes, and only uncompressed or fully decompressed input is
//! streamed.
//!
//! Multi-document targets (`oci_json`, `docker_manifest`) split their input at
//! [`SEPARATOR`]: the first document is `index.json` (or `manifest.json`), the rest are
//! handed out as blobs or members in the order planning asks for them, whatever their
//! digest or path, so that the fuzzer gets past digest checks.

use std::collections::{HashMap, VecDeque};
use std::fmt::Display;
use std::io::{Cursor, Read};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::archive::compression::{self, Compression};
use crate::archive::layout::{self, MAX_JSON, MemberInfo, Plan, PlanOptions, Source};
use crate::archive::paths;
use crate::archive::read::{self, Event, RandomAccess};
use crate::archive::write;
use crate::model::Image;
use crate::plan::exclude;
use crate::plan::pattern::RefPattern;
use crate::plan::platform::{Platform, PlatformChoice};
use crate::runtime::content::sha256_digest;

/// The most bytes a target decompresses from one input.
pub const MAX_DECOMPRESSED: u64 = 256 << 10;

/// Separates the documents of a multi-document input.
pub const SEPARATOR: &[u8] = b"\n--8<--\n";

thread_local! {
    /// Inputs this thread's targets got past parsing with, see [`past_parsing`].
    static PAST_PARSING: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many inputs the targets run on this thread got past parsing with (a plan made,
/// a reference normalised, a rule read, a stream decompressed): a smoke test checks that
/// its seeds reach the code behind the parsers, not only their error paths.
pub fn past_parsing() -> u64 {
    PAST_PARSING.with(std::cell::Cell::get)
}

fn parsed() {
    PAST_PARSING.with(|c| c.set(c.get() + 1));
}

/// The value of a result; an error is fine but must carry a message.
fn check<T, E: Display>(r: std::result::Result<T, E>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            let message = e.to_string();
            assert!(
                !message.trim().is_empty(),
                "an error without a message: {message:?}"
            );
            None
        }
    }
}

/// The documents of a multi-document input.
pub fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        out.push(&rest[..i]);
        rest = &rest[i + SEPARATOR.len()..];
    }
    out.push(rest);
    out
}

/// The two ways a plan is asked for: every platform and no base name, or the host's
/// platform under a base name.
fn options() -> [PlanOptions; 2] {
    [
        PlanOptions {
            platforms: PlatformChoice::All,
            base_name: None,
        },
        PlanOptions {
            platforms: PlatformChoice::These(vec![Platform::host()]),
            base_name: Some("registry.example/base".into()),
        },
    ]
}

/// Uses what a plan says, as import does.
fn use_plan(plan: &Plan) {
    parsed();
    for image in &plan.images {
        let _ = image.platforms();
        let _ = plan.image_size(image);
        for m in &image.manifests {
            let _ = layout::chain_ids(&m.diff_ids);
        }
    }
}

/// Documents handed out by key (digest or path), unknown keys taking the next unused one.
struct Documents {
    spare: VecDeque<Bytes>,
    by_key: HashMap<String, Bytes>,
}

impl Documents {
    fn take(&mut self, key: &str) -> Option<Bytes> {
        if let Some(b) = self.by_key.get(key) {
            return Some(b.clone());
        }
        let b = self.spare.pop_front()?;
        self.by_key.insert(key.to_string(), b.clone());
        Some(b)
    }
}

/// A [`Source`] over in-memory documents, without digest checks.
struct MemSource(Mutex<Documents>);

impl MemSource {
    fn new(docs: &[&[u8]]) -> MemSource {
        MemSource(Mutex::new(Documents {
            spare: docs.iter().map(|d| Bytes::copy_from_slice(d)).collect(),
            by_key: HashMap::new(),
        }))
    }

    fn take(&self, key: &str) -> Option<Bytes> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take(key)
    }
}

impl Source for MemSource {
    async fn blob(&self, digest: &str) -> Result<Bytes> {
        self.take(digest)
            .ok_or_else(|| anyhow!("blob {digest} is missing from the archive"))
    }

    /// Members named `*.json` are known only as small files, as legacy configs are when
    /// an archive is streamed.
    fn member(&self, path: &str) -> Option<MemberInfo> {
        if path.ends_with(".json") {
            return None;
        }
        let b = self.take(path)?;
        let digest = sha256_digest(Sha256::new_with_prefix(&b));
        let mut docs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        docs.by_key.insert(digest.clone(), b.clone());
        Some(MemberInfo {
            digest,
            size: b.len() as i64,
            head: b[..b.len().min(read::HEAD_LEN)].to_vec(),
        })
    }

    async fn small_file(&self, path: &str) -> Result<Bytes> {
        self.take(path)
            .ok_or_else(|| anyhow!("{path} is missing from the archive"))
    }
}

/// A [`Source`] over an indexed tar in memory, as import's random-access source but
/// without digest checks.
struct TarSource<'a> {
    data: &'a [u8],
    ra: &'a RandomAccess,
}

impl TarSource<'_> {
    fn read(&self, path: &str) -> Result<Bytes> {
        let ext = self
            .ra
            .resolve(path)
            .ok_or_else(|| anyhow!("{path} is missing from the archive"))?;
        if ext.size > MAX_JSON {
            anyhow::bail!("{path} is too large for a JSON document");
        }
        let start = usize::try_from(ext.offset)?;
        let end = start.checked_add(usize::try_from(ext.size)?);
        end.and_then(|end| self.data.get(start..end))
            .map(Bytes::copy_from_slice)
            .ok_or_else(|| anyhow!("{path}: archive ends early (truncated?)"))
    }
}

impl Source for TarSource<'_> {
    async fn blob(&self, digest: &str) -> Result<Bytes> {
        self.read(&paths::blob_path(digest))
    }

    fn member(&self, path: &str) -> Option<MemberInfo> {
        self.ra.blob_member(path)
    }

    async fn small_file(&self, path: &str) -> Result<Bytes> {
        self.read(path)
    }
}

/// Streams a tar (any compression) and reads every member body.
fn stream(data: Vec<u8>) {
    let Some((_, mut events)) = check(read::stream_reader(
        Box::new(Cursor::new(data)),
        Arc::new(AtomicU64::new(0)),
    )) else {
        return;
    };
    while let Some(event) = events.blocking_recv() {
        match check(event) {
            Some(Event::File { mut body, .. }) => {
                while let Some(chunk) = body.blocking_recv() {
                    check(chunk);
                }
            }
            Some(Event::Link { path, target }) => {
                let _ = paths::classify(&path);
                let _ = paths::classify(&target);
            }
            None => {}
        }
    }
}

/// An archive as a tar: indexed for random access and planned, and streamed when it is
/// not compressed.
pub fn tar_walk(data: &[u8]) {
    if let Some(Some(ra)) = check(read::index_tar(Cursor::new(data), Path::new("fuzz.tar"))) {
        for path in ra.members.keys().chain(ra.links.keys()) {
            let _ = check(paths::classify(path));
        }
        // As import does: a seekable archive is planned from its index.json (none is an
        // empty document), with docker 25's manifest.json beside it for names.
        let source = TarSource { data, ra: &ra };
        let index = ra.meta.get("index.json").cloned().unwrap_or_default();
        let docker = ra.meta.get("manifest.json").map(|b| &b[..]);
        for opts in options() {
            let planned =
                futures::executor::block_on(layout::plan_oci(&index, docker, &source, &opts));
            if let Some(plan) = check(planned) {
                use_plan(&plan);
            }
        }
    }
    if compression::detect(data) == Ok(Compression::None) {
        stream(data.to_vec());
    }
}

/// docker save's manifest.json, then members in the order planning asks for them.
pub fn docker_manifest(data: &[u8]) {
    let docs = split(data);
    let manifest = docs[0];
    check(layout::parse_docker_manifest(manifest));
    let source = MemSource::new(&docs[1..]);
    for opts in options() {
        if let Some(plan) = check(futures::executor::block_on(layout::plan_docker(
            manifest, &source, &opts,
        ))) {
            use_plan(&plan);
        }
    }
}

/// index.json, an optional docker manifest.json, then blobs (nested indexes, manifests,
/// configs) in the order planning asks for them.
pub fn oci_json(data: &[u8]) {
    let docs = split(data);
    let index = docs[0];
    let docker = docs.get(1).copied().filter(|d| !d.is_empty());
    let blobs = docs.get(2..).unwrap_or_default();
    for opts in options() {
        let source = MemSource::new(blobs);
        if let Some(plan) = check(futures::executor::block_on(layout::plan_oci(
            index, docker, &source, &opts,
        ))) {
            use_plan(&plan);
        }
    }
}

/// Compression detection, then at most [`MAX_DECOMPRESSED`] bytes of decompression; what
/// comes out is walked as a tar, and the input streamed when it decompresses whole.
pub fn compression(data: &[u8]) {
    let head = &data[..data.len().min(compression::MAGIC_LEN)];
    let Some(c) = check(compression::detect(head)) else {
        return;
    };
    let _ = c.name();
    let Some(decoder) = check(compression::decoder(c, data)) else {
        return;
    };
    let mut out = Vec::new();
    let whole = match check(decoder.take(MAX_DECOMPRESSED).read_to_end(&mut out)) {
        Some(n) => {
            if n > 0 {
                parsed();
            }
            (n as u64) < MAX_DECOMPRESSED
        }
        None => false,
    };
    let _ = compression::is_tar_header(&out[..out.len().min(512)]);
    if c != Compression::None {
        tar_walk(&out);
        if whole {
            stream(data.to_vec());
        }
    }
}

/// Images to resolve references and match patterns against.
fn images() -> Vec<Image> {
    let id = format!("sha256:{}", "ab".repeat(32));
    vec![
        Image {
            id: id.clone(),
            repo_tags: vec!["docker.io/library/nginx:1.25".into()],
            repo_digests: vec![format!("docker.io/library/nginx@{id}")],
            ..Image::default()
        },
        Image {
            id: format!("sha256:{}", "abc1".repeat(16)),
            repo_tags: vec![
                "registry.k8s.io/pause:3.9".into(),
                "localhost:5000/app/web:v1".into(),
            ],
            ..Image::default()
        },
    ]
}

/// A reference as a user or an archive gives it: normalised, resolved against images,
/// compiled as a pattern, and turned into export names.
pub fn reference(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let images = images();
    if let Some(n) = check(crate::reference::normalize(s)) {
        parsed();
        let _ = crate::reference::repository_of(&n);
        let _ = crate::reference::tag_of(&n);
        check(crate::reference::normalize(&n));
        check(layout::digest_reference(
            Some(&n),
            &format!("sha256:{}", "0".repeat(64)),
        ));
        let _ = write::oci_ref_name(&n);
        let _ = write::docker_repo_tag(&n);
    }
    let _ = crate::reference::repository_of(s);
    let _ = crate::reference::tag_of(s);
    let _ = crate::reference::id_prefix(s);
    let _ = write::oci_ref_name(s);
    let _ = write::docker_repo_tag(s);
    check(crate::reference::resolve(&images, s));
    let annotations = [
        (layout::ANNOTATION_NAME, s),
        (layout::ANNOTATION_REF_NAME, s),
    ];
    for (key, value) in annotations {
        let a = [(key.to_string(), value.to_string())].into_iter().collect();
        check(layout::oci_names(&a, None));
        check(layout::oci_names(&a, Some("registry.example/base")));
    }
    if let Some(p) = check(RefPattern::new(s)) {
        for i in &images {
            let _ = p.matches(i);
            for r in i.references() {
                let _ = p.matches_reference(r);
            }
        }
    }
}

/// An exclusion file (lines or Eraser's JSON), and its lines as `--exclude` patterns.
pub fn exclude(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let images = images();
    let file_rules = check(exclude::parse_file("fuzz.conf", text)).unwrap_or_default();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let cli_rules = check(exclude::parse_cli(&lines)).unwrap_or_default();
    if !file_rules.is_empty() {
        parsed();
    }
    for rule in file_rules.iter().chain(&cli_rules) {
        let _ = rule.reason();
        for i in &images {
            let _ = rule.matches(i);
        }
    }
}

/// A fuzz target: any bytes in, a panic the only failure.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/<name>.rs` and the corpora name them.
pub const TARGETS: &[(&str, Target)] = &[
    ("tar_walk", tar_walk),
    ("docker_manifest", docker_manifest),
    ("oci_json", oci_json),
    ("compression", compression),
    ("reference", reference),
    ("exclude", exclude),
];
