//! containerd client: the connection, its namespace and its lease. Each service's calls
//! are in a file of their own: `images`, `content`, `leases`, `snapshots`, `unpack` (diff).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::proto::containerd::services::version::v1 as version;

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
    pub(crate) address: String,
}

impl Containerd {
    pub(crate) fn new(
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
        anyhow::Error::new(crate::error::RpcError::new(
            status,
            "containerd",
            &self.address,
        ))
    }

    pub(crate) fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The same connection with every call made under lease `id`.
    pub fn with_lease(&self, id: &str) -> Result<Containerd> {
        let mut c = self.clone();
        c.lease = Some(id.parse().with_context(|| format!("lease id {id:?}"))?);
        Ok(c)
    }

    /// A request in this namespace with the short-call deadline.
    pub(crate) fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = self.streaming_req(msg);
        r.set_timeout(self.timeout);
        r
    }

    /// A request in this namespace without a deadline, for transfers.
    pub(crate) fn streaming_req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut()
            .insert(NAMESPACE_HEADER, self.namespace.clone());
        if let Some(lease) = &self.lease {
            r.metadata_mut().insert(LEASE_HEADER, lease.clone());
        }
        r
    }

    pub(crate) async fn version(&self) -> Result<String> {
        let v = version::version_client::VersionClient::new(self.channel.clone())
            .version(self.req(()))
            .await
            .map_err(|s| self.rpc(s))
            .context("containerd Version")?
            .into_inner();
        Ok(v.version)
    }
}

pub(crate) fn time(t: prost_types::Timestamp) -> Option<SystemTime> {
    let secs = u64::try_from(t.seconds).ok()?;
    let nanos = u32::try_from(t.nanos).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}
