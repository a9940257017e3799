//! containerd's content store: streaming, verified blob transfer.
//!
//! Writes stream the source once, hash it while sending, and pipeline large chunks
//! without waiting for each to be acknowledged. Reads use one streaming `Read` per blob.

use std::collections::BTreeMap;
use std::time::SystemTime;

use anyhow::{Context, Result, anyhow, bail};
use futures::{Stream, StreamExt};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};
use tonic::transport::Channel;

use crate::model::Descriptor;
use crate::oci::sha256_digest;
use crate::proto::containerd::services::content::v1 as content;
use crate::runtime::containerd::{Containerd, time};

/// Bytes per `Write` message: large enough to amortise per-message cost (4 MiB measured
/// no faster: containerd's 16 KiB HTTP/2 frames bound it), small enough to keep memory flat.
pub(crate) const WRITE_CHUNK: usize = 1 << 20;
/// Write messages in flight before the sender waits: enough to keep containerd busy,
/// few enough that peak memory stays a few MiB whatever the blob size.
const WRITE_QUEUE: usize = 4;

/// What the content store knows about a blob.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentInfo {
    pub(crate) digest: String,
    pub size: i64,
    pub labels: BTreeMap<String, String>,
    pub(crate) created_at: Option<SystemTime>,
    pub(crate) updated_at: Option<SystemTime>,
}

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The blob was written and committed.
    Committed,
    /// The store already had it (committed by someone else meanwhile).
    AlreadyExists,
}

/// The error for bytes that do not match their descriptor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("blob {expected} is {actual} bytes, its descriptor says {declared}")]
    Size {
        expected: String,
        declared: i64,
        actual: i64,
    },
    #[error("blob content has digest {actual}, its descriptor says {expected}")]
    Digest { expected: String, actual: String },
}

impl Containerd {
    fn content(&self) -> content::content_client::ContentClient<Channel> {
        content::content_client::ContentClient::new(self.channel())
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    /// The blob's info, or `None` when the store does not have it.
    pub async fn content_info(&self, digest: &str) -> Result<Option<ContentInfo>> {
        match self
            .content()
            .info(self.req(content::InfoRequest {
                digest: digest.to_string(),
            }))
            .await
        {
            Ok(r) => Ok(r.into_inner().info.map(info)),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(self.rpc(s).context(format!("content Info {digest}"))),
        }
    }

    /// The digests of the blobs labelled `key=value`.
    pub(crate) async fn content_labelled(&self, key: &str, value: &str) -> Result<Vec<String>> {
        // containerd's filter syntax: a key or value holding '.', '/' or ':' is quoted.
        let filter = format!("labels.{key:?}=={value:?}");
        let mut stream = self
            .content()
            .list(self.req(content::ListContentRequest {
                filters: vec![filter.clone()],
            }))
            .await
            .map_err(|s| self.rpc(s))
            .with_context(|| format!("content List {filter}"))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(page) = stream
            .message()
            .await
            .map_err(|s| self.rpc(s))
            .with_context(|| format!("content List {filter}"))?
        {
            out.extend(page.info.into_iter().map(|i| i.digest));
        }
        Ok(out)
    }

    /// Sets and removes labels of a blob, leaving its other labels alone.
    pub async fn content_update_labels(
        &self,
        digest: &str,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<()> {
        let paths = set
            .keys()
            .chain(remove.iter())
            .map(|k| format!("labels.{k}"))
            .collect();
        self.content()
            .update(self.req(content::UpdateRequest {
                info: Some(content::Info {
                    digest: digest.to_string(),
                    labels: set.clone().into_iter().collect(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask { paths }),
            }))
            .await
            .map_err(|s| self.rpc(s))
            .with_context(|| format!("updating labels of blob {digest}"))?;
        Ok(())
    }

    /// Streams a whole blob in one `Read` call. The chunks are the server's; nothing is
    /// buffered here. The caller verifies the digest if it needs to.
    pub async fn read_blob(
        &self,
        digest: &str,
    ) -> Result<impl Stream<Item = Result<bytes::Bytes>> + use<>> {
        let stream = self
            .content()
            .read(self.streaming_req(content::ReadContentRequest {
                digest: digest.to_string(),
                offset: 0,
                size: 0,
            }))
            .await
            .map_err(|s| {
                if s.code() == tonic::Code::NotFound {
                    anyhow!("blob {digest} is not in the content store")
                } else {
                    self.rpc(s).context(format!("reading blob {digest}"))
                }
            })?
            .into_inner();
        let digest = digest.to_string();
        let c = self.clone();
        Ok(stream.map(move |r| {
            r.map(|m| bytes::Bytes::from(m.data))
                .map_err(|s| c.rpc(s).context(format!("reading blob {digest}")))
        }))
    }

    /// Writes a blob from `reader`, which must yield exactly `desc.size` bytes hashing to
    /// `desc.digest`; both are checked here while streaming and again by containerd at
    /// commit. `labels` are set at commit (GC references belong here). `on_bytes` is called
    /// with each chunk's length, for progress.
    ///
    /// Reading the source and sending to containerd overlap: a bounded queue of large
    /// chunks is in flight and acknowledgements are consumed concurrently.
    pub async fn write_blob<R: AsyncRead + Unpin>(
        &self,
        desc: &Descriptor,
        labels: &BTreeMap<String, String>,
        mut reader: R,
        mut on_bytes: impl FnMut(u64),
    ) -> Result<Written> {
        let reference = format!(
            "crimg-{}-{}-{}",
            std::process::id(),
            desc.digest.trim_start_matches("sha256:"),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let (tx, rx) = tokio::sync::mpsc::channel::<content::WriteContentRequest>(WRITE_QUEUE);
        let mut client = self.content();
        let request = self.streaming_req(tokio_stream::wrappers::ReceiverStream::new(rx));
        // The call only starts once polled, so run it beside the sender.
        let call = tokio::spawn(async move {
            let mut responses = client.write(request).await?.into_inner();
            let mut last = None;
            while let Some(msg) = responses.message().await? {
                last = Some(msg);
            }
            Ok::<_, tonic::Status>(last)
        });

        let mut hasher = Sha256::new();
        let mut offset: i64 = 0;
        let send_result: Result<()> = async {
            loop {
                // Each chunk is read into its own buffer and moved into its message: no copy.
                let mut buf = vec![0u8; WRITE_CHUNK];
                let n = read_full(&mut reader, &mut buf).await?;
                let last = n < buf.len();
                buf.truncate(n);
                hasher.update(&buf);
                let at = offset;
                offset += n as i64;
                if offset > desc.size {
                    bail!(VerifyError::Size {
                        expected: desc.digest.clone(),
                        declared: desc.size,
                        actual: offset,
                    });
                }
                on_bytes(n as u64);
                if last {
                    if offset != desc.size {
                        bail!(VerifyError::Size {
                            expected: desc.digest.clone(),
                            declared: desc.size,
                            actual: offset,
                        });
                    }
                    let actual = sha256_digest(std::mem::take(&mut hasher));
                    if actual != desc.digest {
                        bail!(VerifyError::Digest {
                            expected: desc.digest.clone(),
                            actual,
                        });
                    }
                }
                let msg = content::WriteContentRequest {
                    action: if last {
                        content::WriteAction::Commit as i32
                    } else {
                        content::WriteAction::Write as i32
                    },
                    r#ref: reference.clone(),
                    total: desc.size,
                    expected: desc.digest.clone(),
                    offset: at,
                    data: buf,
                    labels: if last {
                        labels.clone().into_iter().collect()
                    } else {
                        Default::default()
                    },
                };
                if tx.send(msg).await.is_err() {
                    // The server ended the call; its status says why.
                    return Ok(());
                }
                if last {
                    return Ok(());
                }
            }
        }
        .await;
        drop(tx);
        let outcome = call
            .await
            .map_err(|e| anyhow!("content writer task: {e}"))?;
        if let Err(e) = send_result {
            // Nothing was committed; drop the partial ingest.
            self.abort_write(&reference).await;
            return Err(e);
        }
        match outcome {
            Ok(_) => Ok(Written::Committed),
            Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(Written::AlreadyExists),
            Err(s) => {
                self.abort_write(&reference).await;
                Err(self.rpc(s).context(format!("writing blob {}", desc.digest)))
            }
        }
    }

    async fn abort_write(&self, reference: &str) {
        let _ = self
            .content()
            .abort(self.req(content::AbortRequest {
                r#ref: reference.to_string(),
            }))
            .await;
    }

    /// Writes `size` bytes whose digest is not known beforehand (docker's legacy
    /// `layer.tar`); containerd commits them under the digest computed here, and checks
    /// it. Returns the digest.
    pub(crate) async fn write_blob_unknown<R: AsyncRead + Unpin>(
        &self,
        size: i64,
        labels: &BTreeMap<String, String>,
        mut reader: R,
        mut on_bytes: impl FnMut(u64),
    ) -> Result<String> {
        let reference = format!(
            "crimg-{}-unknown-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let (tx, rx) = tokio::sync::mpsc::channel::<content::WriteContentRequest>(8);
        let mut client = content::content_client::ContentClient::new(self.channel())
            .max_encoding_message_size(64 << 20);
        let request = self.streaming_req(tokio_stream::wrappers::ReceiverStream::new(rx));
        let call = tokio::spawn(async move {
            let mut responses = client.write(request).await?.into_inner();
            while responses.message().await?.is_some() {}
            Ok::<_, tonic::Status>(())
        });
        let mut hasher = Sha256::new();
        let mut offset: i64 = 0;
        let sent: Result<String> = async {
            let mut buf = vec![0u8; WRITE_CHUNK];
            loop {
                let mut n = 0;
                while n < buf.len() {
                    let r = reader.read(&mut buf[n..]).await?;
                    if r == 0 {
                        break;
                    }
                    n += r;
                }
                hasher.update(&buf[..n]);
                let at = offset;
                offset += n as i64;
                on_bytes(n as u64);
                if offset > size {
                    bail!("member is longer than its {size} bytes");
                }
                let last = n < buf.len();
                let mut expected = String::new();
                if last {
                    if offset != size {
                        bail!("member is {offset} bytes, its header says {size}");
                    }
                    expected = sha256_digest(std::mem::take(&mut hasher));
                }
                let msg = content::WriteContentRequest {
                    action: if last {
                        content::WriteAction::Commit
                    } else {
                        content::WriteAction::Write
                    } as i32,
                    r#ref: reference.clone(),
                    total: size,
                    expected: expected.clone(),
                    offset: at,
                    data: buf[..n].to_vec(),
                    labels: if last {
                        labels.clone().into_iter().collect()
                    } else {
                        Default::default()
                    },
                };
                if tx.send(msg).await.is_err() || last {
                    return Ok(expected);
                }
            }
        }
        .await;
        drop(tx);
        let outcome = call
            .await
            .map_err(|e| anyhow!("content writer task: {e}"))?;
        let abort = || async {
            let _ = content::content_client::ContentClient::new(self.channel())
                .abort(self.req(content::AbortRequest {
                    r#ref: reference.clone(),
                }))
                .await;
        };
        let digest = match sent {
            Ok(d) => d,
            Err(e) => {
                abort().await;
                return Err(e);
            }
        };
        match outcome {
            Ok(()) => Ok(digest),
            Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(digest),
            Err(s) => {
                abort().await;
                Err(self.rpc(s).context("writing a blob"))
            }
        }
    }
}

/// Fills `buf` unless the source ends first; returns how much was read.
async fn read_full<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = reader.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

fn info(i: content::Info) -> ContentInfo {
    ContentInfo {
        digest: i.digest,
        size: i.size,
        labels: i.labels.into_iter().collect(),
        created_at: i.created_at.and_then(time),
        updated_at: i.updated_at.and_then(time),
    }
}
