//! containerd client: the image records and labels CRI does not expose.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::model::{Descriptor, ImageRecord};
use crate::proto::containerd::services::images::v1 as images;
use crate::proto::containerd::services::version::v1 as version;
use crate::proto::containerd::types;

/// The gRPC header that selects a containerd namespace.
const NAMESPACE_HEADER: &str = "containerd-namespace";
/// The gRPC header that puts what a call creates under a lease.
const LEASE_HEADER: &str = "containerd-lease";

/// A connection to containerd's API in one namespace.
#[derive(Clone)]
pub struct Containerd {
    channel: Channel,
    namespace: MetadataValue<tonic::metadata::Ascii>,
    lease: Option<MetadataValue<tonic::metadata::Ascii>>,
    timeout: Duration,
    pub address: String,
}

impl Containerd {
    pub fn new(
        channel: Channel,
        namespace: &str,
        timeout: Duration,
        address: String,
    ) -> Result<Self> {
        let namespace = namespace
            .parse()
            .with_context(|| format!("namespace {namespace:?} is not a valid header value"))?;
        Ok(Containerd {
            channel,
            namespace,
            lease: None,
            timeout,
            address,
        })
    }

    /// A failed call as an error that names this socket when the connection failed.
    pub(crate) fn rpc(&self, status: tonic::Status) -> anyhow::Error {
        anyhow::Error::new(crate::runtime::RpcError::new(
            status,
            "containerd",
            &self.address,
        ))
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The same connection with every call made under lease `id`.
    pub fn with_lease(&self, id: &str) -> Result<Containerd> {
        let mut c = self.clone();
        c.lease = Some(id.parse().with_context(|| format!("lease id {id:?}"))?);
        Ok(c)
    }

    /// A request in this namespace with the short-call deadline.
    pub fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = self.streaming_req(msg);
        r.set_timeout(self.timeout);
        r
    }

    /// A request in this namespace without a deadline, for transfers.
    pub fn streaming_req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut()
            .insert(NAMESPACE_HEADER, self.namespace.clone());
        if let Some(lease) = &self.lease {
            r.metadata_mut().insert(LEASE_HEADER, lease.clone());
        }
        r
    }

    fn images(&self) -> images::images_client::ImagesClient<Channel> {
        images::images_client::ImagesClient::new(self.channel.clone())
            .max_decoding_message_size(64 << 20)
    }

    pub async fn version(&self) -> Result<String> {
        let v = version::version_client::VersionClient::new(self.channel.clone())
            .version(self.req(()))
            .await
            .map_err(|s| self.rpc(s))
            .context("containerd Version")?
            .into_inner();
        Ok(v.version)
    }

    pub async fn list_images(&self) -> Result<Vec<ImageRecord>> {
        let resp = self
            .images()
            .list(self.req(images::ListImagesRequest { filters: vec![] }))
            .await
            .map_err(|s| self.rpc(s))
            .context("containerd Images.List")?
            .into_inner();
        Ok(resp.images.into_iter().map(record).collect())
    }

    /// Sets and removes labels of one image record, leaving its other labels alone.
    pub async fn update_labels(
        &self,
        name: &str,
        set: &[(String, String)],
        remove: &[String],
    ) -> Result<()> {
        let paths = set
            .iter()
            .map(|(k, _)| format!("labels.{k}"))
            .chain(remove.iter().map(|k| format!("labels.{k}")))
            .collect();
        let image = images::Image {
            name: name.to_string(),
            labels: set.iter().cloned().collect(),
            ..Default::default()
        };
        self.images()
            .update(self.req(images::UpdateImageRequest {
                image: Some(image),
                update_mask: Some(prost_types::FieldMask { paths }),
                ..Default::default()
            }))
            .await
            .map_err(|s| self.rpc(s))
            .with_context(|| format!("updating labels of image record {name}"))?;
        Ok(())
    }
}

fn record(i: images::Image) -> ImageRecord {
    ImageRecord {
        name: i.name,
        labels: i.labels.into_iter().collect(),
        target: i.target.map(descriptor).unwrap_or_default(),
        created_at: i.created_at.and_then(time),
        updated_at: i.updated_at.and_then(time),
    }
}

fn descriptor(d: types::Descriptor) -> Descriptor {
    Descriptor {
        media_type: d.media_type,
        digest: d.digest,
        size: d.size,
    }
}

pub(crate) fn time(t: prost_types::Timestamp) -> Option<SystemTime> {
    let secs = u64::try_from(t.seconds).ok()?;
    let nanos = u32::try_from(t.nanos).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

impl Containerd {
    /// Deletes one image record. `sync` waits for containerd's garbage collection.
    /// containerd 2.x also checks the record still points at `target` (1.6 ignores it),
    /// so a tag moved to another image meanwhile is not deleted there.
    /// A record that is already gone is no error.
    pub async fn delete_image(&self, record: &ImageRecord, sync: bool) -> Result<()> {
        let name = &record.name;
        let target = (!record.target.digest.is_empty()).then(|| types::Descriptor {
            media_type: record.target.media_type.clone(),
            digest: record.target.digest.clone(),
            size: record.target.size,
            ..Default::default()
        });
        let r = self
            .images()
            .delete(self.streaming_req(images::DeleteImageRequest {
                name: name.clone(),
                sync,
                target,
            }))
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(self.rpc(s).context(format!("deleting image record {name}"))),
        }
    }
}
