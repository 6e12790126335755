//! Metric names of the gateway, served at `/metrics`.

/// Counter: bid forms submitted, by `outcome`.
pub const BIDS: &str = "gateway_bids_total";
/// Counter: form posts refused for a missing or wrong CSRF token.
pub const CSRF_REJECTIONS: &str = "gateway_csrf_rejections_total";
/// Gauge: live-update streams open now.
pub const LIVE_STREAMS: &str = "gateway_live_streams";
/// Counter: live streams that lost the bid service's watch and subscribed again.
pub const LIVE_RESUBSCRIBES: &str = "gateway_live_resubscribes_total";
/// Counter: live streams refused, by `reason` (`client_streams`, `client_rate`, `gateway_full`).
pub const LIVE_REFUSED: &str = "gateway_live_refused_total";
/// Gauge: auctions followed upstream now (one `WatchAuction` each, shared by their streams).
pub const LIVE_AUCTIONS: &str = "gateway_live_auctions";
/// Counter: form posts refused because the client posted faster than its rate.
pub const POSTS_RATE_LIMITED: &str = "gateway_posts_rate_limited_total";
