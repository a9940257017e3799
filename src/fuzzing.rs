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
//! filed in import's in-memory source as blobs or members in the order planning asks for
//! them, whatever their digest or path, so that the fuzzer gets past digest checks. The
//! `tar_walk` target plans through import's tar source, digest checks included.

use std::fmt::Display;
use std::io::{Cursor, Read};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use bytes::Bytes;

use crate::app::import::sources::TarSource;
use crate::archive::compression;
use crate::archive::paths;
use crate::archive::read::{self, Event};
use crate::model::Image;
use crate::oci::Compression;
use crate::oci::Platform;
use crate::plan::exclude;
use crate::plan::import::mem::MemArchive;
use crate::plan::import::{self as import_plan, MemberInfo, Plan, PlanOptions, Source};
use crate::plan::platform::PlatformChoice;
use crate::reference::pattern::RefPattern;

/// The most bytes a target decompresses from one input.
pub(crate) const MAX_DECOMPRESSED: u64 = 256 << 10;

/// Separates the documents of a multi-document input.
pub(crate) const SEPARATOR: &[u8] = b"\n--8<--\n";

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
pub(crate) fn split(data: &[u8]) -> Vec<&[u8]> {
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
            let _ = import_plan::chain_ids(&m.diff_ids);
        }
    }
}

/// What planning asked a [`MemArchive`] for and did not find.
enum Miss {
    Blob(String),
    Member(String),
    File(String),
}

/// Import's in-memory source, noting the first thing planning missed in it.
struct Asked<'a> {
    archive: &'a MemArchive,
    miss: Mutex<Option<Miss>>,
}

impl Asked<'_> {
    fn note(&self, miss: Miss) {
        let mut first = self.miss.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(miss);
    }
}

impl Source for Asked<'_> {
    async fn blob(&self, digest: &str) -> Result<Bytes> {
        let found = self.archive.blob(digest).await;
        if found.is_err() {
            self.note(Miss::Blob(digest.to_string()));
        }
        found
    }

    /// Any member, whatever its path, is known by the digest of its bytes, as a streamed
    /// archive's members are.
    fn member(&self, path: &str) -> Option<MemberInfo> {
        let found = self.archive.member(path);
        if found.is_none() {
            self.note(Miss::Member(path.to_string()));
        }
        found
    }

    async fn small_file(&self, path: &str) -> Result<Bytes> {
        let found = self.archive.small_file(path).await;
        if found.is_err() {
            self.note(Miss::File(path.to_string()));
        }
        found
    }
}

/// Plans over a [`MemArchive`] that files the documents, one by one, under what
/// planning asks for and misses (a digest, a member path or a small file), whatever
/// their digest, so that the fuzzer gets past digest checks.
fn plan_fed(docs: &[&[u8]], plan: impl Fn(&Asked) -> Result<Plan>) {
    let mut archive = MemArchive::default();
    let mut spare = docs.iter().map(|d| Bytes::copy_from_slice(d));
    loop {
        let asked = Asked {
            archive: &archive,
            miss: Mutex::new(None),
        };
        let planned = plan(&asked);
        let miss = asked.miss.into_inner().unwrap_or_else(|e| e.into_inner());
        if planned.is_err()
            && let Some(miss) = miss
            && let Some(doc) = spare.next()
        {
            match miss {
                Miss::Blob(digest) => {
                    archive.small.insert(digest, doc);
                }
                Miss::Member(path) => {
                    archive.add_member(&path, doc, read::HEAD_LEN);
                }
                Miss::File(path) => {
                    archive.add_member(&path, doc, read::HEAD_LEN);
                }
            }
            continue;
        }
        if let Some(plan) = check(planned) {
            use_plan(&plan);
        }
        return;
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

thread_local! {
    /// The tar source reads with tokio's file I/O: one runtime per fuzzing thread.
    static RUNTIME: Option<tokio::runtime::Runtime> = check(
        tokio::runtime::Builder::new_current_thread().enable_all().build(),
    );
}

/// An archive as a tar: indexed for random access and planned as import plans it (from
/// a file), and streamed when it is not compressed.
pub fn tar_walk(data: &[u8]) {
    if let Some(file) = check(tempfile::NamedTempFile::new())
        && let Some(()) = check(std::fs::write(file.path(), data))
        && let Some(Some(ra)) = check(read::index_tar_file(file.path()))
    {
        for path in ra.members.keys().chain(ra.links.keys()) {
            let _ = check(paths::classify(path));
        }
        // As import does: a seekable archive is planned from its index.json (none is an
        // empty document), with docker 25's manifest.json beside it for names.
        let index = ra.meta.get("index.json").cloned().unwrap_or_default();
        let docker = ra.meta.get("manifest.json").cloned();
        let source = TarSource::new(Arc::new(ra));
        RUNTIME.with(|runtime| {
            if let Some(runtime) = runtime {
                for opts in options() {
                    let planned = runtime.block_on(import_plan::plan_oci(
                        &index,
                        docker.as_deref(),
                        &source,
                        &opts,
                    ));
                    if let Some(plan) = check(planned) {
                        use_plan(&plan);
                    }
                }
            }
        });
    }
    if crate::oci::compression::detect(data) == Ok(Compression::None) {
        stream(data.to_vec());
    }
}

/// docker save's manifest.json, then members in the order planning asks for them.
pub fn docker_manifest(data: &[u8]) {
    let docs = split(data);
    let manifest = docs[0];
    check(import_plan::parse_docker_manifest(manifest));
    for opts in options() {
        plan_fed(&docs[1..], |source| {
            futures::executor::block_on(import_plan::plan_docker(manifest, source, &opts))
        });
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
        plan_fed(blobs, |source| {
            futures::executor::block_on(import_plan::plan_oci(index, docker, source, &opts))
        });
    }
}

/// Compression detection, then at most [`MAX_DECOMPRESSED`] bytes of decompression; what
/// comes out is walked as a tar, and the input streamed when it decompresses whole.
pub fn compression(data: &[u8]) {
    let head = &data[..data.len().min(crate::oci::compression::MAGIC_LEN)];
    let Some(c) = check(crate::oci::compression::detect(head)) else {
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
        check(import_plan::digest_reference(
            Some(&n),
            &format!("sha256:{}", "0".repeat(64)),
        ));
        let _ = crate::reference::oci_ref_name(&n);
        let _ = crate::reference::docker_repo_tag(&n);
    }
    let _ = crate::reference::repository_of(s);
    let _ = crate::reference::tag_of(s);
    let _ = crate::reference::id_prefix(s);
    let _ = crate::reference::oci_ref_name(s);
    let _ = crate::reference::docker_repo_tag(s);
    check(crate::reference::resolve(&images, s));
    let annotations = [
        (crate::oci::ANNOTATION_NAME, s),
        (crate::oci::ANNOTATION_REF_NAME, s),
    ];
    for (key, value) in annotations {
        let a = [(key.to_string(), value.to_string())].into_iter().collect();
        check(import_plan::oci_names(&a, None));
        check(import_plan::oci_names(&a, Some("registry.example/base")));
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
