//! Per-client limits: how many live streams one client holds at once, how fast it opens them,
//! and how fast it posts forms (bids and new auctions). A client beyond a limit gets 429 with a
//! sentence and `Retry-After`; everyone else is unaffected.
//!
//! A client is the peer's IP address, or, when the peer is one of the configured trusted
//! proxies, the nearest address in `X-Forwarded-For` that is not a trusted proxy (so that a
//! reverse proxy in front of the gateway does not make all its users one client). Rates are
//! token buckets per client (the `governor` crate); clients not seen for a while are forgotten,
//! so the limiter's memory follows the active clients, not every address ever seen.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::RETRY_AFTER;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::App;
use crate::config::Settings;
use crate::metrics as m;
use crate::pages::error_page;

/// The client a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Client(pub IpAddr);

impl FromRequestParts<App> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(Self(client_address(
            peer,
            &parts.headers,
            &app.settings().trusted_proxies,
        )))
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy, whose
/// `X-Forwarded-For` then names the client (read from the right, skipping trusted proxies).
/// Without a peer address (the router driven directly, as in tests) every request is one client.
fn client_address(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer = peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(address) if trusted.contains(&address) => continue,
            Ok(address) => return address,
            // A hop that is not an address was written by someone the proxies do not vouch for.
            Err(_) => return peer,
        }
    }
    peer
}

/// Why a client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// It already holds as many live streams as one client may.
    TooManyStreams,
    /// It opens streams or posts forms faster than its rate.
    TooFast,
}

/// The answer to a client that posts forms faster than its rate.
pub(crate) fn too_many_posts(what_happened: &str) -> Response {
    metrics::counter!(m::POSTS_RATE_LIMITED).increment(1);
    let mut page = error_page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many forms at once",
        &format!(
            "Forms were sent too quickly from your address, so {what_happened}. Wait a moment \
             and send it again."
        ),
    );
    page.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    page
}

/// The limits, shared by every request.
#[derive(Debug)]
pub(crate) struct ClientLimits {
    streams: Mutex<HashMap<IpAddr, usize>>,
    max_streams_per_client: usize,
    stream_opening: DefaultKeyedRateLimiter<IpAddr>,
    posts: DefaultKeyedRateLimiter<IpAddr>,
}

impl ClientLimits {
    /// The limits `settings` configure (each rate at least 1 per second).
    pub(crate) fn new(settings: &Settings) -> Self {
        let per_second =
            |rate: u32| Quota::per_second(NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN));
        Self {
            streams: Mutex::new(HashMap::new()),
            max_streams_per_client: settings.max_live_streams_per_client,
            stream_opening: RateLimiter::keyed(per_second(settings.client_streams_per_sec)),
            posts: RateLimiter::keyed(per_second(settings.client_posts_per_sec)),
        }
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A live-stream slot for `client`, held until the returned value is dropped.
    pub(crate) fn open_stream(self: &Arc<Self>, client: Client) -> Result<StreamSlot, Refusal> {
        let mut streams = self.streams();
        let open = streams.get(&client.0).copied().unwrap_or(0);
        if open >= self.max_streams_per_client {
            return Err(Refusal::TooManyStreams);
        }
        if self.stream_opening.check_key(&client.0).is_err() {
            return Err(Refusal::TooFast);
        }
        streams.insert(client.0, open + 1);
        Ok(StreamSlot {
            limits: Arc::clone(self),
            client: client.0,
        })
    }

    /// Whether `client` may post a form now.
    pub(crate) fn allow_post(&self, client: Client) -> bool {
        self.posts.check_key(&client.0).is_ok()
    }

    /// Forgets clients whose buckets are full again, so that memory follows the active clients.
    pub(crate) fn forget_idle_clients(&self) {
        self.stream_opening.retain_recent();
        self.posts.retain_recent();
        self.stream_opening.shrink_to_fit();
        self.posts.shrink_to_fit();
        self.streams().shrink_to_fit();
    }

    /// Clients remembered by the rate limiters, and clients holding streams.
    #[cfg(test)]
    fn remembered(&self) -> (usize, usize) {
        (
            self.stream_opening.len() + self.posts.len(),
            self.streams().len(),
        )
    }
}

/// One client's live stream; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    limits: Arc<ClientLimits>,
    client: IpAddr,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = self.limits.streams();
        if let Some(open) = streams.get_mut(&self.client) {
            *open -= 1;
            if *open == 0 {
                streams.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_str(value).expect("header"),
        );
        headers
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxy = ip("10.0.0.1");
        let headers = forwarded("203.0.113.9, 198.51.100.7");
        // Not from a trusted proxy: anyone can write the header, so it is ignored.
        assert_eq!(
            client_address(Some(ip("192.0.2.1")), &headers, &[proxy]),
            ip("192.0.2.1")
        );
        // From the proxy: its nearest hop is the client; hops further left are the client's
        // own claims.
        assert_eq!(
            client_address(Some(proxy), &headers, &[proxy]),
            ip("198.51.100.7")
        );
        // A chain of trusted proxies is skipped.
        let chained = forwarded("198.51.100.7, 10.0.0.2");
        assert_eq!(
            client_address(Some(proxy), &chained, &[proxy, ip("10.0.0.2")]),
            ip("198.51.100.7")
        );
        // Garbage or no header: the proxy itself.
        assert_eq!(
            client_address(Some(proxy), &forwarded("not an address"), &[proxy]),
            proxy
        );
        assert_eq!(
            client_address(Some(proxy), &HeaderMap::new(), &[proxy]),
            proxy
        );
    }

    #[test]
    fn stream_slots_are_counted_per_client_and_freed_on_drop() {
        let mut settings = Settings::new("http://127.0.0.1:1");
        settings.max_live_streams_per_client = 2;
        settings.client_streams_per_sec = 1_000;
        let limits = Arc::new(ClientLimits::new(&settings));
        let one = Client(ip("192.0.2.1"));
        let other = Client(ip("192.0.2.2"));
        let first = limits.open_stream(one).expect("first");
        let _second = limits.open_stream(one).expect("second");
        assert_eq!(limits.open_stream(one).err(), Some(Refusal::TooManyStreams));
        let _elsewhere = limits
            .open_stream(other)
            .expect("another client is not affected");
        drop(first);
        let _third = limits.open_stream(one).expect("a freed slot is reused");
    }

    #[test]
    fn rates_refuse_bursts_and_idle_clients_are_forgotten() {
        let mut settings = Settings::new("http://127.0.0.1:1");
        settings.client_posts_per_sec = 3;
        let limits = ClientLimits::new(&settings);
        let client = Client(ip("192.0.2.1"));
        let allowed = (0..10).filter(|_| limits.allow_post(client)).count();
        assert_eq!(allowed, 3, "a burst is cut at the rate");
        for n in 0..1_000u32 {
            limits.allow_post(Client(IpAddr::from(n.to_be_bytes())));
        }
        assert!(limits.remembered().0 >= 1_000);
        // Every bucket is full again after a second (3 per second, 3 at once); wait twice that.
        std::thread::sleep(std::time::Duration::from_secs(2));
        limits.forget_idle_clients();
        assert_eq!(limits.remembered(), (0, 0), "idle clients are forgotten");
    }
}
