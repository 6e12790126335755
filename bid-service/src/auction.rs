//! One auction's state and the bid rules that depend on it, as a pure fold of the bid log: every
//! owner, every read copy and every restore computes the same state from the same records.
//!
//! A bid is *valid at its position* when the auction is open at the bid's time and the bid offers
//! at least the minimum next bid of the state before it (the starting price, or the highest plus
//! the increment; an automatic proxy bid needs only the current price, see `lifecycle.rs`); only a
//! valid bid becomes the highest, so on equal prices the earlier one in the log keeps the lead,
//! and a record that another producer wrote below the bar counts as a bid but never leads. Owners
//! check validity before they write a bid, and again when they read it back, before they answer
//! OK. The auction's definition, status and proxy maxima are in [`Lifecycle`].

use std::collections::VecDeque;
use std::sync::Arc;

use auction_schemas::state::{AuctionRecord, RecordedBid};
use auction_schemas::{AuctionId, Bid, BidId, BidTimestamp, BidderName, Price};

use crate::lifecycle::{Lifecycle, lifecycle_from};

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

/// A recent bid as its auction keeps it: the bid without the auction id and partition, which
/// are the auction's own, held in the auction's list itself rather than shared behind a pointer.
/// An auction keeps up to `BID_SERVICE_RECENT_BIDS` of them, so this is most of a replica's
/// memory (the restore benchmark: 100,000 auctions, a million recent bids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecentBid {
    /// The bid's id.
    pub bid_id: BidId,
    /// The bidder.
    pub name: BidderName,
    /// The amount.
    pub price: Price,
    /// When it was placed.
    pub bid_ts: BidTimestamp,
    /// Its offset in the auction's partition.
    pub offset: i64,
}

impl RecentBid {
    fn of(logged: &LoggedBid) -> Self {
        Self {
            bid_id: logged.bid.bid_id,
            name: logged.bid.name.clone(),
            price: logged.bid.price,
            bid_ts: logged.bid.bid_ts,
            offset: logged.offset,
        }
    }

    fn from_recorded(bid: &RecordedBid) -> Option<Self> {
        Some(Self {
            bid_id: BidId::from(bid.bid_id),
            name: BidderName::parse(&bid.name).ok()?,
            price: Price::parse(i64::from(bid.price)).ok()?,
            bid_ts: BidTimestamp::parse(&bid.bid_ts).ok()?,
            offset: bid.offset,
        })
    }

    fn recorded(&self) -> RecordedBid {
        stored_form(
            self.bid_id,
            &self.name,
            self.price,
            self.bid_ts,
            self.offset,
        )
    }

    /// The bid as the log holds it, in `auction` and `partition`.
    pub(crate) fn logged(&self, auction: &AuctionId, partition: i32) -> LoggedBid {
        self.clone().into_logged(auction, partition)
    }

    fn into_logged(self, auction: &AuctionId, partition: i32) -> LoggedBid {
        LoggedBid {
            bid: Bid {
                bid_id: self.bid_id,
                auction_id: auction.clone(),
                name: self.name,
                price: self.price,
                bid_ts: self.bid_ts,
            },
            partition,
            offset: self.offset,
        }
    }
}

/// The bid rules of auctions nobody created, which the service's configuration sets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BidRules {
    /// How much a bid must add to the current highest.
    pub min_increment: i32,
    /// The lowest first bid.
    pub starting_price: i32,
    /// How many recent bids an auction keeps.
    pub recent_limit: usize,
}

/// What applying a record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The record was at or before the offset the state already reflects: nothing changed.
    AlreadyReflected,
    /// Applied; `valid` says whether it counted at its position.
    Bid {
        /// The auction was open at its time and it beat the state before it by the increment
        /// (or met the starting price).
        valid: bool,
    },
}

/// One auction's state, in one partition of the bid topic.
#[derive(Debug, Clone)]
pub(crate) struct AuctionState {
    /// The auction.
    pub id: AuctionId,
    /// The partition whose bids it folds.
    pub partition: i32,
    /// The offset of the last bid applied (-1: none).
    pub offset: i64,
    /// Bids applied.
    pub bid_count: u64,
    /// The highest bid.
    pub highest: Option<Arc<LoggedBid>>,
    /// The most recent bids, newest first.
    pub recent: VecDeque<RecentBid>,
    /// Counts every change (bids and lifecycle).
    pub revision: u64,
    /// Definition, status, end and proxy maxima.
    pub life: Lifecycle,
}

impl AuctionState {
    /// An auction without bids.
    pub(crate) fn new(id: AuctionId, partition: i32) -> Self {
        Self {
            id,
            partition,
            offset: -1,
            bid_count: 0,
            highest: None,
            recent: VecDeque::new(),
            revision: 0,
            life: Lifecycle::default(),
        }
    }

    /// The recent bids as the log holds them, newest first.
    pub(crate) fn recent_bids(&self) -> impl Iterator<Item = LoggedBid> + '_ {
        self.recent
            .iter()
            .map(|bid| bid.logged(&self.id, self.partition))
    }

    /// The highest price.
    pub(crate) fn highest_price(&self) -> Option<i64> {
        self.highest.as_ref().map(|h| i64::from(h.bid.price.get()))
    }

    /// Applies the record `logged` of this auction's partition; `automatic` marks an automatic
    /// proxy bid.
    pub(crate) fn apply(
        &mut self,
        logged: &Arc<LoggedBid>,
        automatic: bool,
        rules: &BidRules,
    ) -> Applied {
        if logged.offset <= self.offset {
            return Applied::AlreadyReflected;
        }
        let valid = self.lifecycle_validity(logged, automatic, rules);
        if valid {
            self.highest = Some(Arc::clone(logged));
            self.after_valid_bid(logged);
        }
        self.revision += 1;
        self.offset = logged.offset;
        self.bid_count += 1;
        let limit = rules.recent_limit.max(1);
        if self.recent.capacity() == 0 {
            // Exactly what the auction will keep: a growing deque would double past it.
            self.recent.reserve_exact(limit);
        }
        self.recent.push_front(RecentBid::of(logged));
        self.recent.truncate(limit);
        Applied::Bid { valid }
    }

    /// The record that stores this state.
    pub(crate) fn to_record(&self) -> AuctionRecord {
        AuctionRecord {
            auction_id: self.id.to_string(),
            partition: self.partition,
            offset: self.offset,
            bid_count: self.bid_count,
            highest: self.highest.as_deref().map(recorded),
            recent: self.recent.iter().map(RecentBid::recorded).collect(),
            revision: self.revision,
            lifecycle: self.lifecycle_record().map(Box::new),
        }
    }

    /// The state a record stores; `None` when the record is not a valid state.
    pub(crate) fn from_record(record: &AuctionRecord) -> Option<Self> {
        let id = AuctionId::parse(&record.auction_id).ok()?;
        let recent: VecDeque<RecentBid> = record
            .recent
            .iter()
            .map(RecentBid::from_recorded)
            .collect::<Option<_>>()?;
        let highest = match &record.highest {
            Some(h) => Some(Arc::new(logged_from(&id, record.partition, h)?)),
            None => None,
        };
        Some(Self {
            life: lifecycle_from(record.lifecycle.as_deref(), &id, record.partition)?,
            id: id.clone(),
            partition: record.partition,
            offset: record.offset,
            bid_count: record.bid_count,
            highest,
            recent,
            revision: record.revision,
        })
    }
}

/// The stored form of a bid.
pub(crate) fn recorded(logged: &LoggedBid) -> RecordedBid {
    let bid = &logged.bid;
    stored_form(bid.bid_id, &bid.name, bid.price, bid.bid_ts, logged.offset)
}

fn stored_form(
    bid_id: BidId,
    name: &BidderName,
    price: Price,
    bid_ts: BidTimestamp,
    offset: i64,
) -> RecordedBid {
    RecordedBid {
        bid_id: bid_id.as_uuid(),
        name: name.to_string(),
        price: price.get(),
        bid_ts: bid_ts.to_rfc3339(),
        offset,
    }
}

/// The bid a stored form describes, in `auction` and `partition`.
pub(crate) fn logged_from(
    auction: &AuctionId,
    partition: i32,
    bid: &RecordedBid,
) -> Option<LoggedBid> {
    Some(RecentBid::from_recorded(bid)?.into_logged(auction, partition))
}

#[cfg(test)]
mod tests {
    use super::*;
    use auction_schemas::BidInput;

    const RULES: BidRules = BidRules {
        min_increment: 5,
        starting_price: 10,
        recent_limit: 3,
    };

    fn logged(name: &str, price: i64, offset: i64) -> Arc<LoggedBid> {
        let bid = Bid::new(
            &BidInput {
                auction_id: Some("a"),
                name,
                price,
            },
            BidId::new_random(),
        )
        .unwrap();
        Arc::new(LoggedBid {
            bid,
            partition: 0,
            offset,
        })
    }

    fn state() -> AuctionState {
        AuctionState::new(AuctionId::parse("a").unwrap(), 0)
    }

    #[test]
    fn validity_needs_the_starting_price_then_the_increment() {
        let mut s = state();
        assert_eq!(
            s.apply(&logged("x", 9, 0), false, &RULES),
            Applied::Bid { valid: false }
        );
        assert_eq!(s.highest_price(), None, "an invalid record never leads");
        assert_eq!(
            s.apply(&logged("x", 10, 1), false, &RULES),
            Applied::Bid { valid: true }
        );
        assert_eq!(
            s.apply(&logged("y", 14, 2), false, &RULES),
            Applied::Bid { valid: false }
        );
        assert_eq!(
            s.apply(&logged("y", 15, 3), false, &RULES),
            Applied::Bid { valid: true }
        );
        assert_eq!(s.highest_price(), Some(15));
        assert_eq!(s.bid_count, 4);
        assert_eq!(s.minimum_next(&RULES), 20);
    }

    #[test]
    fn equal_prices_keep_the_earlier_bid_and_replayed_records_count_once() {
        let mut s = state();
        let first = logged("first", 20, 4);
        s.apply(&first, false, &RULES);
        s.apply(&logged("second", 20, 5), false, &RULES);
        assert_eq!(s.highest.as_ref().unwrap().bid.name.as_str(), "first");
        assert_eq!(s.apply(&first, false, &RULES), Applied::AlreadyReflected);
        assert_eq!(s.bid_count, 2);
    }

    #[test]
    fn the_record_restores_the_same_state() {
        let mut s = state();
        for (offset, price) in [10, 15, 20, 25, 30].into_iter().enumerate() {
            s.apply(&logged("x", price, offset as i64), false, &RULES);
        }
        assert_eq!(s.recent.len(), 3);
        let restored = AuctionState::from_record(&s.to_record()).unwrap();
        assert_eq!(restored.to_record(), s.to_record());
        assert_eq!(restored.highest_price(), Some(30));
    }
}
