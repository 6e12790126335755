//! The read copy: every replica's view of every auction, built from the state topic
//! (`read_committed`) and, for the partitions this replica owns, straight from their owners as
//! they apply bids. It answers `HighestBid`, `WatchAuction`, `ListRecentBids` and `ListAuctions`,
//! and knows which replica owns each partition (its `#owner` records), for forwarding.
//!
//! An auction normally lives in one partition (its bids are keyed by its id). Producers that key
//! otherwise (the original demo keys by bidder name) spread one auction over several partitions;
//! each partition's owner then folds its own share, and the view merges the shares: the highest
//! bid of all (equal prices: the earlier timestamp), the sum of the counts, the newest recent bids.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use auction_schemas::AuctionId;
use auction_schemas::state::OwnerRecord;
use tokio::sync::broadcast;

use crate::auction::{AuctionState, BidRules, LoggedBid};
use crate::metrics as m;

/// How many updates a slow watcher may fall behind before it skips to the current state.
const WATCH_BUFFER: usize = 256;

/// The state of one auction at one moment, as clients see it.
#[derive(Debug, Clone)]
pub(crate) struct AuctionSnapshot {
    /// The auction.
    pub auction_id: AuctionId,
    /// The highest bid, if any.
    pub highest: Option<Arc<LoggedBid>>,
    /// The lowest price a new bid must offer.
    pub minimum_next_bid: i64,
    /// Bids applied.
    pub bid_count: u64,
    /// The share that holds the auction's definition and status (the first share of an auction
    /// nobody created; none when nothing is known of the auction).
    pub lifecycle: Option<Arc<AuctionState>>,
    /// Whether the highest bid meets the reserve (true with a bid and no reserve).
    pub reserve_met: bool,
}

#[derive(Debug, Default)]
struct Entry {
    /// One state per partition holding bids of the auction (usually one).
    shares: Vec<Arc<AuctionState>>,
    last_activity: u64,
    watchers: Option<broadcast::Sender<AuctionSnapshot>>,
    /// Open [`Watch`]es: when the last one ends, the sender goes, and an entry that holds no
    /// share (an auction nobody bid on, watched by id) goes with it.
    watching: usize,
}

/// A watcher's subscription to one auction: every later state, until it is dropped. Watching
/// an auction that does not exist keeps an entry for it only while someone watches.
#[derive(Debug)]
pub(crate) struct Watch {
    /// Every state after the one [`ReadCopy::watch`] returned.
    pub updates: broadcast::Receiver<AuctionSnapshot>,
    release: Release,
}

impl Watch {
    /// The updates, and the subscription to keep for as long as they are read.
    pub(crate) fn into_parts(self) -> (broadcast::Receiver<AuctionSnapshot>, impl Send + 'static) {
        (self.updates, self.release)
    }
}

/// Ends a watcher's subscription when dropped.
#[derive(Debug)]
struct Release {
    copy: Arc<ReadCopy>,
    id: AuctionId,
}

impl Drop for Release {
    fn drop(&mut self) {
        self.copy.unwatch(&self.id);
    }
}

/// Every auction's state, as this replica knows it.
#[derive(Debug)]
pub(crate) struct ReadCopy {
    auctions: RwLock<HashMap<AuctionId, Entry>>,
    owners: RwLock<HashMap<i32, OwnerRecord>>,
    rules: BidRules,
    activity: AtomicU64,
    /// Open [`Watch`]es of every auction (changed under the `auctions` write lock).
    watching: AtomicU64,
}

fn earlier_or_higher(a: &LoggedBid, b: &LoggedBid) -> bool {
    (a.bid.price, std::cmp::Reverse(a.bid.bid_ts.get()))
        > (b.bid.price, std::cmp::Reverse(b.bid.bid_ts.get()))
}

impl ReadCopy {
    /// An empty copy.
    pub(crate) fn new(rules: BidRules) -> Self {
        Self {
            auctions: RwLock::new(HashMap::new()),
            owners: RwLock::new(HashMap::new()),
            rules,
            activity: AtomicU64::new(0),
            watching: AtomicU64::new(0),
        }
    }

    fn snapshot_of(&self, id: &AuctionId, entry: Option<&Entry>) -> AuctionSnapshot {
        let shares = entry.map_or(&[][..], |e| &e.shares[..]);
        let highest = shares
            .iter()
            .filter_map(|s| s.highest.as_ref())
            .fold(None::<&Arc<LoggedBid>>, |best, h| match best {
                Some(b) if !earlier_or_higher(h, b) => Some(b),
                _ => Some(h),
            })
            .cloned();
        let primary = shares
            .iter()
            .find(|s| s.life.definition.is_some())
            .or_else(|| shares.first())
            .cloned();
        let highest_price = highest.as_ref().map(|h| i64::from(h.bid.price.get()));
        let reserve = primary
            .as_ref()
            .and_then(|p| p.life.definition.as_ref())
            .and_then(|d| d.reserve_price);
        AuctionSnapshot {
            auction_id: id.clone(),
            minimum_next_bid: match &primary {
                Some(primary) => primary.minimum_after(highest_price, &self.rules),
                None => AuctionState::new(id.clone(), 0).minimum_after(highest_price, &self.rules),
            },
            reserve_met: highest_price.is_some_and(|p| reserve.is_none_or(|r| p >= r)),
            highest,
            bid_count: shares.iter().map(|s| s.bid_count).sum(),
            lifecycle: primary,
        }
    }

    /// Takes a newer state of one auction's share in one partition (one not newer than the
    /// known one, by offset then revision, is ignored: the owner's own update arrives before the
    /// state record that carries it).
    pub(crate) fn update(&self, state: Arc<AuctionState>) {
        self.take(state, false);
    }

    /// Takes a state from this replica's owner of its partition: like [`Self::update`], but a
    /// state of the same offset and revision (the state topic's copy of it) is replaced too,
    /// without an update to the watchers, so that the owner and the read copy share one copy in
    /// memory.
    pub(crate) fn update_from_owner(&self, state: Arc<AuctionState>) {
        self.take(state, true);
    }

    fn take(&self, state: Arc<AuctionState>, same_offset_replaces: bool) {
        let mut auctions = self
            .auctions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = auctions.entry(state.id.clone()).or_default();
        match entry
            .shares
            .iter_mut()
            .find(|s| s.partition == state.partition)
        {
            Some(share)
                if same_offset_replaces
                    && (share.offset, share.revision) == (state.offset, state.revision) =>
            {
                *share = state;
                return;
            }
            Some(share) if (share.offset, share.revision) >= (state.offset, state.revision) => {
                return;
            }
            Some(share) => *share = state,
            None => entry.shares.push(state),
        }
        entry.last_activity = self.activity.fetch_add(1, Ordering::Relaxed) + 1;
        let id = entry.shares[0].id.clone();
        if let Some(watchers) = &entry.watchers {
            let snapshot = self.snapshot_of(&id, Some(entry));
            let _ = watchers.send(snapshot);
        }
        metrics::gauge!(m::AUCTION_ENTRIES).set(auctions.len() as f64);
    }

    /// The highest price of the auction's shares in partitions other than `partition`.
    pub(crate) fn highest_elsewhere(&self, id: &AuctionId, partition: i32) -> Option<i64> {
        let auctions = self
            .auctions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        auctions
            .get(id)?
            .shares
            .iter()
            .filter(|s| s.partition != partition)
            .filter_map(|s| s.highest_price())
            .max()
    }

    /// The auction's current state (an auction without bids has an empty one).
    pub(crate) fn snapshot(&self, id: &AuctionId) -> AuctionSnapshot {
        let auctions = self
            .auctions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.snapshot_of(id, auctions.get(id))
    }

    /// The current state and a subscription to every later state.
    pub(crate) fn watch(self: &Arc<Self>, id: &AuctionId) -> (AuctionSnapshot, Watch) {
        let mut auctions = self
            .auctions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = auctions.entry(id.clone()).or_default();
        let receiver = match &entry.watchers {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = broadcast::channel(WATCH_BUFFER);
                entry.watchers = Some(sender);
                receiver
            }
        };
        entry.watching += 1;
        let watching = self.watching.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!(m::WATCHERS).set(watching as f64);
        let snapshot = self.snapshot_of(id, Some(entry));
        metrics::gauge!(m::AUCTION_ENTRIES).set(auctions.len() as f64);
        let watch = Watch {
            updates: receiver,
            release: Release {
                copy: Arc::clone(self),
                id: id.clone(),
            },
        };
        (snapshot, watch)
    }

    /// One watcher of `id` is gone.
    fn unwatch(&self, id: &AuctionId) {
        let mut auctions = self
            .auctions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(entry) = auctions.get_mut(id) else {
            return;
        };
        let watching = self
            .watching
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        metrics::gauge!(m::WATCHERS).set(watching as f64);
        entry.watching = entry.watching.saturating_sub(1);
        if entry.watching == 0 {
            entry.watchers = None;
            if entry.shares.is_empty() {
                auctions.remove(id);
                metrics::gauge!(m::AUCTION_ENTRIES).set(auctions.len() as f64);
            }
        }
    }

    /// How many auctions this replica keeps an entry for (with bids, a definition, or watched).
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.auctions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Up to `limit` most recent bids, newest first.
    pub(crate) fn recent(&self, id: &AuctionId, limit: usize) -> Vec<LoggedBid> {
        let auctions = self
            .auctions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(entry) = auctions.get(id) else {
            return Vec::new();
        };
        // Each share is newest first: more than `limit` of one can never be kept.
        let mut bids: Vec<LoggedBid> = entry
            .shares
            .iter()
            .flat_map(|s| s.recent_bids().take(limit))
            .collect();
        if entry.shares.len() > 1 {
            bids.sort_by_key(|b| std::cmp::Reverse(b.bid.bid_ts.get()));
        }
        bids.truncate(limit);
        bids
    }

    /// Up to `limit` auctions with bids or a definition that `keep` accepts, the most recently
    /// active first.
    pub(crate) fn auctions(
        &self,
        limit: usize,
        keep: impl Fn(&AuctionSnapshot) -> bool,
    ) -> Vec<AuctionSnapshot> {
        let auctions = self
            .auctions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut active: Vec<(u64, &AuctionId, &Entry)> = auctions
            .iter()
            .filter(|(_, e)| {
                e.shares
                    .iter()
                    .any(|s| s.bid_count > 0 || s.life.definition.is_some())
            })
            .map(|(id, e)| (e.last_activity, id, e))
            .collect();
        active.sort_by_key(|(activity, _, _)| std::cmp::Reverse(*activity));
        active
            .into_iter()
            .map(|(_, id, e)| self.snapshot_of(id, Some(e)))
            .filter(|snapshot| keep(snapshot))
            .take(limit)
            .collect()
    }

    /// Whether anything is known of the auction (a definition or a bid).
    pub(crate) fn exists(&self, id: &AuctionId) -> bool {
        self.auctions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .is_some_and(|e| !e.shares.is_empty())
    }

    /// How many auctions have bids.
    pub(crate) fn len(&self) -> usize {
        self.auctions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .filter(|e| !e.shares.is_empty())
            .count()
    }

    /// Takes a partition's owner record.
    pub(crate) fn set_owner(&self, owner: OwnerRecord) {
        self.owners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(owner.partition, owner);
    }

    /// The last owner the state topic names for `partition`.
    pub(crate) fn owner(&self, partition: i32) -> Option<OwnerRecord> {
        self.owners
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&partition)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auction_schemas::{Bid, BidId, BidInput};

    const RULES: BidRules = BidRules {
        min_increment: 1,
        starting_price: 1,
        recent_limit: 5,
    };

    fn share(partition: i32, prices: &[i64]) -> Arc<AuctionState> {
        let mut state = AuctionState::new(AuctionId::parse("default").unwrap(), partition);
        for (offset, price) in prices.iter().enumerate() {
            let bid = Bid::new(
                &BidInput {
                    auction_id: Some("default"),
                    name: "x",
                    price: *price,
                },
                BidId::new_random(),
            )
            .unwrap();
            state.apply(
                &Arc::new(LoggedBid {
                    bid,
                    partition,
                    offset: offset as i64,
                }),
                false,
                &RULES,
            );
        }
        Arc::new(state)
    }

    #[test]
    fn shares_of_one_auction_in_several_partitions_merge() {
        let copy = ReadCopy::new(RULES);
        let id = AuctionId::parse("default").unwrap();
        copy.update(share(0, &[5, 9]));
        copy.update(share(3, &[7]));
        let snapshot = copy.snapshot(&id);
        assert_eq!(snapshot.bid_count, 3);
        assert_eq!(snapshot.highest.unwrap().bid.price.get(), 9);
        assert_eq!(copy.highest_elsewhere(&id, 0), Some(7));
        assert_eq!(copy.recent(&id, 10).len(), 3);
        // An older state of a share than the one known is ignored.
        copy.update(share(0, &[5]));
        assert_eq!(copy.snapshot(&id).bid_count, 3);
    }

    #[test]
    fn watching_an_unknown_auction_keeps_nothing_once_the_watchers_leave() {
        let copy = Arc::new(ReadCopy::new(RULES));
        let id = AuctionId::parse("nobody-bid-here").unwrap();
        let (first, one) = copy.watch(&id);
        let (_, two) = copy.watch(&id);
        assert_eq!(first.bid_count, 0);
        assert_eq!((copy.entries(), copy.len()), (1, 0));
        drop(one);
        assert_eq!(copy.entries(), 1, "still watched");
        drop(two);
        assert_eq!(copy.entries(), 0);
        // A watched auction with bids keeps its state, and stops broadcasting.
        let known = AuctionId::parse("default").unwrap();
        copy.update(share(0, &[10]));
        let (_, watch) = copy.watch(&known);
        drop(watch);
        assert_eq!((copy.entries(), copy.len()), (1, 1));
        copy.update(share(0, &[10, 20]));
        assert_eq!(copy.snapshot(&known).bid_count, 2);
    }

    #[test]
    fn watchers_get_the_current_state_then_every_change() {
        let copy = Arc::new(ReadCopy::new(RULES));
        let id = AuctionId::parse("default").unwrap();
        let (first, watch) = copy.watch(&id);
        let mut updates = watch.updates;
        assert!(first.highest.is_none());
        copy.update(share(0, &[10]));
        copy.update(share(0, &[10, 30]));
        assert_eq!(
            updates.try_recv().unwrap().highest.unwrap().bid.price.get(),
            10
        );
        assert_eq!(
            updates.try_recv().unwrap().highest.unwrap().bid.price.get(),
            30
        );
    }
}
