//! Live updates: each Server-Sent Events connection follows one auction through its own
//! `WatchAuction` stream from the bid service.
//!
//! When that stream ends or fails (the bid service restarted, the network dropped), the
//! connection stays open, says `reconnecting`, and subscribes again with capped exponential
//! backoff; the first state after resubscribing brings the page up to date. If the SSE connection
//! itself drops, the browser's `EventSource` reconnects on its own (the `retry` hint) and a new
//! subscription starts. On shutdown every stream ends, so that the server can stop.

use auction_process::Backoff;
use std::convert::Infallible;
use std::time::Duration;

use auction_proto::v1::{ListRecentBidsRequest, WatchAuctionRequest};
use auction_schemas::AuctionId;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::App;
use crate::metrics as m;
use crate::pages::{AuctionView, BidView, error_page, parse_auction_id};

/// What an `auction` event carries: the auction and its recent bids, newest first.
#[derive(Debug, Serialize)]
struct LiveAuction {
    #[serde(flatten)]
    auction: AuctionView,
    /// Absent when the bid service could not list them; the page keeps what it shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    recent: Option<Vec<BidView>>,
}

/// `GET /auctions/{id}/events`: the auction's state now and after every change, as SSE.
pub(crate) async fn events(State(app): State<App>, Path(raw_id): Path<String>) -> Response {
    let Some(id) = parse_auction_id(&raw_id) else {
        return error_page(
            StatusCode::NOT_FOUND,
            "No such auction",
            "An auction id is 1 to 64 letters, digits, '.', '_' or '-'.",
        );
    };
    let Ok(permit) = app.live_streams().try_acquire_owned() else {
        // The page still works without live updates; the browser tries again later.
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many live pages",
            "Live updates are busy right now; reload the page to see the latest bids.",
        );
    };
    let (sender, receiver) = mpsc::channel(16);
    tokio::spawn(follow(app, id, sender, permit));
    Sse::new(ReceiverStream::new(receiver))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

type Sender = mpsc::Sender<Result<Event, Infallible>>;

/// Sends `event`; false when the browser has gone.
async fn send(sender: &Sender, event: Event) -> bool {
    sender.send(Ok(event)).await.is_ok()
}

fn status(text: &'static str) -> Event {
    Event::default().event("status").data(text)
}

/// Bridges the bid service's watch stream into `sender` until the browser leaves or the gateway
/// shuts down.
async fn follow(app: App, id: AuctionId, sender: Sender, _permit: OwnedSemaphorePermit) {
    metrics::gauge!(m::LIVE_STREAMS).increment(1);
    let shutdown = app.shutdown().clone();
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = sender.closed() => {}
        () = resubscribe_forever(&app, &id, &sender) => {}
    }
    metrics::gauge!(m::LIVE_STREAMS).decrement(1);
}

async fn resubscribe_forever(app: &App, id: &AuctionId, sender: &Sender) {
    let first = Event::default()
        .retry(Duration::from_secs(2))
        .comment("live updates of one auction");
    if !send(sender, first).await {
        return;
    }
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
                if !send(sender, status("live")).await {
                    return;
                }
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(update)) => {
                            backoff.reset();
                            let Some(state) = update.auction else {
                                continue;
                            };
                            let recent = recent_bids(app, id).await;
                            let live = LiveAuction {
                                auction: AuctionView::from_state(&state),
                                recent,
                            };
                            let Ok(event) = Event::default().event("auction").json_data(&live)
                            else {
                                continue;
                            };
                            if !send(sender, event).await {
                                return;
                            }
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
        if !send(sender, status("reconnecting")).await {
            return;
        }
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
