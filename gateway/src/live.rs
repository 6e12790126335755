//! Live updates: `GET /auctions/{id}/events`, the auction's state now and after every change, as
//! Server-Sent Events.
//!
//! Each connection reads its auction's shared publisher (`live_hub`: one upstream `WatchAuction`
//! per auction) and sends the follower's status (`live`, `reconnecting`) and every new `auction`
//! event. If the SSE connection drops, the browser's `EventSource` reconnects on its own (the
//! `retry` hint). Connections are bounded in total (503) and per client (429, with the opening
//! rate; `limits`). On shutdown every stream ends, so that the server can stop.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::RETRY_AFTER;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::App;
use crate::limits::{Client, Refusal, StreamSlot};
use crate::live_hub::{LiveHub, Published};
use crate::metrics as m;
use crate::pages::{error_page, parse_auction_id};

/// `GET /auctions/{id}/events`: the auction's state now and after every change, as SSE.
pub(crate) async fn events(
    State(app): State<App>,
    client: Client,
    Path(raw_id): Path<String>,
) -> Response {
    let Some(id) = parse_auction_id(&raw_id) else {
        return error_page(
            StatusCode::NOT_FOUND,
            "No such auction",
            "An auction id is 1 to 64 letters, digits, '.', '_' or '-'.",
        );
    };
    let slot = match app.client_limits().open_stream(client) {
        Ok(slot) => slot,
        Err(refusal) => {
            metrics::counter!(m::LIVE_REFUSED, "reason" => refusal_reason(refusal)).increment(1);
            let explanation = match refusal {
                Refusal::TooManyStreams => {
                    "Your address already has as many live pages open as it may; close one to \
                     follow another. The page itself still works: reload it to see the latest bids."
                }
                Refusal::TooFast => {
                    "Live pages were opened too quickly from your address; wait a moment. The \
                     page itself still works: reload it to see the latest bids."
                }
            };
            let mut page = error_page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many live pages",
                explanation,
            );
            page.headers_mut()
                .insert(RETRY_AFTER, axum::http::HeaderValue::from_static("5"));
            return page;
        }
    };
    let Ok(permit) = app.live_streams().try_acquire_owned() else {
        metrics::counter!(m::LIVE_REFUSED, "reason" => "gateway_full").increment(1);
        // The page still works without live updates; the browser tries again later.
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many live pages",
            "Live updates are busy right now; reload the page to see the latest bids.",
        );
    };
    let updates = LiveHub::subscribe(&app, &id);
    let (sender, receiver) = mpsc::channel(4);
    tokio::spawn(relay(app, updates, sender, (permit, slot)));
    Sse::new(ReceiverStream::new(receiver))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn refusal_reason(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::TooManyStreams => "client_streams",
        Refusal::TooFast => "client_rate",
    }
}

type Sender = mpsc::Sender<Result<Event, Infallible>>;

/// Sends `event`; false when the browser has gone.
async fn send(sender: &Sender, event: Event) -> bool {
    sender.send(Ok(event)).await.is_ok()
}

/// Relays the auction's published updates into one SSE connection until the browser leaves or
/// the gateway shuts down; the slots are freed when it returns.
async fn relay(
    app: App,
    mut updates: watch::Receiver<Published>,
    sender: Sender,
    _slots: (OwnedSemaphorePermit, StreamSlot),
) {
    metrics::gauge!(m::LIVE_STREAMS).increment(1);
    let shutdown = app.shutdown().clone();
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = sender.closed() => {}
        () = forward(&mut updates, &sender) => {}
    }
    metrics::gauge!(m::LIVE_STREAMS).decrement(1);
}

async fn forward(updates: &mut watch::Receiver<Published>, sender: &Sender) {
    let first = Event::default()
        .retry(Duration::from_secs(2))
        .comment("live updates of one auction");
    if !send(sender, first).await {
        return;
    }
    let mut shown = Published::default();
    loop {
        let published = updates.borrow_and_update().clone();
        if published.upstream != shown.upstream
            && let Some(text) = published.upstream.announced()
            && !send(sender, Event::default().event("status").data(text)).await
        {
            return;
        }
        let changed = match (&published.auction, &shown.auction) {
            (Some(new), Some(old)) => !std::sync::Arc::ptr_eq(new, old),
            (Some(_), None) => true,
            _ => false,
        };
        if changed
            && let Some(json) = &published.auction
            && !send(sender, Event::default().event("auction").data(&**json)).await
        {
            return;
        }
        shown = published;
        if updates.changed().await.is_err() {
            return;
        }
    }
}
