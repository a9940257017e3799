//! containerd's event stream: image changes as they happen, instead of polling for them.

use anyhow::{Context, Result};
use futures::{Stream, StreamExt};

use crate::proto::containerd::services::events::v1 as events;
use crate::runtime::containerd::Containerd;

impl Containerd {
    /// The topics of image records deleted in `namespace`, as they happen. The stream ends
    /// when the connection does.
    pub(crate) async fn image_deletes(
        &self,
        namespace: &str,
    ) -> Result<impl Stream<Item = Result<String>> + use<>> {
        let filters = vec![format!(
            "namespace==\"{namespace}\",topic==\"/images/delete\""
        )];
        let stream = events::events_client::EventsClient::new(self.channel())
            .subscribe(self.streaming_req(events::SubscribeRequest { filters }))
            .await
            .map_err(|s| self.rpc(s))
            .context("containerd Events.Subscribe")?
            .into_inner();
        let c = self.clone();
        Ok(stream.map(move |r| r.map(|e| e.topic).map_err(|s| c.rpc(s))))
    }
}
