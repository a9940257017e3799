//! How `import` and `inspect` open an input and read a streamed archive: one decision of
//! how an input is read, one pass over a stream's members (the order checks, links, JSON
//! documents, markers) and one choice of planner. What each does with a blob's bytes
//! (store it in containerd, or hash it) is its [`MemberSink`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::job::describe;
use super::sources::{Streamed, collect};
use crate::archive::paths::{self, Member};
use crate::archive::read::{self, Event, Input, RandomAccess};
use crate::oci::MAX_JSON;
use crate::plan::import::mem::MemArchive;
use crate::plan::import::{self as import_plan, Plan, PlanOptions, PlannedBlob, Source};

/// A member's body as the reader sends it.
pub(super) type Body = mpsc::Receiver<std::io::Result<Bytes>>;

/// How an input is read.
pub(super) enum Opened {
    /// An OCI layout (a plain tar file or a directory) with its `index.json`: read at will.
    Oci(RandomAccess),
    /// A plain `docker save` tar file (`manifest.json`, no `index.json`): seekable.
    DockerTar(RandomAccess),
    /// Read once, front to back: a compressed archive, standard input, a plain tar whose
    /// documents the index could not place, or a `docker save` directory.
    Stream(Streaming),
}

/// An input read once, front to back.
pub(super) struct Streaming {
    pub(super) events: mpsc::Receiver<Result<Event>>,
    pub(super) compression: &'static str,
    /// Bytes of the input read so far (the whole directory for a directory).
    pub(super) read: Arc<AtomicU64>,
}

/// Decides how `input` is read (the same for `import` and `inspect`).
pub(super) async fn open(input: &Input) -> Result<Opened> {
    match input {
        Input::File(p) => {
            let path = p.clone();
            let indexed = tokio::task::spawn_blocking(move || read::index_tar_file(&path))
                .await
                .map_err(|e| anyhow!("reading task: {e}"))??;
            match indexed {
                Some(ra) if ra.meta.contains_key("index.json") => Ok(Opened::Oci(ra)),
                Some(ra) if ra.meta.contains_key("manifest.json") => Ok(Opened::DockerTar(ra)),
                _ => Ok(Opened::Stream(open_stream(input).await?)),
            }
        }
        Input::Stdin => Ok(Opened::Stream(open_stream(input).await?)),
        Input::Dir(d) => {
            read::refuse_containers_dir(d)?;
            let dir = d.clone();
            let ra = tokio::task::spawn_blocking(move || read::index_dir(&dir))
                .await
                .map_err(|e| anyhow!("reading task: {e}"))??;
            if ra.meta.contains_key("index.json") {
                Ok(Opened::Oci(ra))
            } else if ra.meta.contains_key("manifest.json") {
                let size = layout_size(&ra);
                Ok(Opened::Stream(Streaming {
                    events: read::stream_dir(ra),
                    compression: "none",
                    read: Arc::new(AtomicU64::new(size)),
                }))
            } else {
                bail!(
                    "neither index.json (OCI layout) nor manifest.json (docker save) in the directory"
                )
            }
        }
    }
}

/// Reads `input` (a file or standard input) once, front to back, decompressing.
pub(super) async fn open_stream(input: &Input) -> Result<Streaming> {
    let read = Arc::new(AtomicU64::new(0));
    let (input2, read2) = (input.clone(), read.clone());
    let (compression, events) =
        tokio::task::spawn_blocking(move || read::stream_tar(&input2, read2))
            .await
            .map_err(|e| anyhow!("reading task: {e}"))??;
    Ok(Streaming {
        events,
        compression: compression.name(),
        read,
    })
}

/// Bytes of an input read at will: the file, or a layout directory's members.
pub(super) fn input_size(input: &Input, ra: &RandomAccess) -> u64 {
    match input {
        Input::File(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
        Input::Dir(_) | Input::Stdin => layout_size(ra),
    }
}

fn layout_size(ra: &RandomAccess) -> u64 {
    ra.members.values().map(|e| e.size).sum::<u64>()
        + ra.meta.values().map(|b| b.len() as u64).sum::<u64>()
}

/// What a streamed pass does with the members that are not JSON documents or markers.
pub(super) trait MemberSink {
    /// A member whose path names its digest (`blobs/sha256/<hex>`).
    async fn blob(
        &mut self,
        st: &mut Streamed,
        path: &str,
        digest: String,
        size: u64,
        body: Body,
    ) -> Result<()>;

    /// Any other member: a `docker save` archive's config or layer is whatever path
    /// `manifest.json` names, and `manifest.json` may come after it.
    async fn other(&mut self, st: &mut Streamed, path: &str, size: u64, body: Body) -> Result<()>;
}

/// One pass over a streamed archive: each path once, links noted, `index.json` and
/// `manifest.json` kept, every other member handed to `sink`. An error names the member.
pub(super) async fn read_members(
    mut events: mpsc::Receiver<Result<Event>>,
    sink: &mut impl MemberSink,
) -> Result<Streamed> {
    let mut st = Streamed::default();
    let mut seen = HashSet::new();
    while let Some(event) = events.recv().await {
        let event = event?;
        event.check_once(&mut seen)?;
        let (path, size, body) = match event {
            Event::Link { path, target } => {
                st.mem.links.insert(path, target);
                continue;
            }
            Event::File { path, size, body } => (path, size, body),
        };
        let member: Result<()> = async {
            match paths::classify(&path)? {
                Member::Index | Member::DockerManifest => {
                    if size > MAX_JSON {
                        bail!("{size} bytes, too large for a JSON document");
                    }
                    st.meta.insert(path.clone(), collect(body, size).await?);
                }
                Member::Marker => {}
                Member::Blob(digest) => sink.blob(&mut st, &path, digest, size, body).await?,
                Member::Other => sink.other(&mut st, &path, size, body).await?,
            }
            Ok(())
        }
        .await;
        member.with_context(|| path.clone())?;
    }
    Ok(st)
}

/// Member sizes by digest, looked up once per blob (not a scan: 10 000 layers).
pub(super) fn sizes_by_digest(mem: &MemArchive) -> HashMap<&str, i64> {
    mem.members
        .values()
        .map(|m| (m.digest.as_str(), m.size))
        .collect()
}

/// Whether a member of the archive holds blob `b`; one whose size is not the one its
/// descriptor gives is an error (the digest matched, the size must too).
pub(super) fn member_holds(
    plan: &Plan,
    b: &PlannedBlob,
    sizes: &HashMap<&str, i64>,
) -> Result<bool> {
    match sizes.get(b.desc.digest.as_str()) {
        Some(&size) if size != b.desc.size => bail!(
            "{} holds {size} bytes, but its descriptor says {}",
            describe(plan, b),
            b.desc.size
        ),
        Some(_) => Ok(true),
        None => Ok(false),
    }
}

/// Plans a streamed archive from the documents it held: its format and the plan.
pub(super) async fn plan_streamed(
    meta: &HashMap<String, Bytes>,
    source: &impl Source,
    opts: &PlanOptions,
) -> Result<(&'static str, Plan)> {
    if let Some(index) = meta.get("index.json") {
        let docker = meta.get("manifest.json").map(|b| &b[..]);
        Ok((
            "oci",
            import_plan::plan_oci(index, docker, source, opts).await?,
        ))
    } else if let Some(manifest) = meta.get("manifest.json") {
        Ok((
            "docker",
            import_plan::plan_docker(manifest, source, opts).await?,
        ))
    } else {
        bail!(
            "no index.json (OCI layout) or manifest.json (docker save) in the archive: not an image archive"
        )
    }
}
