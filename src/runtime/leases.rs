//! containerd's leases service: the leases that keep what an import or a fetch writes
//! until an image holds it, their resources, and the release of those a killed crimg
//! left.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use tonic::transport::Channel;

use crate::oci::gc::GC_EXPIRE;
use crate::proto::containerd::services::leases::v1 as leases;
use crate::runtime::containerd::Containerd;
use crate::runtime::owner;

/// A new lease ID: crimg's, the purpose, this process and the time.
pub(crate) fn lease_id(purpose: &str) -> String {
    format!(
        "crimg-{purpose}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    )
}

/// The leases a command is working under, remembered so that an interruption (a signal,
/// a cancelled import) can delete them and, with them, whatever they hold. A clone shares
/// the same set.
#[derive(Clone, Default)]
pub(crate) struct HeldLeases(Arc<Mutex<Vec<(Containerd, String)>>>);

impl HeldLeases {
    fn remember(&self, c: &Containerd, id: &str) {
        if let Ok(mut held) = self.0.lock() {
            held.push((c.clone(), id.to_string()));
        }
    }

    /// Forgets lease `id`: deleted, or no longer the interruption's to delete.
    pub(crate) fn forget(&self, id: &str) {
        if let Ok(mut held) = self.0.lock() {
            held.retain(|(_, h)| h != id);
        }
    }

    /// Every lease remembered, forgotten here: for the caller to delete.
    pub(crate) fn take(&self) -> Vec<(Containerd, String)> {
        self.0
            .lock()
            .map(|mut held| std::mem::take(&mut *held))
            .unwrap_or_default()
    }
}

impl Containerd {
    /// Creates a lease (see [`Containerd::create_lease`]) remembered in `held`. It is
    /// remembered before containerd is asked: an interruption that lands after
    /// containerd made the lease but before its answer arrived still finds it to delete.
    /// A lease containerd refused is forgotten again.
    pub(crate) async fn create_held_lease(
        &self,
        held: &HeldLeases,
        purpose: &str,
        expire: Duration,
    ) -> Result<String> {
        let id = lease_id(purpose);
        held.remember(self, &id);
        if let Err(e) = self.create_lease_with_id(&id, expire).await {
            held.forget(&id);
            return Err(e);
        }
        Ok(id)
    }

    fn leases(&self) -> leases::leases_client::LeasesClient<Channel> {
        leases::leases_client::LeasesClient::new(self.channel())
    }

    /// Creates a lease that expires by itself after `expire`, so content written under
    /// it survives garbage collection until the image record holds it, and an abandoned
    /// lease (a killed crimg) does not keep content forever. It is labelled with this
    /// process (see [`owner`]), so a later crimg can release it sooner once the process
    /// is gone ([`Containerd::release_stale_leases`]).
    pub async fn create_lease(&self, purpose: &str, expire: Duration) -> Result<String> {
        let id = lease_id(purpose);
        self.create_lease_with_id(&id, expire).await?;
        Ok(id)
    }

    /// [`Containerd::create_lease`] with an ID from [`lease_id`], for a caller that must
    /// know the ID before containerd does (to delete it if the call is abandoned).
    async fn create_lease_with_id(&self, id: &str, expire: Duration) -> Result<()> {
        let until = humantime::format_rfc3339_seconds(SystemTime::now() + expire).to_string();
        let mut labels: std::collections::HashMap<String, String> =
            [(GC_EXPIRE.to_string(), until)].into_iter().collect();
        if let Some(me) = owner::Owner::current() {
            labels.extend(me.labels());
        }
        self.leases()
            .create(self.req(leases::CreateRequest {
                id: id.to_string(),
                labels,
            }))
            .await
            .map_err(|s| self.rpc(s))
            .context("creating a containerd lease")?;
        Ok(())
    }

    /// Deletes a lease; what it held is collected unless something else references it.
    /// With `sync`, waits for that collection (no deadline: it may take a while), so what
    /// only the lease held is gone when this returns.
    pub async fn delete_lease(&self, id: &str, sync: bool) -> Result<()> {
        let msg = leases::DeleteRequest {
            id: id.to_string(),
            sync,
        };
        let req = if sync {
            self.streaming_req(msg)
        } else {
            self.req(msg)
        };
        match self.leases().delete(req).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(self.rpc(s).context(format!("deleting lease {id}"))),
        }
    }

    /// The IDs of every lease in the namespace.
    pub async fn list_leases(&self) -> Result<Vec<String>> {
        let leases = self.list_leases_labelled().await?;
        Ok(leases.into_iter().map(|(id, _)| id).collect())
    }

    /// Every lease in the namespace, with its labels.
    pub(crate) async fn list_leases_labelled(
        &self,
    ) -> Result<Vec<(String, BTreeMap<String, String>)>> {
        let resp = self
            .leases()
            .list(self.req(leases::ListRequest { filters: vec![] }))
            .await
            .map_err(|s| self.rpc(s))
            .context("listing leases")?
            .into_inner();
        Ok(resp
            .leases
            .into_iter()
            .map(|l| (l.id, l.labels.into_iter().collect()))
            .collect())
    }

    /// Deletes the leases of crimg processes that are gone (killed before they could
    /// delete their own), so what they held, a half-written upload say, is collected
    /// now rather than when the lease expires. Leases of running processes, of other
    /// tools and of older crimg versions stay. The last deletion waits for the garbage
    /// collection (bounded by `collect_wait`), so the space is free when this returns.
    /// Returns the released leases and why each was stale.
    pub(crate) async fn release_stale_leases(
        &self,
        collect_wait: Duration,
    ) -> Result<Vec<(String, owner::Gone)>> {
        let Some(me) = owner::Owner::current() else {
            return Ok(vec![]);
        };
        let stale: Vec<(String, owner::Gone)> = self
            .list_leases_labelled()
            .await?
            .into_iter()
            .filter_map(|(id, labels)| {
                owner::stale(&labels, &me, owner::alive).map(|gone| (id, gone))
            })
            .collect();
        for (i, (id, _)) in stale.iter().enumerate() {
            if i + 1 < stale.len() {
                self.delete_lease(id, false).await?;
            } else if let Ok(deleted) =
                tokio::time::timeout(collect_wait, self.delete_lease(id, true)).await
            {
                deleted?;
            }
            // Past the wait the lease is deleted all the same (containerd deletes it
            // before it collects); the collection goes on without us.
        }
        Ok(stale)
    }

    /// Puts an existing blob under a lease, so garbage collection keeps it until the
    /// image that needs it exists.
    pub(crate) async fn lease_content(&self, lease: &str, digest: &str) -> Result<()> {
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

    /// Puts snapshot `key` of `snapshotter` under `lease`, whether it exists yet or not.
    pub(crate) async fn lease_snapshot(
        &self,
        lease: &str,
        snapshotter: &str,
        key: &str,
    ) -> Result<()> {
        self.leases()
            .add_resource(self.req(leases::AddResourceRequest {
                id: lease.to_string(),
                resource: Some(leases::Resource {
                    id: key.to_string(),
                    r#type: format!("snapshots/{snapshotter}"),
                }),
            }))
            .await
            .map_err(|s| self.rpc(s))
            .with_context(|| format!("adding snapshot {key} to lease {lease}"))?;
        Ok(())
    }
}
