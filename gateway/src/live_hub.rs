//! One upstream `WatchAuction` per auction, shared by all of that auction's live pages.
//!
//! The first SSE connection to an auction starts its follower: a task that subscribes to the bid
//! service, turns each update into the `auction` event's JSON once (with the recent bids, asked
//! once per update), and publishes it on a `watch` channel. Every connection to the auction reads
//! that channel, so a thousand viewers cost the bid service one stream and one
//! `ListRecentBids` per change, and a slow connection skips to the latest state instead of
//! queueing. When the last connection leaves, the follower ends and the auction is forgotten:
//! following auctions that do not exist leaves nothing behind.
//!
//! When the upstream stream ends or fails (the bid service restarted, the network dropped), the
//! follower says `reconnecting` and subscribes again with capped exponential backoff; the first
//! state after resubscribing brings every page up to date.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use auction_process::Backoff;
use auction_proto::v1::{ListRecentBidsRequest, WatchAuctionRequest};
use auction_schemas::AuctionId;
use serde::Serialize;
use tokio::sync::watch;

use crate::App;
use crate::metrics as m;
use crate::pages::{AuctionView, BidView};

/// Where the follower of an auction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Upstream {
    /// Subscribing for the first time.
    #[default]
    Connecting,
    /// Subscribed; updates flow.
    Live,
    /// The subscription was lost; subscribing again.
    Reconnecting,
}

impl Upstream {
    /// The `status` event's text, if this state is announced.
    pub(crate) fn announced(self) -> Option<&'static str> {
        match self {
            Self::Connecting => None,
            Self::Live => Some("live"),
            Self::Reconnecting => Some("reconnecting"),
        }
    }
}

/// What every connection to an auction shows: the follower's state and the latest `auction`
/// event's JSON (computed once, shared).
#[derive(Debug, Clone, Default)]
pub(crate) struct Published {
    pub upstream: Upstream,
    pub auction: Option<Arc<str>>,
}

/// What an `auction` event carries: the auction and its recent bids, newest first.
#[derive(Debug, Serialize)]
struct LiveAuction {
    #[serde(flatten)]
    auction: AuctionView,
    /// Absent when the bid service could not list them; the page keeps what it shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    recent: Option<Vec<BidView>>,
}

type Publisher = Arc<watch::Sender<Published>>;

/// The auctions followed now, each with its publisher.
#[derive(Debug, Default)]
pub(crate) struct LiveHub {
    followed: Mutex<HashMap<AuctionId, Publisher>>,
}

impl LiveHub {
    fn followed(&self) -> MutexGuard<'_, HashMap<AuctionId, Publisher>> {
        self.followed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A subscription to `id`'s updates, starting its follower if nobody follows it yet.
    pub(crate) fn subscribe(app: &App, id: &AuctionId) -> watch::Receiver<Published> {
        let hub = app.live_hub();
        let mut followed = hub.followed();
        if let Some(publisher) = followed.get(id) {
            // A follower in the map is running: it leaves the map, under this lock, only when
            // it has no subscribers.
            return publisher.subscribe();
        }
        let (publisher, receiver) = watch::channel(Published::default());
        let publisher = Arc::new(publisher);
        followed.insert(id.clone(), Arc::clone(&publisher));
        metrics::gauge!(m::LIVE_AUCTIONS).set(followed.len() as f64);
        tokio::spawn(follow(app.clone(), id.clone(), publisher));
        receiver
    }

    /// Removes `id` if nobody subscribes to it any more; false if somebody came meanwhile.
    fn forget_if_unwatched(&self, id: &AuctionId, publisher: &Publisher) -> bool {
        let mut followed = self.followed();
        if publisher.receiver_count() > 0 {
            return false;
        }
        if followed
            .get(id)
            .is_some_and(|current| Arc::ptr_eq(current, publisher))
        {
            followed.remove(id);
        }
        metrics::gauge!(m::LIVE_AUCTIONS).set(followed.len() as f64);
        true
    }

    /// How many auctions are followed now.
    pub(crate) fn followed_count(&self) -> usize {
        self.followed().len()
    }
}

/// Follows `id` upstream until its last subscriber leaves or the gateway shuts down.
async fn follow(app: App, id: AuctionId, publisher: Publisher) {
    let shutdown = app.shutdown().clone();
    let upstream = resubscribe_forever(&app, &id, &publisher);
    tokio::pin!(upstream);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = publisher.closed() => {
                if app.live_hub().forget_if_unwatched(&id, &publisher) {
                    return;
                }
            }
            () = &mut upstream => break,
        }
    }
    // Shutting down: the connections end on the same token; forget the auction either way.
    let _ = publisher.send_replace(Published::default());
    app.live_hub().followed().remove(&id);
}

async fn resubscribe_forever(app: &App, id: &AuctionId, publisher: &Publisher) {
    let mut backoff = Backoff::new(
        Duration::from_millis(100),
        app.settings().resubscribe_max_backoff,
    );
    loop {
        let mut client = app.client();
        match client
            .watch_auction(WatchAuctionRequest {
                auction_id: id.to_string(),
            })
            .await
        {
            Ok(response) => {
                publisher.send_modify(|published| published.upstream = Upstream::Live);
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(update)) => {
                            backoff.reset();
                            let Some(state) = update.auction else {
                                continue;
                            };
                            let live = LiveAuction {
                                auction: AuctionView::from_state(&state),
                                recent: recent_bids(app, id).await,
                            };
                            let Ok(json) = serde_json::to_string(&live) else {
                                continue;
                            };
                            publisher.send_modify(|published| {
                                published.upstream = Upstream::Live;
                                published.auction = Some(json.into());
                            });
                        }
                        Ok(None) => break,
                        Err(status) => {
                            tracing::debug!(code = ?status.code(), "the watch stream failed");
                            break;
                        }
                    }
                }
            }
            Err(status) => {
                tracing::debug!(code = ?status.code(), "cannot watch the auction");
            }
        }
        metrics::counter!(m::LIVE_RESUBSCRIBES).increment(1);
        publisher.send_modify(|published| published.upstream = Upstream::Reconnecting);
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// The auction's recent bids; `None` when the bid service cannot say (the next update retries).
async fn recent_bids(app: &App, id: &AuctionId) -> Option<Vec<BidView>> {
    let mut client = app.client();
    let request = app.with_timeout(ListRecentBidsRequest {
        auction_id: id.to_string(),
        limit: app.settings().recent_bids,
    });
    match client.list_recent_bids(request).await {
        Ok(response) => Some(
            response
                .into_inner()
                .bids
                .iter()
                .map(BidView::from)
                .collect(),
        ),
        Err(_) => None,
    }
}
