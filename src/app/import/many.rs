//! Several items of one run imported at once, with the result of importing them one by one.
//!
//! Each archive is still all or nothing under its own lease. What they share is ordered:
//! image records are written in input order ([`Turns`]), so when two archives carry the
//! same tag the later one keeps it, and a layer two archives bring is applied once
//! ([`ChainLocks`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow};
use futures::StreamExt as _;
use tokio::sync::{OwnedMutexGuard, watch};

use super::importer::{Importer, ItemResult};
use super::inputs::Item;
use crate::app::Session;
use crate::error::ConnectionLost;

/// Archives imported at once. Each already keeps one chain per core unpacking and one
/// write per core in flight; a second archive fills the gaps of the first's serial steps
/// (reading its index, planning, recording, the CRI check, releasing its lease). A third
/// would add memory (each streamed archive may hold 64 MiB of small blobs) and no core.
const AT_ONCE: usize = 2;

/// Imports `items`, [`AT_ONCE`] at a time, handing each result to `each` with the item's
/// index, in input order.
/// Once the runtime is lost, items not yet started are not attempted: each gets that as
/// its error. Returns the lost connection (socket and why), if it was.
pub(crate) async fn import_many(
    importer: &Importer,
    session: &Session,
    items: &[Item],
    mut each: impl FnMut(usize, Result<ItemResult>),
) -> Option<ConnectionLost> {
    let lost: Mutex<Option<ConnectionLost>> = Mutex::new(None);
    let lost = &lost;
    // Numbered now, in input order, whatever order the imports reach their records in.
    let tickets: Vec<Ticket> = items.iter().map(|_| importer.turns.ticket()).collect();
    let mut results = futures::stream::iter(items.iter().zip(tickets).enumerate())
        .map(|(i, (item, ticket))| async move {
            let gone = lost.lock().ok().and_then(|l| l.clone());
            if let Some(gone) = gone {
                return (i, Err(anyhow::Error::new(gone).context("not attempted")));
            }
            let r = import_item(importer, session, item, &ticket).await;
            let found = match &r {
                Ok(res) => res.failures.iter().find_map(ConnectionLost::of),
                Err(e) => ConnectionLost::of(e),
            };
            if let (Some(found), Ok(mut l)) = (found, lost.lock()) {
                l.get_or_insert(found);
            }
            // Dropping the ticket gives the next item its turn; only now, after this
            // one's records were checked by CRI (and undone if refused).
            drop(ticket);
            (i, r)
        })
        .buffered(AT_ONCE);
    while let Some((i, r)) = results.next().await {
        each(i, r);
    }
    drop(results);
    lost.lock().ok().and_then(|l| l.clone())
}

/// One item's import; its image records are written at `ticket`'s turn.
async fn import_item(
    importer: &Importer,
    session: &Session,
    item: &Item,
    ticket: &Ticket<'_>,
) -> Result<ItemResult> {
    match item {
        Item::Archive(input) => importer.import_archive(session, input, ticket).await,
        Item::List(path) => {
            // A pull writes records as it goes: it waits for the items before it.
            ticket.turn().await;
            importer.import_list(session, path).await
        }
        Item::Bad(_, problem) => Err(anyhow!("{problem}")),
    }
}

/// The order in which imports write their image records: by ticket number.
pub(crate) struct Turns {
    issued: AtomicU64,
    state: watch::Sender<Order>,
}

#[derive(Default)]
struct Order {
    /// The ticket whose turn it is: every lower one is done.
    next: u64,
    /// Tickets done out of turn (failed before recording), above `next`.
    done: BTreeSet<u64>,
}

impl Default for Turns {
    fn default() -> Self {
        Turns {
            issued: AtomicU64::new(0),
            state: watch::Sender::new(Order::default()),
        }
    }
}

impl Turns {
    /// The next ticket. Its turn comes once every ticket issued before it is dropped.
    pub(crate) fn ticket(&self) -> Ticket<'_> {
        Ticket {
            n: self.issued.fetch_add(1, Ordering::Relaxed),
            turns: self,
        }
    }
}

/// A place in [`Turns`]; dropping it (done, failed or cancelled) passes the turn on.
pub(crate) struct Ticket<'a> {
    n: u64,
    turns: &'a Turns,
}

impl Ticket<'_> {
    /// Waits until every earlier ticket is dropped.
    pub(crate) async fn turn(&self) {
        let mut rx = self.turns.state.subscribe();
        // The sender lives in `turns`, which outlives this ticket: the wait cannot fail.
        let waited = rx.wait_for(|o| o.next == self.n).await;
        debug_assert!(waited.is_ok());
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.turns.state.send_modify(|o| {
            o.done.insert(self.n);
            while o.done.remove(&o.next) {
                o.next += 1;
            }
        });
    }
}

/// One lock per chain ID across the imports of a run: two archives bringing the same
/// layer apply it once, the second finding the first's snapshot.
#[derive(Default)]
pub(crate) struct ChainLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl ChainLocks {
    pub(crate) async fn hold(&self, chain_id: &str) -> ChainGuard<'_> {
        let lock = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            // A waiter dropped before it got its lock (its import cancelled) leaves an
            // entry nobody holds: swept here.
            map.retain(|_, l| Arc::strong_count(l) > 1);
            map.entry(chain_id.to_string()).or_default().clone()
        };
        ChainGuard {
            guard: Some(lock.lock_owned().await),
            chain_id: chain_id.to_string(),
            locks: self,
        }
    }
}

/// A held chain lock; the map forgets the chain once nobody holds or waits for it.
pub(crate) struct ChainGuard<'a> {
    guard: Option<OwnedMutexGuard<()>>,
    chain_id: String,
    locks: &'a ChainLocks,
}

impl Drop for ChainGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.locks.0.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map's own reference left: nobody holds or waits for it.
        if map
            .get(&self.chain_id)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            map.remove(&self.chain_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A ticket's turn comes only once every earlier one is dropped, in whatever order.
    #[tokio::test]
    async fn turns_follow_ticket_order() {
        let turns = Turns::default();
        let (t0, t1, t2) = (turns.ticket(), turns.ticket(), turns.ticket());
        let soon = Duration::from_millis(50);
        assert!(tokio::time::timeout(soon, t0.turn()).await.is_ok());
        assert!(tokio::time::timeout(soon, t2.turn()).await.is_err());
        // The last one dropped first (failed early): still not t2's turn.
        drop(t1);
        assert!(tokio::time::timeout(soon, t2.turn()).await.is_err());
        drop(t0);
        assert!(tokio::time::timeout(soon, t2.turn()).await.is_ok());
        drop(t2);
        // Numbering continues across batches.
        let t3 = turns.ticket();
        assert!(tokio::time::timeout(soon, t3.turn()).await.is_ok());
    }

    #[tokio::test]
    async fn a_chain_is_held_by_one_import_at_a_time_and_then_forgotten() {
        let locks = ChainLocks::default();
        let g = locks.hold("sha256:a").await;
        let soon = Duration::from_millis(50);
        assert!(
            tokio::time::timeout(soon, locks.hold("sha256:a"))
                .await
                .is_err()
        );
        // Another chain is not held up.
        assert!(
            tokio::time::timeout(soon, locks.hold("sha256:b"))
                .await
                .is_ok()
        );
        drop(g);
        assert!(
            tokio::time::timeout(soon, locks.hold("sha256:a"))
                .await
                .is_ok()
        );
        assert!(locks.0.lock().unwrap().is_empty());
    }
}
