//! Limits on what clients can make one replica hold, each answered RESOURCE_EXHAUSTED beyond it
//! (the statuses are made in `api.rs`):
//! - [`BidsInFlight`]: `PlaceBid` calls whose work is running. A call's slot is held by the task
//!   that does the work, until that task ends, not until the client's deadline: a client that
//!   gives up early does not free room for more work while its bid is still being placed. The
//!   live tasks are counted apart from the slots, so the gauges show what really runs.
//! - [`ImplicitAuctions`]: auctions opened by a first bid (nobody created them). The cap counts
//!   the auctions without a definition in the partitions this replica owns now (restored ones
//!   included, and those whose first bid is being written), so it moves with the partitions: with
//!   N replicas the whole system holds at most about N times the cap. The rate counts the
//!   auctions this replica opens per second, over all its partitions.
//! - [`WatchStreams`]: open `WatchAuction` streams, in total and per client address (the peer
//!   IP). Listed addresses (such as a gateway's) count only in the total. A stream's slot goes
//!   with the stream, when the client leaves or the service stops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics as m;

/// The `PlaceBid` calls whose work is running, at most `limit`.
#[derive(Debug)]
pub(crate) struct BidsInFlight {
    slots: Arc<Semaphore>,
    live: AtomicUsize,
    peak: AtomicUsize,
}

/// Room for one call's work; held by the task that does it.
#[derive(Debug)]
pub(crate) struct BidSlot(#[allow(dead_code)] OwnedSemaphorePermit);

/// Counts one running task while it lives.
#[derive(Debug)]
pub(crate) struct LiveBid(Arc<BidsInFlight>);

impl BidsInFlight {
    /// Room for `limit` calls' work at once.
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(limit)),
            live: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        })
    }

    /// A slot for one more call's work, or `None` when all are taken.
    pub(crate) fn try_admit(&self) -> Option<BidSlot> {
        Arc::clone(&self.slots)
            .try_acquire_owned()
            .ok()
            .map(BidSlot)
    }

    /// Counts the calling task as live until the guard is dropped (at the end of the task).
    pub(crate) fn live(self: &Arc<Self>) -> LiveBid {
        let live = self.live.fetch_add(1, Ordering::Relaxed) + 1;
        let peak = self.peak.fetch_max(live, Ordering::Relaxed).max(live);
        metrics::gauge!(m::BIDS_IN_FLIGHT).set(live as f64);
        metrics::gauge!(m::BIDS_IN_FLIGHT_PEAK).set(peak as f64);
        LiveBid(Arc::clone(self))
    }
}

impl Drop for LiveBid {
    fn drop(&mut self) {
        let live = self
            .0
            .live
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        metrics::gauge!(m::BIDS_IN_FLIGHT).set(live as f64);
    }
}

/// Why a bid could not open a new auction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImplicitRefusal {
    /// The partitions this replica owns hold the most auctions nobody created.
    Cap(usize),
    /// This replica opened as many auctions as it may this second.
    Rate(u32),
}

/// The cap and the rate of auctions opened by a first bid, shared by a replica's owners.
#[derive(Debug)]
pub(crate) struct ImplicitAuctions {
    cap: usize,
    per_second: NonZeroU32,
    held: AtomicUsize,
    rate: DefaultDirectRateLimiter,
}

impl ImplicitAuctions {
    /// At most `cap` held at once, at most `per_second` opened per second (in bursts of as
    /// many).
    pub(crate) fn new(cap: usize, per_second: NonZeroU32) -> Self {
        Self {
            cap,
            per_second,
            held: AtomicUsize::new(0),
            rate: RateLimiter::direct(Quota::per_second(per_second)),
        }
    }

    /// Takes room for one new auction, or says why there is none (then nothing is taken).
    pub(crate) fn try_open(&self) -> Result<(), ImplicitRefusal> {
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                (held < self.cap).then_some(held + 1)
            })
            .map_err(|_| ImplicitRefusal::Cap(self.cap))?;
        if self.rate.check().is_err() {
            self.release(1);
            return Err(ImplicitRefusal::Rate(self.per_second.get()));
        }
        self.publish();
        Ok(())
    }

    /// Counts `count` auctions that are held without having been opened here (restored, or
    /// written by another producer).
    pub(crate) fn add(&self, count: usize) {
        self.held.fetch_add(count, Ordering::Relaxed);
        self.publish();
    }

    /// `count` held auctions are gone from this replica (their partition moved, or the first
    /// bid was never written).
    pub(crate) fn release(&self, count: usize) {
        let _ = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                Some(held.saturating_sub(count))
            });
        self.publish();
    }

    fn publish(&self) {
        metrics::gauge!(m::IMPLICIT_AUCTIONS).set(self.held.load(Ordering::Relaxed) as f64);
    }
}

/// Why a `WatchAuction` stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamRefusal {
    /// The replica has the most streams open.
    Total(usize),
    /// This client has the most streams open.
    PerClient(usize),
}

/// The open `WatchAuction` streams.
#[derive(Debug)]
pub(crate) struct WatchStreams {
    total_cap: usize,
    per_client_cap: usize,
    exempt: Vec<IpAddr>,
    open: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    /// Streams per client address (`None`: a connection without a known peer address).
    by_client: HashMap<Option<IpAddr>, usize>,
}

/// One open stream's slot; released when dropped.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    streams: Arc<WatchStreams>,
    client: Option<IpAddr>,
    counted_per_client: bool,
}

impl WatchStreams {
    /// At most `total_cap` streams, `per_client_cap` per client address except `exempt` ones.
    pub(crate) fn new(total_cap: usize, per_client_cap: usize, exempt: Vec<IpAddr>) -> Arc<Self> {
        Arc::new(Self {
            total_cap,
            per_client_cap,
            exempt,
            open: Mutex::new(Counts::default()),
        })
    }

    /// A slot for one more stream of `client`, or why there is none.
    pub(crate) fn try_open(
        self: &Arc<Self>,
        client: Option<IpAddr>,
    ) -> Result<StreamSlot, StreamRefusal> {
        let counted_per_client = client.is_none_or(|ip| !self.exempt.contains(&ip));
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if open.total >= self.total_cap {
            return Err(StreamRefusal::Total(self.total_cap));
        }
        if counted_per_client {
            let mine = open.by_client.entry(client).or_default();
            if *mine >= self.per_client_cap {
                if *mine == 0 {
                    open.by_client.remove(&client);
                }
                return Err(StreamRefusal::PerClient(self.per_client_cap));
            }
            *mine += 1;
        }
        open.total += 1;
        metrics::gauge!(m::WATCH_STREAMS).set(open.total as f64);
        Ok(StreamSlot {
            streams: Arc::clone(self),
            client,
            counted_per_client,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .streams
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if self.counted_per_client
            && let Some(mine) = open.by_client.get_mut(&self.client)
        {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                open.by_client.remove(&self.client);
            }
        }
        metrics::gauge!(m::WATCH_STREAMS).set(open.total as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_implicit_cap_refuses_beyond_it_and_frees_what_is_released() {
        let limit = ImplicitAuctions::new(2, NonZeroU32::new(1000).unwrap());
        assert_eq!(limit.try_open(), Ok(()));
        assert_eq!(limit.try_open(), Ok(()));
        assert_eq!(limit.try_open(), Err(ImplicitRefusal::Cap(2)));
        limit.release(1);
        assert_eq!(limit.try_open(), Ok(()));
    }

    #[test]
    fn the_implicit_rate_refuses_beyond_its_burst_and_takes_no_room() {
        let limit = ImplicitAuctions::new(100, NonZeroU32::new(3).unwrap());
        let opened = (0..10).filter(|_| limit.try_open().is_ok()).count();
        assert!((3..=4).contains(&opened), "{opened}");
        assert_eq!(limit.held.load(Ordering::Relaxed), opened);
    }

    #[test]
    fn watch_streams_are_bounded_per_client_and_in_total_and_freed_on_drop() {
        let streams = WatchStreams::new(4, 2, vec!["10.0.0.9".parse().unwrap()]);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let gateway: IpAddr = "10.0.0.9".parse().unwrap();
        let first = streams.try_open(Some(a)).unwrap();
        let _second = streams.try_open(Some(a)).unwrap();
        assert_eq!(
            streams.try_open(Some(a)).unwrap_err(),
            StreamRefusal::PerClient(2)
        );
        let _g1 = streams.try_open(Some(gateway)).unwrap();
        let _g2 = streams.try_open(Some(gateway)).unwrap();
        assert_eq!(
            streams.try_open(Some(gateway)).unwrap_err(),
            StreamRefusal::Total(4)
        );
        drop(first);
        let _third = streams.try_open(Some(a)).unwrap();
    }
}
