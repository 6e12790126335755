//! The auction book: per auction, the highest bid, the recent bids and the bid count, as implied
//! by the bid log.
//!
//! Two paths touch it:
//! - the log tailer [`AuctionBook::apply`]s every record in log order; this alone decides the
//!   highest bid, so every replica that reads the same log computes the same winner (a record
//!   becomes the highest only with a strictly greater price, so on equal prices the earlier one
//!   in the log wins);
//! - `PlaceBid` [`AuctionBook::reserve`]s a bid before producing it. Under the auction's lock it
//!   checks the price against the highest bid *including bids of this replica still on their way to
//!   the log*, and runs the producer's enqueue inside the lock, so bids of one auction are
//!   validated one after another and reach the partition in the order they were validated, while
//!   several of them can await their acknowledgement at once.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use auction_schemas::{AuctionId, Bid, BidId};
use tokio::sync::broadcast;

/// How many updates a slow watcher may fall behind before it skips to the current state.
const WATCH_BUFFER: usize = 256;

/// A bid as it is in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoggedBid {
    /// The bid.
    pub bid: Bid,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// The state of one auction at one moment.
#[derive(Debug, Clone)]
pub(crate) struct AuctionSnapshot {
    /// The auction.
    pub auction_id: AuctionId,
    /// The highest bid in the log, if any.
    pub highest: Option<Arc<LoggedBid>>,
    /// The lowest price a new bid must offer.
    pub minimum_next_bid: i64,
    /// Accepted bids in the log.
    pub bid_count: u64,
}

/// The bid rules that depend on configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BidRules {
    /// How much a bid must add to the current highest.
    pub min_increment: i32,
    /// The lowest first bid.
    pub starting_price: i32,
}

/// A bid does not beat the current highest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TooLow {
    /// The highest price, counting bids of this replica not yet in the log.
    pub current_highest: Option<i64>,
    /// The lowest acceptable price.
    pub minimum_next_bid: i64,
}

/// Why [`AuctionBook::reserve`] did not reserve.
#[derive(Debug)]
pub(crate) enum ReserveError<E> {
    /// The price is too low.
    TooLow(TooLow),
    /// The enqueue step failed; nothing was reserved.
    Enqueue(E),
}

#[derive(Debug)]
struct AuctionData {
    highest: Option<Arc<LoggedBid>>,
    recent: VecDeque<Arc<LoggedBid>>,
    bid_count: u64,
    /// Bids of this replica reserved and not yet applied from the log: (id, price).
    pending: Vec<(BidId, i32)>,
    last_activity: u64,
    watchers: Option<broadcast::Sender<AuctionSnapshot>>,
}

#[derive(Debug)]
struct Auction {
    id: AuctionId,
    data: Mutex<AuctionData>,
}

impl Auction {
    fn lock(&self) -> MutexGuard<'_, AuctionData> {
        self.data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Remembers recent bids by id (bounded), so that duplicates in the log are applied once and a
/// retried `request_id` finds the bid it already placed, even after a restart.
#[derive(Debug)]
struct BidIndex {
    by_id: HashMap<BidId, Arc<LoggedBid>>,
    order: VecDeque<BidId>,
    capacity: usize,
}

impl BidIndex {
    fn insert(&mut self, bid: Arc<LoggedBid>) {
        if self
            .by_id
            .insert(bid.bid.bid_id, Arc::clone(&bid))
            .is_none()
        {
            self.order.push_back(bid.bid.bid_id);
        }
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.by_id.remove(&oldest);
            }
        }
    }
}

/// Every auction this replica knows of.
#[derive(Debug)]
pub(crate) struct AuctionBook {
    auctions: RwLock<HashMap<AuctionId, Arc<Auction>>>,
    index: Mutex<BidIndex>,
    rules: BidRules,
    recent_limit: usize,
    activity: AtomicU64,
}

impl AuctionBook {
    /// An empty book.
    pub(crate) fn new(rules: BidRules, recent_limit: usize, remembered_bids: usize) -> Self {
        Self {
            auctions: RwLock::new(HashMap::new()),
            index: Mutex::new(BidIndex {
                by_id: HashMap::new(),
                order: VecDeque::new(),
                capacity: remembered_bids.max(1),
            }),
            rules,
            recent_limit: recent_limit.max(1),
            activity: AtomicU64::new(0),
        }
    }

    fn auction(&self, id: &AuctionId) -> Option<Arc<Auction>> {
        self.auctions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    fn auction_or_new(&self, id: &AuctionId) -> Arc<Auction> {
        if let Some(found) = self.auction(id) {
            return found;
        }
        let mut auctions = self
            .auctions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(auctions.entry(id.clone()).or_insert_with(|| {
            Arc::new(Auction {
                id: id.clone(),
                data: Mutex::new(AuctionData {
                    highest: None,
                    recent: VecDeque::new(),
                    bid_count: 0,
                    pending: Vec::new(),
                    last_activity: 0,
                    watchers: None,
                }),
            })
        }))
    }

    fn index(&self) -> MutexGuard<'_, BidIndex> {
        self.index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The bid with this id, if it is among the remembered ones.
    pub(crate) fn find_bid(&self, bid_id: &BidId) -> Option<Arc<LoggedBid>> {
        self.index().by_id.get(bid_id).cloned()
    }

    fn minimum_next(&self, highest_price: Option<i64>) -> i64 {
        match highest_price {
            Some(price) => price + i64::from(self.rules.min_increment),
            None => i64::from(self.rules.starting_price),
        }
    }

    fn snapshot_of(&self, id: &AuctionId, data: &AuctionData) -> AuctionSnapshot {
        AuctionSnapshot {
            auction_id: id.clone(),
            highest: data.highest.clone(),
            minimum_next_bid: self
                .minimum_next(data.highest.as_ref().map(|h| i64::from(h.bid.price.get()))),
            bid_count: data.bid_count,
        }
    }

    /// Checks `bid` against the auction and, if it is high enough, runs `enqueue` while still
    /// holding the auction's lock and marks the bid pending. Call [`Self::release`] if the bid then
    /// fails to reach the log.
    pub(crate) fn reserve<T, E>(
        &self,
        bid: &Bid,
        enqueue: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, ReserveError<E>> {
        let auction = self.auction_or_new(&bid.auction_id);
        let mut data = auction.lock();
        let applied = data.highest.as_ref().map(|h| i64::from(h.bid.price.get()));
        let pending = data
            .pending
            .iter()
            .map(|(_, price)| i64::from(*price))
            .max();
        let current_highest = applied.max(pending);
        let minimum_next_bid = self.minimum_next(current_highest);
        if i64::from(bid.price.get()) < minimum_next_bid {
            return Err(ReserveError::TooLow(TooLow {
                current_highest,
                minimum_next_bid,
            }));
        }
        let sent = enqueue().map_err(ReserveError::Enqueue)?;
        data.pending.push((bid.bid_id, bid.price.get()));
        Ok(sent)
    }

    /// Forgets a reserved bid that did not reach the log.
    pub(crate) fn release(&self, bid: &Bid) {
        if let Some(auction) = self.auction(&bid.auction_id) {
            auction.lock().pending.retain(|(id, _)| *id != bid.bid_id);
        }
    }

    /// Applies one record of the log. Returns false when the bid was already applied (the same
    /// `bid_id` twice in the log counts once).
    pub(crate) fn apply(&self, logged: LoggedBid) -> bool {
        let logged = Arc::new(logged);
        {
            let mut index = self.index();
            if index.by_id.contains_key(&logged.bid.bid_id) {
                return false;
            }
            index.insert(Arc::clone(&logged));
        }
        let auction = self.auction_or_new(&logged.bid.auction_id);
        let mut data = auction.lock();
        data.bid_count += 1;
        data.last_activity = self.activity.fetch_add(1, Ordering::Relaxed) + 1;
        data.pending.retain(|(id, _)| *id != logged.bid.bid_id);
        let beats = data
            .highest
            .as_ref()
            .is_none_or(|highest| logged.bid.price > highest.bid.price);
        if beats {
            data.highest = Some(Arc::clone(&logged));
        }
        data.recent.push_front(logged);
        data.recent.truncate(self.recent_limit);
        if let Some(watchers) = &data.watchers {
            if watchers.receiver_count() == 0 {
                data.watchers = None;
            } else {
                let _ = watchers.send(self.snapshot_of(&auction.id, &data));
            }
        }
        true
    }

    /// The auction's current state (an auction without bids has an empty one).
    pub(crate) fn snapshot(&self, id: &AuctionId) -> AuctionSnapshot {
        match self.auction(id) {
            Some(auction) => self.snapshot_of(id, &auction.lock()),
            None => AuctionSnapshot {
                auction_id: id.clone(),
                highest: None,
                minimum_next_bid: self.minimum_next(None),
                bid_count: 0,
            },
        }
    }

    /// The current state and a stream of every later state.
    pub(crate) fn watch(
        &self,
        id: &AuctionId,
    ) -> (AuctionSnapshot, broadcast::Receiver<AuctionSnapshot>) {
        let auction = self.auction_or_new(id);
        let mut data = auction.lock();
        let receiver = match &data.watchers {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = broadcast::channel(WATCH_BUFFER);
                data.watchers = Some(sender);
                receiver
            }
        };
        (self.snapshot_of(id, &data), receiver)
    }

    /// Up to `limit` most recent bids, newest first.
    pub(crate) fn recent(&self, id: &AuctionId, limit: usize) -> Vec<Arc<LoggedBid>> {
        self.auction(id)
            .map(|auction| auction.lock().recent.iter().take(limit).cloned().collect())
            .unwrap_or_default()
    }

    /// Up to `limit` auctions with bids, the most recently active first.
    pub(crate) fn auctions(&self, limit: usize) -> Vec<AuctionSnapshot> {
        let auctions: Vec<Arc<Auction>> = self
            .auctions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let mut active: Vec<(u64, AuctionSnapshot)> = auctions
            .iter()
            .filter_map(|auction| {
                let data = auction.lock();
                (data.bid_count > 0)
                    .then(|| (data.last_activity, self.snapshot_of(&auction.id, &data)))
            })
            .collect();
        active.sort_by_key(|(activity, _)| std::cmp::Reverse(*activity));
        active
            .into_iter()
            .take(limit)
            .map(|(_, snapshot)| snapshot)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auction_schemas::BidInput;

    fn book() -> AuctionBook {
        AuctionBook::new(
            BidRules {
                min_increment: 5,
                starting_price: 10,
            },
            3,
            100,
        )
    }

    fn bid(auction: &str, name: &str, price: i64) -> Bid {
        Bid::new(
            &BidInput {
                auction_id: Some(auction),
                name,
                price,
            },
            BidId::new_random(),
        )
        .unwrap()
    }

    fn logged(bid: Bid, offset: i64) -> LoggedBid {
        LoggedBid {
            bid,
            partition: 0,
            offset,
        }
    }

    fn ok<T>() -> Result<(), T> {
        Ok(())
    }

    #[test]
    fn first_bid_must_reach_the_starting_price_and_later_ones_the_increment() {
        let book = book();
        let low = bid("a", "x", 9);
        match book.reserve(&low, ok::<()>) {
            Err(ReserveError::TooLow(too_low)) => assert_eq!(
                too_low,
                TooLow {
                    current_highest: None,
                    minimum_next_bid: 10
                }
            ),
            other => panic!("{other:?}"),
        }
        let first = bid("a", "x", 10);
        book.reserve(&first, ok::<()>).unwrap();
        // The pending bid already counts for the next one, before it is in the log.
        match book.reserve(&bid("a", "y", 14), ok::<()>) {
            Err(ReserveError::TooLow(too_low)) => assert_eq!(too_low.minimum_next_bid, 15),
            other => panic!("{other:?}"),
        }
        book.reserve(&bid("a", "y", 15), ok::<()>).unwrap();
        // Other auctions are independent.
        book.reserve(&bid("b", "z", 10), ok::<()>).unwrap();
    }

    #[test]
    fn a_failed_enqueue_or_a_released_bid_does_not_raise_the_bar() {
        let book = book();
        let failed = bid("a", "x", 50);
        assert!(matches!(
            book.reserve(&failed, || Err::<(), _>("queue full")),
            Err(ReserveError::Enqueue(_))
        ));
        book.reserve(&bid("a", "y", 10), ok::<()>).unwrap();
        let lost = bid("a", "x", 50);
        book.reserve(&lost, ok::<()>).unwrap();
        book.release(&lost);
        book.reserve(&bid("a", "z", 15), ok::<()>).unwrap();
    }

    #[test]
    fn the_log_decides_the_winner_and_equal_prices_keep_the_earlier_bid() {
        let book = book();
        let first = bid("a", "first", 20);
        let second = bid("a", "second", 20);
        assert!(book.apply(logged(first.clone(), 0)));
        assert!(book.apply(logged(second, 1)));
        let snapshot = book.snapshot(&first.auction_id);
        assert_eq!(snapshot.highest.unwrap().bid.name.as_str(), "first");
        assert_eq!(snapshot.bid_count, 2);
        assert_eq!(snapshot.minimum_next_bid, 25);
        // A duplicate record of the same bid counts once.
        assert!(!book.apply(logged(first.clone(), 2)));
        assert_eq!(book.snapshot(&first.auction_id).bid_count, 2);
        assert!(book.find_bid(&first.bid_id).is_some());
    }

    #[test]
    fn recent_bids_are_newest_first_and_bounded() {
        let book = book();
        for (offset, price) in [10, 15, 20, 25].into_iter().enumerate() {
            book.apply(logged(bid("a", "x", price), offset as i64));
        }
        let id = AuctionId::parse("a").unwrap();
        let prices: Vec<i32> = book
            .recent(&id, 10)
            .iter()
            .map(|b| b.bid.price.get())
            .collect();
        assert_eq!(prices, [25, 20, 15]);
        book.apply(logged(bid("b", "x", 10), 9));
        let order: Vec<String> = book
            .auctions(10)
            .iter()
            .map(|s| s.auction_id.to_string())
            .collect();
        assert_eq!(order, ["b", "a"]);
    }

    #[test]
    fn watchers_get_the_current_state_then_every_change() {
        let book = book();
        let id = AuctionId::parse("a").unwrap();
        let (first, mut updates) = book.watch(&id);
        assert!(first.highest.is_none());
        book.apply(logged(bid("a", "x", 10), 0));
        book.apply(logged(bid("a", "y", 30), 1));
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
