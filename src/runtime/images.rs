//! containerd's images service: the image records CRI keeps, read, created, pointed
//! elsewhere, relabelled and deleted.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result, anyhow};
use tonic::transport::Channel;

use crate::model::{Descriptor, ImageRecord, LABEL_CRI_MANAGED};
use crate::proto::containerd::services::images::v1 as images;
use crate::proto::containerd::types;
use crate::runtime::containerd::{Containerd, time};

/// What creating an image record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordChange {
    Created,
    /// The name existed; this was its record before.
    Replaced(ImageRecord),
}

impl Containerd {
    fn images(&self) -> images::images_client::ImagesClient<Channel> {
        images::images_client::ImagesClient::new(self.channel()).max_decoding_message_size(64 << 20)
    }

    pub(crate) async fn list_images(&self) -> Result<Vec<ImageRecord>> {
        self.list_images_where(vec![]).await
    }

    /// The records that point at `digest` (an image's other tags, digest and ID records).
    pub(crate) async fn images_targeting(&self, digest: &str) -> Result<Vec<ImageRecord>> {
        // containerd's filter syntax quotes values that hold ':'.
        self.list_images_where(vec![format!("target.digest=={digest:?}")])
            .await
    }

    async fn list_images_where(&self, filters: Vec<String>) -> Result<Vec<ImageRecord>> {
        let resp = self
            .images()
            .list(self.req(images::ListImagesRequest { filters }))
            .await
            .map_err(|s| self.rpc(s))
            .context("containerd Images.List")?
            .into_inner();
        Ok(resp.images.into_iter().map(record).collect())
    }

    /// Sets and removes labels of one image record, leaving its other labels and its
    /// target alone.
    ///
    /// The request carries the record's current target although the field paths name only
    /// labels: containerd 1.7 and 2.x convert the whole image before applying the mask and
    /// dereference a missing target (a nil pointer that takes the daemon down).
    pub(crate) async fn update_labels(
        &self,
        name: &str,
        set: &[(String, String)],
        remove: &[String],
    ) -> Result<()> {
        let current = self
            .get_image(name)
            .await?
            .ok_or_else(|| anyhow!("image record {name} not found (removed meanwhile?)"))?;
        let labels = set.iter().cloned().collect();
        self.update_image(name, &current.target, labels, label_paths(set, remove))
            .await
            .with_context(|| format!("updating labels of image record {name}"))
    }

    /// Images.Update of the fields `paths` names. The image always carries a target, even
    /// where `paths` leaves it alone (see [`Containerd::update_labels`]).
    async fn update_image(
        &self,
        name: &str,
        target: &Descriptor,
        labels: HashMap<String, String>,
        paths: Vec<String>,
    ) -> Result<()> {
        let image = images::Image {
            name: name.to_string(),
            labels,
            target: Some(to_proto(target)),
            ..Default::default()
        };
        self.images()
            .update(self.req(images::UpdateImageRequest {
                image: Some(image),
                update_mask: Some(prost_types::FieldMask { paths }),
                ..Default::default()
            }))
            .await
            .map_err(|s| self.rpc(s))?;
        Ok(())
    }

    /// Deletes one image record. `sync` waits for containerd's garbage collection.
    /// containerd 2.x also checks the record still points at `target` (1.6 ignores it),
    /// so a tag moved to another image meanwhile is not deleted there.
    /// A record that is already gone is no error.
    pub(crate) async fn delete_image(&self, record: &ImageRecord, sync: bool) -> Result<()> {
        let name = &record.name;
        let target = (!record.target.digest.is_empty()).then(|| to_proto(&record.target));
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

    /// Creates the record `alias` for `record`'s image without CRI's mark, and waits up to
    /// `wait` for CRI to take it in (CRI marks the records it keeps
    /// `io.cri-containerd.image=managed`). Deleting that record afterwards is what makes
    /// CRI drop a name it keeps in normalised form (`docker.io/app/x:1.0`) while
    /// containerd's record has another (`app/x:1.0`): deleting only the latter leaves the
    /// image in CRI's list on 1.6, 1.7 and 2.x alike. Whether CRI marked it in time is
    /// returned; an alias that already exists is left as it is.
    pub(crate) async fn alias_for_cri(
        &self,
        record: &ImageRecord,
        alias: &str,
        wait: std::time::Duration,
    ) -> Result<bool> {
        let mut labels = record.labels.clone();
        labels.remove(LABEL_CRI_MANAGED);
        let image = images::Image {
            name: alias.to_string(),
            labels: labels.into_iter().collect(),
            target: Some(to_proto(&record.target)),
            ..Default::default()
        };
        let created = self
            .images()
            .create(self.req(images::CreateImageRequest {
                image: Some(image),
                ..Default::default()
            }))
            .await;
        match created {
            Ok(_) => {}
            Err(s) if s.code() == tonic::Code::AlreadyExists => return Ok(true),
            Err(s) => {
                return Err(self
                    .rpc(s)
                    .context(format!("creating image record {alias}")));
            }
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let marked = self
                .get_image(alias)
                .await?
                .is_some_and(|r| r.labels.contains_key(LABEL_CRI_MANAGED));
            if marked || tokio::time::Instant::now() >= deadline {
                return Ok(marked);
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// One image record, or `None`.
    pub(crate) async fn get_image(&self, name: &str) -> Result<Option<ImageRecord>> {
        match self
            .images()
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
    pub(crate) async fn put_image(
        &self,
        name: &str,
        target: &Descriptor,
        labels: &BTreeMap<String, String>,
    ) -> Result<RecordChange> {
        let image = images::Image {
            name: name.to_string(),
            labels: labels.clone().into_iter().collect(),
            target: Some(to_proto(target)),
            ..Default::default()
        };
        let created = self
            .images()
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
                self.update_image(name, target, image.labels, paths)
                    .await
                    .with_context(|| format!("updating image record {name}"))?;
                Ok(RecordChange::Replaced(before))
            }
            Err(s) => Err(self.rpc(s).context(format!("creating image record {name}"))),
        }
    }

    /// Undoes [`Containerd::put_image`].
    pub(crate) async fn undo_put_image(&self, name: &str, change: &RecordChange) -> Result<()> {
        match change {
            RecordChange::Created => {
                let record = ImageRecord {
                    name: name.to_string(),
                    ..Default::default()
                };
                self.delete_image(&record, false).await
            }
            RecordChange::Replaced(before) => {
                let labels = before.labels.clone().into_iter().collect();
                let paths = vec!["target".into(), "labels".into()];
                self.update_image(name, &before.target, labels, paths)
                    .await
                    .with_context(|| format!("restoring image record {name}"))
            }
        }
    }
}

/// The update mask that sets `set` and removes `remove`, one field path per label, so no
/// other label of the record is touched.
fn label_paths(set: &[(String, String)], remove: &[String]) -> Vec<String> {
    set.iter()
        .map(|(k, _)| k)
        .chain(remove)
        .map(|k| format!("labels.{k}"))
        .collect()
}

/// An image record's target as containerd's API carries it.
pub(super) fn to_proto(d: &Descriptor) -> types::Descriptor {
    types::Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        ..Default::default()
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
