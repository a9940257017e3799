//! containerd writes an import needs beyond the content client: image records, lease
//! resources, synchronous lease deletion, and blobs whose digest is learnt by writing.

use std::collections::BTreeMap;
use std::time::SystemTime;

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};
use tonic::transport::Channel;

use crate::model::{Descriptor, ImageRecord};
use crate::proto::containerd::services::content::v1 as content;
use crate::proto::containerd::services::images::v1 as images;
use crate::proto::containerd::services::leases::v1 as leases;
use crate::proto::containerd::types;
use crate::runtime::containerd::{Containerd, time};
use crate::runtime::content::{WRITE_CHUNK, sha256_digest};

/// What creating an image record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordChange {
    Created,
    /// The name existed; this was its record before.
    Replaced(ImageRecord),
}

impl Containerd {
    fn images_rw(&self) -> images::images_client::ImagesClient<Channel> {
        images::images_client::ImagesClient::new(self.channel())
    }

    /// One image record, or `None`.
    pub async fn get_image(&self, name: &str) -> Result<Option<ImageRecord>> {
        match self
            .images_rw()
            .get(self.req(images::GetImageRequest {
                name: name.to_string(),
            }))
            .await
        {
            Ok(r) => Ok(r.into_inner().image.map(record)),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(self.rpc(s).context(format!("containerd Images.Get {name}"))),
        }
    }

    /// Creates the record `name → target`, or points an existing one at `target`; `labels`
    /// are set, other labels of an existing record are kept.
    pub async fn put_image(
        &self,
        name: &str,
        target: &Descriptor,
        labels: &BTreeMap<String, String>,
    ) -> Result<RecordChange> {
        let image = images::Image {
            name: name.to_string(),
            labels: labels.clone().into_iter().collect(),
            target: Some(types::Descriptor {
                media_type: target.media_type.clone(),
                digest: target.digest.clone(),
                size: target.size,
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .images_rw()
            .create(self.req(images::CreateImageRequest {
                image: Some(image.clone()),
                ..Default::default()
            }))
            .await;
        match created {
            Ok(_) => Ok(RecordChange::Created),
            Err(s) if s.code() == tonic::Code::AlreadyExists => {
                let before = self
                    .get_image(name)
                    .await?
                    .ok_or_else(|| anyhow!("image record {name} vanished while being replaced"))?;
                let mut paths = vec!["target".to_string()];
                paths.extend(labels.keys().map(|k| format!("labels.{k}")));
                self.images_rw()
                    .update(self.req(images::UpdateImageRequest {
                        image: Some(image),
                        update_mask: Some(prost_types::FieldMask { paths }),
                        ..Default::default()
                    }))
                    .await
                    .map_err(|s| self.rpc(s))
                    .with_context(|| format!("updating image record {name}"))?;
                Ok(RecordChange::Replaced(before))
            }
            Err(s) => Err(self.rpc(s).context(format!("creating image record {name}"))),
        }
    }

    /// Undoes [`Containerd::put_image`].
    pub async fn undo_put_image(&self, name: &str, change: &RecordChange) -> Result<()> {
        match change {
            RecordChange::Created => {
                let record = ImageRecord {
                    name: name.to_string(),
                    ..Default::default()
                };
                self.delete_image(&record, false).await
            }
            RecordChange::Replaced(before) => {
                let image = images::Image {
                    name: name.to_string(),
                    labels: before.labels.clone().into_iter().collect(),
                    target: Some(types::Descriptor {
                        media_type: before.target.media_type.clone(),
                        digest: before.target.digest.clone(),
                        size: before.target.size,
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                self.images_rw()
                    .update(self.req(images::UpdateImageRequest {
                        image: Some(image),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["target".into(), "labels".into()],
                        }),
                        ..Default::default()
                    }))
                    .await
                    .map_err(|s| self.rpc(s))
                    .with_context(|| format!("restoring image record {name}"))?;
                Ok(())
            }
        }
    }

    /// Puts an existing blob under a lease, so garbage collection keeps it until the
    /// image that needs it exists.
    pub async fn lease_content(&self, lease: &str, digest: &str) -> Result<()> {
        self.leases()
            .add_resource(self.req(leases::AddResourceRequest {
                id: lease.to_string(),
                resource: Some(leases::Resource {
                    id: digest.to_string(),
                    r#type: "content".into(),
                }),
            }))
            .await
            .map_err(|s| self.rpc(s))
            .with_context(|| format!("adding blob {digest} to lease {lease}"))?;
        Ok(())
    }

    /// Writes `size` bytes whose digest is not known beforehand (docker's legacy
    /// `layer.tar`); containerd commits them under the digest computed here, and checks
    /// it. Returns the digest.
    pub async fn write_blob_unknown<R: AsyncRead + Unpin>(
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

fn record(i: images::Image) -> ImageRecord {
    ImageRecord {
        name: i.name,
        labels: i.labels.into_iter().collect(),
        target: i
            .target
            .map(|d| Descriptor {
                media_type: d.media_type,
                digest: d.digest,
                size: d.size,
            })
            .unwrap_or_default(),
        created_at: i.created_at.and_then(time),
        updated_at: i.updated_at.and_then(time),
    }
}
